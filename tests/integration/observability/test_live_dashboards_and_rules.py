"""Every dashboard query and recording rule returns data from a live stack.

Debian's Prometheus runs the project's prometheus.yml and rules (only the
scrape addresses and the secrets folder rewritten) against the real exporter,
which probes the real Foundry Local runtime serving the tiny model, plus an
unreachable Foundry target and an unreachable Open WebUI so the fault-only
series (failures by reason, up 0) exist too; and against the real gateway in
front of the same runtime, scraped with its key, while a user chats through it
(per-user counting on) so the Chats dashboard's series exist. A fourth target
probes through the gateway as the stack's does: its first canary is relayed
(counted apart from real traffic), later rounds yield to the user's chats. The module waits
until every expression has data or a deadline passes, then asserts each one
separately so a failure names the panel.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import yaml

from foundry_gateway.config import PerUser
from tests.integration.gateway.conftest import KEY, RunningGateway, make_config
from tests.integration.observability import live_stack
from tests.plugins.common import free_ports
from tests.plugins.foundry import TINY_MODEL_ID
from tests.unit.observability import promql_sources as src

# Fifteen-second scrapes and rule evaluations: rates need two scrapes, the
# 5m recording rules one more evaluation after that.
DATA_DEADLINE_S = 300

EXPRESSIONS = (
    src.dashboard_target_expressions()
    + src.dashboard_variable_selectors()
    + src.recording_rule_expressions()
)


@dataclass(frozen=True)
class Live:
    prometheus_url: str
    results: dict[str, list[dict]]  # promql -> result vector when the wait ended
    logs: str


GATEWAY_KEY_ENV = "LIVE_GATEWAY_KEY"


def _exporter_config(foundry_url: str, dead_url: str, gateway_url: str) -> dict:
    return {
        "defaults": {"interval": "10s", "timeout": "8s"},
        "targets": [
            {"name": "local", "kind": "foundry", "url": foundry_url},
            {"name": "gated", "kind": "foundry", "url": gateway_url, "api_key_env": GATEWAY_KEY_ENV},
            {"name": "unreachable", "kind": "foundry", "url": dead_url, "timeout": "2s"},
            {"name": "openwebui", "kind": "openwebui", "url": dead_url, "timeout": "2s"},
        ],
    }


def _has_data(result: list[dict]) -> bool:
    return any(math.isfinite(float(sample["value"][1])) for sample in result)


class Chatter:
    """A user chatting through the gateway every ``every_s`` until stopped, as Open
    WebUI would (streamed, with its forwarded user header); the last failure is kept
    for the logs."""

    def __init__(self, gateway_url: str, every_s: float = 2.0) -> None:
        self.url = f"{gateway_url}/v1/chat/completions"
        self.every_s = every_s
        self.chats = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chatter", daemon=True)

    def _run(self) -> None:
        body = {"model": TINY_MODEL_ID, "messages": [{"role": "user", "content": "Hello"}],
                "max_tokens": 16, "stream": True}
        headers = {"Authorization": f"Bearer {KEY}", "X-OpenWebUI-User-Name": "alice"}
        with httpx.Client(trust_env=False, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    with client.stream("POST", self.url, json=body, headers=headers) as answer:
                        answer.read()
                        answer.raise_for_status()
                    self.chats += 1
                except httpx.HTTPError as exc:
                    self.last_error = repr(exc)
                self._stop.wait(self.every_s)

    def __enter__(self) -> Chatter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(40)

    def log(self) -> str:
        return f"--- chatter\n{self.chats} chats; last error: {self.last_error or 'none'}"


@pytest.fixture(scope="module")
def live(foundry_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    work = tmp_path_factory.mktemp("observability")
    # Together: three free_port() calls can hand out the same just-closed port twice.
    exporter_port, prometheus_port, dead_port = free_ports(3)
    gateway = RunningGateway(make_config(foundry_server.chat_base_url.removesuffix("/v1"),
                                         per_user=PerUser(enabled=True))).start()
    config = work / "exporter.yml"
    config.write_text(yaml.safe_dump(_exporter_config(
        foundry_server.chat_base_url.removesuffix("/v1"), f"http://127.0.0.1:{dead_port}",
        gateway.url)))
    # What `up` writes for Prometheus: the gateway key (the target list is replaced
    # by a static address like every other job's).
    secrets = work / "prometheus-secrets"
    secrets.mkdir()
    (secrets / "gateway.key").write_text(KEY + "\n")

    processes: list[live_stack.Process] = []
    try:
        processes.append(live_stack.start_exporter(config, exporter_port, work,
                                                   {GATEWAY_KEY_ENV: KEY}))
        processes.append(live_stack.start_prometheus(
            src.PROMETHEUS_YML, src.RULES_DIR,
            {"prometheus": [f"127.0.0.1:{prometheus_port}"],
             "foundry-exporter": [f"127.0.0.1:{exporter_port}"],
             "gateway": [f"127.0.0.1:{gateway.port}"]},
            prometheus_port, work, secrets))
        url = f"http://127.0.0.1:{prometheus_port}"
        results: dict[str, list[dict]] = {}

        def all_have_data() -> bool:
            for p in processes:
                p.alive_or_fail()
            for e in EXPRESSIONS:
                if not _has_data(results.get(e.promql, [])):
                    results[e.promql] = live_stack.instant_query(url, e.promql)
            return all(_has_data(results[e.promql]) for e in EXPRESSIONS)

        # The gated target's first canary, before anyone chats, is relayed; only then
        # does the user start, so later rounds yield (both series exist, no race).
        live_stack.wait_until("the gateway relayed the exporter's first canary", lambda: any(
            name == "foundry_gateway_canary_requests_total" and value > 0
            for (name, _labels), value in gateway.metrics().items()), deadline_s=60)
        with Chatter(gateway.url) as chatter, contextlib.suppress(TimeoutError):
            # each test below reports its own expression
            live_stack.wait_until("every dashboard query and recording rule has data",
                                  all_have_data, DATA_DEADLINE_S, every_s=5)
        logs = [f"--- {p.name}\n{p.log_tail()}" for p in processes] + [chatter.log()]
        yield Live(url, results, "\n".join(logs))
    finally:
        for p in reversed(processes):
            p.stop()
        gateway.stop()


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=[e.source for e in EXPRESSIONS])
def test_expression_returns_data(live: Live, expression: src.Expression) -> None:
    result = live.results.get(expression.promql, [])
    assert _has_data(result), (
        f"{expression.source}: no finite sample from {expression.promql}\n"
        f"got: {result}\n{live.logs}"
    )


def test_prometheus_scrapes_the_gateway_with_its_key(live: Live) -> None:
    """up is 0 on a refused scrape, which is data too: ask for 1."""
    (sample,) = live_stack.instant_query(live.prometheus_url, 'up{job="gateway"}')
    assert sample["value"][1] == "1", live.logs


def test_every_recording_rule_is_loaded_and_records_data(live: Live) -> None:
    """Asked of the live Prometheus, not of the list above: every recording rule in
    prometheus/rules/ is loaded, healthy, and its recorded series has a sample."""
    loaded = live_stack.recording_rules(live.prometheus_url)
    assert {r["name"] for r in loaded} == set(src.recording_rule_names()), live.logs
    assert len(loaded) == sum(1 for r in src.rules() if "record" in r)
    without = live_stack.recording_rules_without_data(live.prometheus_url, loaded)
    assert not without, f"recording rules with no recorded sample: {without}\n{live.logs}"


ADDRESSES = {"prometheus": ["127.0.0.1:1"], "foundry-exporter": ["127.0.0.1:2"],
             "gateway": ["127.0.0.1:3"]}


def test_prometheus_config_rendering_touches_only_targets_and_the_secrets_folder(tmp_path) -> None:
    original = yaml.safe_load(src.PROMETHEUS_YML.read_text())
    text = live_stack.render_prometheus_config(src.PROMETHEUS_YML.read_text(), ADDRESSES, tmp_path)
    assert live_stack.SECRETS_MOUNT not in text
    rendered = yaml.safe_load(text.replace(str(tmp_path), live_stack.SECRETS_MOUNT))
    assert {s["job_name"]: s["static_configs"] for s in rendered["scrape_configs"]} == {
        job: [{"targets": targets}] for job, targets in ADDRESSES.items()}
    for scrape in (*original["scrape_configs"], *rendered["scrape_configs"]):
        scrape.pop("static_configs", None)
        scrape.pop("file_sd_configs", None)
    assert rendered == original


def test_prometheus_config_rendering_refuses_unknown_jobs() -> None:
    with pytest.raises(ValueError, match="jobs"):
        live_stack.render_prometheus_config(src.PROMETHEUS_YML.read_text(), {"prometheus": ["x:1"]})
