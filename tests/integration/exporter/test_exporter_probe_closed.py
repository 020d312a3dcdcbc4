"""/probe is not a proxy (issue 13, HIGH 2): the exporter as a real process with the
stack's own config (exporter/config.stack.yml), Foundry Local behind a recording
relay, and a recording listener on loopback that nothing may reach."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.exporter.recorder import Recorder
from tests.plugins.common import REPO, free_port, wait_for

SECRET = "sk-issue13-never-leave"
HEADER = {"X-Prometheus-Scrape-Timeout-Seconds": "10"}
CHAT = b"POST /catalogs/local/v1/chat/completions "
# The stack's config plus one keyed module, a valid config before and after the fix.
KEYED = "\nmodules:\n  keyed: {kind: foundry, api_key_env: EXPORTER_TEST_KEY}\n"


@dataclass
class Stack:
    base: str          # the exporter
    foundry: Recorder  # relay in front of the real Foundry Local: the configured target
    stranger: Recorder  # a loopback listener no /probe may reach
    proc: subprocess.Popen

    def probe(self, headers: dict[str, str] | None = HEADER, **params: str) -> httpx.Response:
        return httpx.get(f"{self.base}/probe", params=params, headers=headers, timeout=30)


@contextlib.contextmanager
def _start(tmp_path: Path, foundry_server, extra: Callable[[Recorder], str]) -> Iterator[Stack]:
    root = urlsplit(foundry_server.root_url)
    foundry = Recorder(upstream=(root.hostname, root.port)).start()
    stranger = Recorder().start()
    config = tmp_path / "config.yml"
    config.write_text((REPO / "exporter" / "config.stack.yml").read_text() + extra(foundry))
    port = free_port()
    # FOUNDRY_API_KEY: the stack's config sends the gateway's key to its target (the relay
    # here stands where the gateway is); only the module key must never leave.
    env = {**os.environ, "FOUNDRY_BASE_URL": f"{foundry.url}/catalogs/local",
           "FOUNDRY_API_KEY": "target-key-0123456789", "EXPORTER_TEST_KEY": SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "foundry_exporter", "--config", str(config),
                             "--listen-address", f"127.0.0.1:{port}"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stack = Stack(f"http://127.0.0.1:{port}", foundry, stranger, proc)
    try:
        # The background loop's first canary reached Foundry (through the relay).
        wait_for(lambda: proc.poll() is None and foundry.count(CHAT) >= 1,
                 "the background canary reached Foundry", timeout=30, interval=0.05)
        yield stack
    finally:
        proc.kill()
        output = proc.communicate(timeout=10)[0]
        foundry.stop()
        stranger.stop()
        assert SECRET not in output, "the exporter logged the key"


@pytest.fixture
def stack(tmp_path: Path, foundry_server) -> Iterator[Stack]:
    with _start(tmp_path, foundry_server, lambda _: KEYED) as s:
        yield s


def _nothing_leaked(stack: Stack) -> None:
    assert stack.stranger.connections == 0, stack.stranger.sent()
    assert SECRET.encode() not in stack.foundry.sent()


@pytest.mark.parametrize("module", ["foundry", "keyed", "openai"])
def test_an_unconfigured_url_is_refused_and_never_contacted(stack: Stack, module: str) -> None:
    for target in (stack.stranger.url, f"127.0.0.1:{stack.stranger.port}"):
        answer = stack.probe(target=target, module=module)
        assert answer.status_code == 403, answer.text
        assert "neither a configured target (foundry, open-webui) nor listed under probe_urls" \
            in answer.text
    _nothing_leaked(stack)


def test_query_fragment_and_credential_tricks_are_refused(stack: Stack) -> None:
    configured = f"{stack.foundry.url}/catalogs/local"
    s = stack.stranger.url
    tricks = [f"{configured}?", f"{configured}?x=", f"{configured}#", f"{configured}/#x",
              f"{s}/?", f"{s}#", f"{s}/x?target=foundry", f"{configured}@127.0.0.1:{stack.stranger.port}",
              f"http://127.0.0.1:{stack.foundry.port}@127.0.0.1:{stack.stranger.port}/catalogs/local",
              "foundry?x", "foundry#"]
    for target in tricks:
        for module in ("keyed", "foundry"):
            answer = stack.probe(target=target, module=module)
            assert 400 <= answer.status_code < 500, (target, answer.status_code, answer.text)
    _nothing_leaked(stack)


def test_configured_name_serves_the_cached_canary_however_often_it_is_called(stack: Stack) -> None:
    chats = stack.foundry.count(CHAT)
    for _ in range(10):
        answer = stack.probe(target="foundry")
        assert answer.status_code == 200, answer.text
        assert 'foundry_probes_total{probe="chat",target="foundry"} 1.0' in answer.text
        assert 'foundry_up{kind="foundry",target="foundry"} 1.0' in answer.text
    # The stack's canary interval is 60 s: ten /probe calls ran no chat at all.
    assert stack.foundry.count(CHAT) == chats == 1
    # Another module (with its key) cannot be pointed at the configured target.
    answer = stack.probe(target="foundry", module="keyed")
    assert answer.status_code == 400 and "drop the module parameter" in answer.text
    _nothing_leaked(stack)


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://evil.example", "Sec-Fetch-Mode": "no-cors"},
                                     {"X-Prometheus-Scrape-Timeout-Seconds": "soon"}])
def test_requests_without_the_scrape_timeout_header_are_refused(stack: Stack, headers) -> None:
    chats = stack.foundry.count(CHAT)
    for params in ({"target": "foundry"}, {"target": stack.stranger.url, "module": "keyed"}):
        answer = stack.probe(headers=headers, **params)
        assert answer.status_code == 400
        assert answer.text.startswith("X-Prometheus-Scrape-Timeout-Seconds header is missing")
    assert httpx.post(f"{stack.base}/probe", params={"target": "foundry"},
                      headers=HEADER).status_code == 405
    assert stack.foundry.count(CHAT) == chats
    _nothing_leaked(stack)


def test_an_allowed_url_gets_only_its_module_and_key_and_a_canary_per_interval(
        tmp_path: Path, foundry_server) -> None:
    allowed = Recorder(upstream=(urlsplit(foundry_server.root_url).hostname,
                                 foundry_server.port)).start()
    url = f"{allowed.url}/catalogs/local"
    extra = KEYED + f"probe_urls:\n  - {{url: '{url}', modules: [keyed]}}\n"
    try:
        with _start(tmp_path, foundry_server, lambda _: extra) as s:
            _allowed_url(s, allowed, url)
    finally:
        allowed.stop()


def _allowed_url(s: Stack, allowed: Recorder, url: str) -> None:
    for _ in range(3):
        answer = s.probe(target=url, module="keyed")
        assert answer.status_code == 200, answer.text
        assert f'foundry_up{{kind="foundry",target="{url}"}} 1.0' in answer.text
        assert f'foundry_probes_total{{probe="chat",target="{url}"}} 1.0' in answer.text
    assert allowed.count(CHAT) == 1  # canary interval: the module's, default 60 s
    assert allowed.count(b"GET /catalogs/local/v1/models ") == 3  # listings per call
    assert allowed.count(f"Authorization: Bearer {SECRET}".encode()) >= 4
    assert s.probe(target=url, module="foundry").status_code == 403
    _nothing_leaked(s)
