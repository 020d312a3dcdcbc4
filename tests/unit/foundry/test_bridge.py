"""Docker bridge gateway detection: interface first, then `docker network inspect`."""

import json
import subprocess

from stackctl.foundry.bridge import gateway_ip, parse_network_inspect

INSPECT = json.dumps([{"Name": "bridge", "IPAM": {"Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]}}])


def _run(stdout: str, rc: int = 0):
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, rc, stdout, "")

    return run, calls


def test_parse_network_inspect():
    assert parse_network_inspect(INSPECT) == "172.17.0.1"
    assert parse_network_inspect(json.dumps([{"IPAM": {"Config": [{"Subnet": "172.17.0.0/16"}]}}])) is None
    assert parse_network_inspect(json.dumps([{"IPAM": {"Config": [{"Gateway": "fd00::1"}]}}])) is None
    assert parse_network_inspect("garbage") is None


def test_interface_wins_without_calling_docker():
    run, calls = _run(INSPECT)
    assert gateway_ip(platform="linux", iface=lambda name: "172.18.0.1", run=run) == "172.18.0.1"
    assert calls == []


def test_falls_back_to_docker_network_inspect():
    run, calls = _run(INSPECT)
    assert gateway_ip(platform="linux", iface=lambda name: None, run=run) == "172.17.0.1"
    assert calls == [["docker", "network", "inspect", "bridge"]]


def test_no_docker_means_loopback_only():
    def missing(argv, **kwargs):
        raise FileNotFoundError("docker")

    assert gateway_ip(platform="linux", iface=lambda name: None, run=missing) is None
    run, _ = _run("", rc=1)
    assert gateway_ip(platform="linux", iface=lambda name: None, run=run) is None


def test_not_linux_has_no_gateway_to_bind():
    run, calls = _run(INSPECT)
    assert gateway_ip(platform="darwin", iface=lambda name: "172.17.0.1", run=run) is None
    assert calls == []
