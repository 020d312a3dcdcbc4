"""The follower's pure parts: which listeners a loopback client reaches, which candidate
wins, and how ``follow`` is configured. With the real runtime:
tests/integration/gateway/test_gateway_follow.py."""

from __future__ import annotations

import asyncio

import pytest

from foundry_gateway.config import ConfigError, Limits, Timeouts, load_config
from foundry_gateway.upstreams.connection import UpstreamClient
from foundry_gateway.upstreams.follow import MIN_INTERVAL_S, Follower, choose, listening_ports

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
TCP = HEADER + "\n".join([
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1",  # 127.0.0.1:8080 listen
    "   1: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2",  # 0.0.0.0:3000 listen
    "   2: 0101A8C0:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3",  # 192.168.1.1:80: not loopback
    "   3: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 4",  # established, not listening
])
TCP6 = HEADER + "\n".join([
    "   0: 00000000000000000000000001000000:1388 00000000000000000000000000000000:0000 0A 0 0 0 0 0 5",  # [::1]:5000
    "   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0 0 0 0 0 6",  # [::]:8080 again
    "   2: 20010DB8000000000000000000000001:0016 00000000000000000000000000000000:0000 0A 0 0 0 0 0 7",  # 2001:db8::1
])


def test_only_listeners_a_loopback_client_reaches_count_once_each():
    assert listening_ports([TCP, TCP6]) == [3000, 5000, 8080]


def test_a_garbled_table_is_skipped_line_by_line():
    assert listening_ports(["header\nnonsense\n   0: 0100007F:ZZZZ x 0A\n"]) == []


@pytest.mark.parametrize(("candidates", "known", "expected"), [
    ({5000: ("phi:1",), 6000: ("qwen:1",)}, ("qwen:1",), 6000),   # the one serving what was served
    ({5000: ("qwen:1",), 6000: ("qwen:1",)}, ("qwen:1",), 5000),  # two alike: the lower port
    ({5000: ()}, ("qwen:1",), 5000),                               # a lone Foundry (model not loaded yet)
    ({5000: (), 6000: ("phi:1",)}, ("qwen:1",), None),             # strangers: not guessing
    ({}, ("qwen:1",), None),
])
def test_choose(candidates, known, expected):
    assert choose(candidates, known) == expected


def test_scans_are_rate_limited_and_shared():
    """Many requests failing at once cause one scan; another only MIN_INTERVAL_S later."""
    now = [100.0]
    scans = []

    def tables():
        scans.append(now[0])
        return []

    client = UpstreamClient("http://127.0.0.1:9", None, Timeouts(), Limits())
    follower = Follower(client, ("/models/loaded",), lambda: (), tables=tables, clock=lambda: now[0])

    async def go():
        results = await asyncio.gather(*(follower.relocate() for _ in range(5)))
        again = await follower.relocate()
        now[0] += MIN_INTERVAL_S
        later = await follower.relocate()
        return results, again, later

    results, again, later = asyncio.run(go())
    assert results == [False] * 5 and again is False and later is False
    assert scans == [100.0, 100.0 + MIN_INTERVAL_S]


def _config(tmp_path, text: str, env: dict[str, str]):
    path = tmp_path / "gateway.yml"
    path.write_text(text)
    return load_config(path, environ={"GATEWAY_API_KEY": "k" * 32, **env})


UP = "upstreams: [{name: foundry, url: 'http://127.0.0.1:52180'}]\n"


def test_follow_is_off_unless_asked_and_the_variable_overrides_the_file(tmp_path):
    assert _config(tmp_path, UP, {}).upstream.follow is False
    assert _config(tmp_path, UP, {"GATEWAY_UPSTREAM_FOLLOW": "true"}).upstream.follow is True
    on = "upstreams: [{name: foundry, url: 'http://127.0.0.1:52180', follow: true}]\n"
    assert _config(tmp_path, on, {}).upstream.follow is True
    assert _config(tmp_path, on, {"GATEWAY_UPSTREAM_FOLLOW": "false"}).upstream.follow is False


def test_a_bad_follow_variable_is_named(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, UP, {"GATEWAY_UPSTREAM_FOLLOW": "maybe"})
    assert caught.value.problems == [
        f"{tmp_path / 'gateway.yml'}: upstreams[0].follow_env: GATEWAY_UPSTREAM_FOLLOW=\"maybe\" is not true "
        "or false; set it to true or false"]
