"""Bad input is refused with one line naming what is wrong and what to do."""

from __future__ import annotations

import pytest

from stackctl.errors import UsageError
from stackctl.k8s import check_namespace, parse_upstreams


@pytest.mark.parametrize("ns", ["foundry-chat", "a", "x" * 63, "chat2"])
def test_good_namespaces(ns):
    assert check_namespace(ns) == ns


@pytest.mark.parametrize(("ns", "words"), [
    (None, "no namespace given"), ("", "no namespace given"), ("Foundry", "not a valid Kubernetes name"),
    ("chat_prod", "not a valid"), ("-chat", "not a valid"), ("chat-", "not a valid"), ("x" * 64, "not a valid"),
    ("a.b", "not a valid"),
])
def test_bad_namespaces(ns, words):
    with pytest.raises(UsageError) as err:
        check_namespace(ns)
    msg = str(err.value)
    assert words in msg and " — " in msg and "\n" not in msg and err.value.exit_code == 2


def test_ip_upstreams_share_one_service():
    up = parse_upstreams(["http://10.0.0.5:52180, http://10.0.0.6:52180", "http://10.0.0.7:52180/"])
    assert up.hosts == ("10.0.0.5", "10.0.0.6", "10.0.0.7") and up.port == 52180
    assert up.path == "" and up.address_type == "IPv4" and not up.external_name


def test_one_dns_name_is_an_external_name_with_path_and_default_port():
    up = parse_upstreams("http://foundry.lab.example.com/catalogs/local/")
    assert up.hosts == ("foundry.lab.example.com",) and up.port == 80 and up.path == "/catalogs/local"
    assert up.external_name


def test_ipv6():
    assert parse_upstreams("http://[fd00::5]:5273").address_type == "IPv6"


@pytest.mark.parametrize(("raw", "words"), [
    (None, "no Foundry upstream given"),
    ("", "no Foundry upstream given"),
    (" , ", "no Foundry upstream given"),
    ("10.0.0.5:52180", "has no scheme"),
    ("foundry.example.com", "has no scheme"),
    ("https://10.0.0.5:52180", "is not http://"),
    ("http://10.0.0.5:52180/v1", "ends in /v1"),
    ("http://10.0.0.5:99999", "is not a URL"),
    ("http://user:pw@10.0.0.5:52180", "needs a host and nothing but a path"),
    ("http://10.0.0.5:52180?x=1", "needs a host and nothing but a path"),
    ("http://127.0.0.1:52180", "loopback"),
    ("http://[::1]:52180", "loopback"),
    ("http://0.0.0.0:52180", "non-routable"),
    ("http://localhost:52180", "neither an IP address nor a fully qualified DNS name"),
    ("http://bad_name.example.com:1", "neither an IP address"),
    ("http://10.0.0.5:1,http://10.0.0.6:2", "differ in port or path"),
    ("http://10.0.0.5:1,http://10.0.0.6:1/catalogs/local", "differ in port or path"),
    ("http://10.0.0.5:1,http://[fd00::1]:1", "mix"),
    ("http://10.0.0.5:1,http://a.example.com:1", "mix"),
    ("http://a.example.com:1,http://b.example.com:1", "ExternalName Service names one host"),
    ("http://10.0.0.5:1,http://10.0.0.5:1", "listed twice"),
])
def test_bad_upstreams(raw, words):
    with pytest.raises(UsageError) as err:
        parse_upstreams(raw)
    msg = str(err.value)
    assert words in msg, msg
    assert " — " in msg and "\n" not in msg and err.value.exit_code == 2
