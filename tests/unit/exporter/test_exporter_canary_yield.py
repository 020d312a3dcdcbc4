"""The canary yields to real traffic: the activity contract, the verdict, the config key,
the fold (counted, not stale) and the background loop, against httpx.MockTransport."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path

import httpx2 as httpx  # the exporter's client library (exporter/foundry_exporter/httpio.py)
import pytest

from foundry_exporter.collector import SnapshotCollector
from foundry_exporter.config import Canary, ConfigError, Module, Target, load_config
from foundry_exporter.httpio import Clock, make_client
from foundry_exporter.probes import ProbeContext
from foundry_exporter.probes.activity import (
    CANARY_HEADER,
    Activity,
    activity_url,
    canary_skip,
    canary_verdict,
    fetch_activity,
    parse_activity,
)
from foundry_exporter.results import CanarySkip, ProbeResult
from foundry_exporter.scheduler import Scheduler
from foundry_exporter.state import Store, fold, health, initial_state
from tests.plugins.common import REPO
from tests.unit.exporter.fakes import delta, sse

MODEL = "tiny-chat-generic-cpu:1"


def _target(probes=("models", "loaded", "chat"), interval: float = 15.0, **canary) -> Target:
    return Target("t", "http://gw:9180", Module("foundry", probes, 5.0, api_key="gw-key",
                                                 canary=Canary(**canary)), interval)


# -- the contract and the verdict (pure) -----------------------------------------------

def test_parse_activity_accepts_the_documented_shape_only() -> None:
    assert parse_activity({"in_flight": 0, "idle_seconds": None, "last_seen_unix": None}) \
        == Activity(0, None)
    assert parse_activity({"in_flight": 2, "idle_seconds": 0}) == Activity(2, 0.0)
    for bad in ([], {"in_flight": -1, "idle_seconds": 1}, {"in_flight": True, "idle_seconds": 1},
                {"in_flight": "1", "idle_seconds": 1}, {"idle_seconds": 1},
                {"in_flight": 0, "idle_seconds": "5"}, {"in_flight": 0, "idle_seconds": -1},
                {"in_flight": 0, "idle_seconds": float("nan")}, {"in_flight": 0, "idle_seconds": False}):
        with pytest.raises(ValueError):
            parse_activity(bad)


@pytest.mark.parametrize(("activity", "verdict"), [
    (None, None),                          # not a gateway (or not known): run as always
    (Activity(0, None), None),             # no real chat since the gateway started
    (Activity(0, 60.0), None),             # quiet for a whole interval
    (Activity(0, 600.0), None),
    (Activity(0, 59.9), "real_traffic"),   # a chat ended within the interval
    (Activity(0, 0.0), "real_traffic"),
    (Activity(1, None), "real_traffic"),   # a chat in flight, whatever the clock says
    (Activity(3, 999.0), "real_traffic"),
])
def test_canary_verdict(activity: Activity | None, verdict: str | None) -> None:
    assert canary_verdict(activity, 60.0) == verdict


def test_activity_is_asked_at_the_root_whatever_the_target_path() -> None:
    assert activity_url("http://gw:9180") == "http://gw:9180/gateway/activity"
    assert activity_url("http://f:1/catalogs/local") == "http://f:1/gateway/activity"
    assert activity_url("http://gw:9180/v1") == "http://gw:9180/gateway/activity"


# -- fetching: anything but a good 200 means "not known" ---------------------------------

def _fetch(handler, target: Target | None = None) -> Activity | None:
    async def go():
        async with make_client(httpx.MockTransport(handler)) as client:
            return await fetch_activity(ProbeContext(client), target or _target())
    return asyncio.run(go())


def test_fetch_sends_the_key_and_parses_the_report() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, str(request.url), request.headers.get("authorization")))
        return httpx.Response(200, json={"in_flight": 0, "idle_seconds": 12.5,
                                         "last_seen_unix": 1.7e9})
    assert _fetch(handler) == Activity(0, 12.5)
    assert seen == [("GET", "http://gw:9180/gateway/activity", "Bearer gw-key")]


@pytest.mark.parametrize("answer", [
    httpx.Response(404, text="Not Found"),                  # a plain Foundry Local
    httpx.Response(401, json={"error": {}}),                # a wrong key: the canary will say so
    httpx.Response(500),
    httpx.Response(200, text="<html>"),                     # not JSON
    httpx.Response(200, json={"in_flight": "many"}),        # not the contract
    httpx.Response(200, content=b'{"in_flight": 0, "x": "' + b"a" * 5000 + b'"}'),  # over the cap
    httpx.Response(302, headers={"location": "http://elsewhere/"}),  # never followed
])
def test_fetch_returns_none_for_anything_else(answer: httpx.Response) -> None:
    assert _fetch(lambda _request: answer) is None


def test_fetch_returns_none_when_the_upstream_is_unreachable_or_slow() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)
    assert _fetch(refused) is None

    async def slow(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={"in_flight": 1, "idle_seconds": 0})

    target = Target("t", "http://gw:9180", Module("foundry", ("chat",), 0.05), 15.0)
    assert _fetch(slow, target) is None


def test_a_disabled_yield_never_asks() -> None:
    seen = []

    async def go():
        handler = lambda r: seen.append(r) or httpx.Response(200, json={"in_flight": 1,  # noqa: E731
                                                                         "idle_seconds": 0})
        async with make_client(httpx.MockTransport(handler)) as client:
            return await canary_skip(ProbeContext(client), _target(yield_to_traffic=False), 60.0)
    assert asyncio.run(go()) is None and seen == []


# -- config ------------------------------------------------------------------------------

def _load(tmp_path: Path, canary: str) -> object:
    path = tmp_path / "c.yml"
    path.write_text("targets:\n  - {name: f, kind: foundry, url: 'http://h:1', "
                    f"canary: {canary}}}\n")
    return load_config(path, environ={})


def test_yield_to_traffic_is_on_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    assert _load(tmp_path, "{model: auto}").targets[0].module.canary.yield_to_traffic is True
    assert _load(tmp_path, "{yield_to_traffic: false}").targets[0].module.canary.yield_to_traffic \
        is False
    assert Canary().yield_to_traffic is True


def test_stack_and_example_configs_leave_it_on() -> None:
    # The stack's config is another engineer's; its default must already do the right thing.
    for name in ("config.stack.yml", "config.example.yml"):
        path = REPO / "exporter" / name
        environ = {var: "http://h:1" for var in re.findall(r"_env:\s*(\w+)", path.read_text())}
        chatting = [t for t in load_config(path, environ=environ).targets
                    if "chat" in t.module.probes]
        assert chatting and all(t.module.canary.yield_to_traffic for t in chatting), name


@pytest.mark.parametrize(("value", "shown"), [("maybe", '"maybe"'), ("1", "1"), ("[]", "[]")])
def test_yield_to_traffic_must_be_a_boolean(tmp_path: Path, value: str, shown: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, f"{{yield_to_traffic: {value}}}")
    assert caught.value.problems == [
        f"{tmp_path / 'c.yml'}: targets[0].canary.yield_to_traffic: expected true or false, "
        f"got {shown}"]


def test_a_misspelt_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, "{yield_to_trafic: true}")
    assert caught.value.problems == [f"{tmp_path / 'c.yml'}: targets[0].canary: unknown key "
                                     '"yield_to_trafic"; did you mean "yield_to_traffic"?']


# -- the fold: counted, the last canary stays, never stale --------------------------------

def _registry(snapshot):
    from prometheus_client import CollectorRegistry
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot))
    return registry


def test_a_skip_is_counted_and_keeps_the_last_canary_values() -> None:
    from foundry_exporter.results import ChatStats
    t = _target()
    chat = ProbeResult("t", "chat", True, 0.1, 1000.0, chat=ChatStats(MODEL, 0.02, 0.1, 0.08, 8))
    s = fold(initial_state((t,)), (chat,), 1.0)
    reg = _registry(s)
    assert reg.get_sample_value("foundry_canary_skipped_total",
                                {"target": "t", "reason": "real_traffic"}) == 0
    assert reg.get_sample_value("foundry_canary_last_skip_timestamp_seconds", {"target": "t"}) is None
    s = fold(s, (ProbeResult("t", "models", True, 0.01, 1060.0, models=(MODEL,)),), 61.0,
             CanarySkip("t", "real_traffic", 1060.0))
    reg = _registry(s)
    assert reg.get_sample_value("foundry_canary_skipped_total",
                                {"target": "t", "reason": "real_traffic"}) == 1
    assert reg.get_sample_value("foundry_canary_last_skip_timestamp_seconds", {"target": "t"}) == 1060
    assert reg.get_sample_value("foundry_chat_last_ttft_seconds", {"target": "t", "model": MODEL}) == 0.02
    assert reg.get_sample_value("foundry_probe_last_timestamp_seconds",
                                {"target": "t", "probe": "chat"}) == 1000.0
    assert reg.get_sample_value("foundry_probes_total", {"target": "t", "probe": "chat"}) == 1


def test_a_skipped_round_of_a_chat_only_target_completes_its_cycle() -> None:
    t = _target(probes=("chat",), interval=10.0)
    s = initial_state((t,), 0.0)
    for end in (10.0, 20.0, 30.0, 40.0):  # rounds skipped for 40 s: no probe ran at all
        s = fold(s, (), end, CanarySkip("t", "real_traffic", 1000.0 + end))
    s = fold(s, (), None)  # nothing happened: changes nothing
    assert s.targets["t"].last_cycle_monotonic == 40.0
    assert health(s.__class__(s.targets, 0.0, 40.5, 1040.5), 41.0, 30.0, 10.0)[0] is True
    assert s.targets["t"].canary_skips == {"real_traffic": 4}


def test_no_counter_without_a_canary_or_with_yield_off() -> None:
    for t in (_target(probes=("models", "loaded")), _target(yield_to_traffic=False)):
        assert initial_state((t,)).targets["t"].canary_skips == {}


def test_a_skip_reason_outside_the_closed_set_is_a_bug() -> None:
    with pytest.raises(ValueError):
        CanarySkip("t", "busy", 1.0)


# -- the background loop against a scripted gateway --------------------------------------

class Gateway:
    """A scripted gateway: the activity it reports, and every request it saw."""

    def __init__(self) -> None:
        self.in_flight = 1
        self.idle: float | None = None  # reported when nothing is in flight
        self.seen: list[tuple[str, str, str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.seen.append((request.method, path, request.headers.get(CANARY_HEADER)))
        if path == "/gateway/activity":
            return httpx.Response(200, json={"in_flight": self.in_flight, "idle_seconds":
                                             0.0 if self.in_flight else self.idle,
                                             "last_seen_unix": None})
        if path in ("/v1/models", "/models/loaded"):
            return httpx.Response(200, json={"data": [{"id": MODEL}]})
        body = sse({"choices": [{"delta": {"role": "assistant"}}]}) + delta("ok") \
            + delta(finish="stop") + delta(usage=1) + sse("[DONE]")
        return httpx.Response(200, stream=httpx.ByteStream(body),
                              headers={"content-type": "text/event-stream"})

    def paths(self, path: str) -> int:
        return sum(1 for _, p, _ in self.seen if p == path)


def _run_loop(gateway: Gateway, target: Target, until) -> Store:
    """The real Scheduler until ``until(store)`` holds (deadline 10 s)."""
    store = Store(initial_state((target,), time.perf_counter()))

    async def go() -> None:
        stop = asyncio.Event()
        async with make_client(httpx.MockTransport(gateway)) as client:
            task = asyncio.create_task(Scheduler((target,), store, ProbeContext(client, Clock())).run(stop))
            deadline = time.monotonic() + 10
            while not until(store) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            stop.set()
            await task
    asyncio.run(go())
    return store


def test_the_loop_skips_due_rounds_while_a_chat_is_in_flight_then_runs_again(monkeypatch) -> None:
    monkeypatch.setattr("foundry_exporter.scheduler.MAX_YIELD_ROUNDS", 10_000)  # the bound: below
    gw = Gateway()
    t = Target("t", "http://gw:9180", Module("foundry", ("models", "loaded", "chat"), 0.05,
                                              api_key="gw-key", canary=Canary()), 0.05)

    def skips(store: Store) -> int:
        return store.get().targets["t"].canary_skips["real_traffic"]

    store = _run_loop(gw, t, lambda s: skips(s) >= 3)
    assert skips(store) >= 3
    # The first round measures (nothing was measured yet); after it the canary never competed.
    assert gw.paths("/v1/chat/completions") == 1
    assert store.get().targets["t"].runs["models"] >= 3    # the listings kept running
    assert store.get().targets["t"].up is True

    gw.in_flight = 0  # the user is gone: the next due round runs, marked as the canary
    store = _run_loop(gw, t, lambda s: s.get().targets["t"].runs["chat"] >= 1)
    assert store.get().targets["t"].last["chat"].ok
    chats = [mark for _, p, mark in gw.seen if p == "/v1/chat/completions"]
    assert chats and set(chats) == {"1"}
    listings = [mark for _, p, mark in gw.seen if p in ("/v1/models", "/models/loaded")]
    assert set(listings) == {None}  # only the canary is marked


def test_a_plain_foundry_404_leaves_the_canary_as_it_was() -> None:
    gw = Gateway()

    def foundry(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/gateway/activity":
            gw.seen.append(("GET", "/gateway/activity", None))
            return httpx.Response(404, text="Not Found")
        return gw(request)

    t = Target("t", "http://f:1", Module("foundry", ("models", "loaded", "chat"), 0.05,
                                          canary=Canary()), 0.05)
    store = _run_loop(foundry, t, lambda s: s.get().targets["t"].runs["chat"] >= 3)
    assert store.get().targets["t"].canary_skips["real_traffic"] == 0
    assert gw.paths("/v1/chat/completions") >= 3


def test_the_canary_interval_is_the_window_and_a_skip_uses_the_round(monkeypatch) -> None:
    """Canary interval 0.2 s over a 0.05 s listing interval: one activity question per
    canary round (not per listing cycle), each answered by a skip while busy."""
    monkeypatch.setattr("foundry_exporter.scheduler.MAX_YIELD_ROUNDS", 10_000)
    gw = Gateway()
    t = Target("t", "http://gw:9180", Module("foundry", ("models", "loaded", "chat"), 0.05,
                                              canary=Canary(interval=0.2)), 0.05)
    store = _run_loop(gw, t, lambda s: s.get().targets["t"].runs["models"] >= 12)
    runs = store.get().targets["t"].runs["models"]
    skips = store.get().targets["t"].canary_skips["real_traffic"]
    assert skips == gw.paths("/gateway/activity")
    assert 1 <= skips <= runs // 3  # ≈ runs / 4: one per canary interval, not one per cycle
    assert gw.paths("/v1/chat/completions") == 1  # the first round only: nothing measured yet


def test_however_busy_the_gateway_the_canary_runs_every_max_yield_rounds(monkeypatch) -> None:
    """A gateway busy all the time (a chat always in flight): the canary still measures,
    once every MAX_YIELD_ROUNDS of its intervals, and yields in between."""
    monkeypatch.setattr("foundry_exporter.scheduler.MAX_YIELD_ROUNDS", 3)
    gw = Gateway()
    t = Target("t", "http://gw:9180", Module("foundry", ("models", "loaded", "chat"), 0.05,
                                              api_key="gw-key", canary=Canary()), 0.05)
    store = _run_loop(gw, t, lambda s: s.get().targets["t"].runs["chat"] >= 3)
    state = store.get().targets["t"]
    assert state.runs["chat"] >= 3 and state.canary_skips["real_traffic"] >= 2
    assert state.runs["chat"] <= state.canary_skips["real_traffic"] + 1  # mostly yielding


def test_a_canary_that_never_ran_runs_and_one_that_yielded_long_enough_runs() -> None:
    from foundry_exporter.probes.activity import Activity, canary_verdict

    busy = Activity(in_flight=1, idle_seconds=0.0)
    assert canary_verdict(busy, 60.0) == "real_traffic"
    assert canary_verdict(busy, 60.0, ran_ago=None) is None            # never measured
    assert canary_verdict(busy, 60.0, ran_ago=120.0, max_yield=300.0) == "real_traffic"
    assert canary_verdict(busy, 60.0, ran_ago=300.0, max_yield=300.0) is None



# -- /probe?target=URL: the same rule, the window is the time since the previous round --------

def test_probe_url_canary_yields_to_traffic_since_its_previous_round(tmp_path: Path) -> None:
    from foundry_exporter.ondemand import OnDemand
    from tests.unit.exporter.fakes import FakeClock

    path = tmp_path / "c.yml"
    path.write_text("targets: []\nmodules:\n  gw: {kind: foundry, api_key_env: K, "
                    "canary: {interval: 30s}}\nprobe_urls: [{url: 'http://gw:9180', modules: [gw]}]\n")
    config = load_config(path, environ={"K": "gw-key"})
    gw, clock = Gateway(), FakeClock()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    probe = OnDemand(config, ProbeContext(make_client(httpx.MockTransport(gw)), clock.clock()),
                     loop, lambda: None)

    def at(t: float, in_flight: int, idle: float | None) -> str:
        clock.t, gw.in_flight = t, in_flight
        gw.idle = idle
        status, _, body = probe("http://gw:9180", "gw", 5.0)
        assert status == 200
        return body.decode()

    try:
        at(0.0, 0, None)                                   # nobody chatted: runs
        assert gw.paths("/v1/chat/completions") == 1
        body = at(45.0, 0, 40.0)  # a chat 40 s ago: after the round at 0 s, so this one yields
        assert gw.paths("/v1/chat/completions") == 1       # (40 s > the 30 s interval)
        assert 'foundry_canary_skipped_total{reason="real_traffic",target="http://gw:9180"} 1.0' in body
        assert 'foundry_chat_last_ttft_seconds{model=' in body  # the last canary is still served
        at(50.0, 0, 45.0)                                  # not due (the skip used the round)
        assert gw.paths("/gateway/activity") == 1  # the first round, nothing measured, did not ask
        at(80.0, 0, 75.0)                                  # quiet since the round at 45 s: runs
        assert gw.paths("/v1/chat/completions") == 2
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
