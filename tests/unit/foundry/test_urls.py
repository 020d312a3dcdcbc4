"""Pure URL helpers: roots, OpenAI bases, the container view, bind URLs."""

import pytest

from stackctl.foundry.urls import bind_urls, container_url, first_url, openai_base, root_url


@pytest.mark.parametrize(
    ("given", "root"),
    [
        ("http://127.0.0.1:5273/openai/status", "http://127.0.0.1:5273"),
        ("http://127.0.0.1:5273/", "http://127.0.0.1:5273"),
        ("http://localhost:5273/v1", "http://localhost:5273"),
        ("http://127.0.0.1:52180/catalogs/local/v1/", "http://127.0.0.1:52180"),
        ("http://127.0.0.1:52180/status", "http://127.0.0.1:52180"),
        ("https://proxy.example/foundry/v1", "https://proxy.example/foundry"),
        ("  http://[::1]:8080/openai  ", "http://[::1]:8080"),
    ],
)
def test_root_url_strips_api_paths_only(given, root):
    assert root_url(given) == root


@pytest.mark.parametrize("bad", ["127.0.0.1:5273", "ftp://x/", "http://", ""])
def test_root_url_rejects_non_http(bad):
    with pytest.raises(ValueError):
        root_url(bad)


def test_openai_bases():
    assert openai_base("http://127.0.0.1:1") == "http://127.0.0.1:1/v1"
    assert openai_base("http://127.0.0.1:1/", local=True) == "http://127.0.0.1:1/catalogs/local/v1"


@pytest.mark.parametrize(
    ("host_url", "container"),
    [
        ("http://127.0.0.1:52180/catalogs/local/v1", "http://host.docker.internal:52180/catalogs/local/v1"),
        ("http://localhost:5273/v1", "http://host.docker.internal:5273/v1"),
        ("http://172.17.0.1:5273", "http://host.docker.internal:5273"),
        ("https://127.0.0.1/v1?x=1", "https://host.docker.internal/v1?x=1"),
    ],
)
def test_container_url_keeps_port_and_path(host_url, container):
    assert container_url(host_url) == container


def test_container_url_custom_host():
    assert container_url("http://127.0.0.1:1/v1", host="gw") == "http://gw:1/v1"


def test_first_url_trims_trailing_punctuation():
    assert first_url("running on http://127.0.0.1:5273/openai/status.") == "http://127.0.0.1:5273/openai/status"
    assert first_url("(see 'http://a:1/x')") == "http://a:1/x"
    assert first_url("not running!") is None


def test_bind_urls_joins_with_semicolons_and_dedups():
    assert bind_urls(["127.0.0.1", "172.17.0.1", "127.0.0.1"], 52180) == "http://127.0.0.1:52180;http://172.17.0.1:52180"
    assert bind_urls(["::1"], 1) == "http://[::1]:1"
