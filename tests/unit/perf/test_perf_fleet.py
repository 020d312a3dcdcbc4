"""perf/fleet.py's pure parts: the configs it gives the central gateways load as the
paths it means (one upstream; a fleet with a route), it reads the per-upstream counter
the gateway exports, and its guess of the next host is the pool's own choice."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from foundry_gateway.config import load_config
from foundry_gateway.recorder import Recorder
from foundry_gateway.upstreams.pool import Pool, plan
from tests.plugins.common import REPO
from tests.plugins.netns import Host


@pytest.fixture(scope="module")
def fleet():
    saved = list(sys.path)
    sys.path.insert(0, str(REPO / "perf"))  # as when run: its folder first (_venv, gateway)
    try:
        spec = importlib.util.spec_from_file_location("perf_fleet", REPO / "perf" / "fleet.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path[:] = saved


def hosts(fleet) -> list[Host]:
    return [Host(n, "0") for n in fleet.HOST_NUMBERS]  # objects only: nothing is created


def keys(fleet) -> dict[str, str]:
    return {"GATEWAY_API_KEY": "k" * 20, **{f"EDGE_{n}_KEY": "e" * 20 for n in fleet.HOST_NUMBERS}}


def test_configs_load_as_the_single_upstream_and_the_fleet_path(fleet, tmp_path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(fleet.config_yaml(hosts(fleet)[:1], route=False))
    single = load_config(path, environ=keys(fleet))
    assert not single.fleet and [u.name for u in single.upstreams] == ["host1"]
    path.write_text(fleet.config_yaml(hosts(fleet), route=True))
    routed = load_config(path, environ=keys(fleet))
    assert routed.fleet and [u.name for u in routed.upstreams] == ["host1", "host2", "host3"]
    assert routed.routing.route(fleet.ROUTE).models == (fleet.MODEL,)


def test_served_counts_read_the_gateways_own_exposition(fleet) -> None:
    rec = Recorder(20, (("host1", "local"), ("host2", "local")))
    for name, code in (("host1", 200), ("host1", 200), ("host2", 200), ("host2", 502)):
        rec.upstream_request(name, "local", code)
    assert fleet.served_counts(rec.render().decode()) == {"host1": 2, "host2": 2}


class _Listing:
    def __init__(self, models: tuple[str, ...]) -> None:
        self.known = models


def test_after_the_warm_up_the_guessed_next_host_is_the_one_the_pool_picks(fleet, tmp_path):
    path = tmp_path / "c.yml"
    path.write_text(fleet.config_yaml(hosts(fleet), route=True))
    config = load_config(path, environ=keys(fleet))
    pool = Pool(config, [None] * 3, [_Listing((fleet.MODEL,)) for _ in range(3)])
    names, history = [m.name for m in pool.members], []
    for i in range(3 + 12):  # the script's 3 warm-up requests, then one at a time
        chosen = plan(fleet.ROUTE, config.routing, pool.members)[0].member
        if i >= 3:
            assert chosen.name == fleet.next_host(names, history), (i, history)
        pool.begin(chosen)
        pool.end(chosen)
        history.append(chosen.name)
    assert sorted(history[3:]) == sorted(names * 4)  # and it does spread them evenly
