"""Fixtures for the gateway's integration tests: an in-process gateway and the fault server."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from foundry_gateway.app import serve_until_stopped
from foundry_gateway.config import Config, Limits, Timeouts, Upstream
from tests.integration.gateway.faultserver import FaultServer
from tests.plugins.common import free_port, wait_for

KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


class RunningGateway:
    """The gateway's real server code in a thread with its own event loop."""

    def __init__(self, config: Config) -> None:
        self.port = free_port()
        self.config = config
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            await serve_until_stopped(self.config, (f"127.0.0.1:{self.port}",), self._stop)

        self._loop.run_until_complete(main())
        self._loop.close()

    def start(self) -> RunningGateway:
        self._thread.start()
        wait_for(lambda: httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200,
                 "gateway /healthz", timeout=10, interval=0.05)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive(), "gateway did not stop within 15 s"

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, timeout=30, **kw)

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """Every sample of /metrics as {(name, sorted labels): value}."""
        text = httpx.get(f"{self.url}/metrics", headers=AUTH, timeout=10).text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text) for s in f.samples}


def sample(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def make_config(url: str, **changes) -> Config:
    base = Config(upstreams=(Upstream("up", url),), api_key=KEY,
                  timeouts=Timeouts(connect=2, first_byte=10, idle=10, total=30), limits=Limits())
    return dataclasses.replace(base, **changes)


@pytest.fixture
def start_gateway() -> Iterator[Callable[..., RunningGateway]]:
    running: list[RunningGateway] = []

    def start(url: str, **changes) -> RunningGateway:
        gw = RunningGateway(make_config(url, **changes)).start()
        running.append(gw)
        return gw

    yield start
    for gw in running:
        gw.stop()


@pytest.fixture(scope="session")
def gateway_faults() -> Iterator[FaultServer]:
    server = FaultServer().start()
    yield server
    server.stop()
