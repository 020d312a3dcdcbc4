"""Discovery finds the real embedded server: through its state file and through FOUNDRY_LOCAL_ENDPOINT."""

from pathlib import Path

from stackctl.foundry import discover


def _no_cli(argv, **kwargs):
    raise FileNotFoundError(argv[0])


def test_discovers_embedded_server_through_the_state_file(foundry_server):
    d = discover({"FOUNDRY_LOCAL_ENDPOINT": ""}, Path(foundry_server.state_dir), run=_no_cli)
    assert d.found, d.reason
    assert (d.source, d.generation, d.root_url) == ("embedded", "sdk", foundry_server.root_url)
    assert d.chat_base_url == foundry_server.chat_base_url
    assert d.chat_models == (foundry_server.model_id,)
    assert d.openai_base_urls == (foundry_server.root_url + "/v1", foundry_server.chat_base_url)


def test_discovers_it_through_foundry_local_endpoint(foundry_server, tmp_path):
    env = {"FOUNDRY_LOCAL_ENDPOINT": foundry_server.root_url + "/"}
    d = discover(env, tmp_path, run=_no_cli)  # tmp_path: no state file there
    assert d.found, d.reason
    assert (d.source, d.generation, d.root_url) == ("env", "sdk", foundry_server.root_url)
    assert d.chat_base_url.endswith("/catalogs/local/v1")
    assert d.chat_models == ("tiny-chat-generic-cpu:1",)


def test_nothing_there_gives_a_reason(tmp_path):
    d = discover({}, tmp_path, run=_no_cli)
    assert not d.found
    assert "./stack foundry.serve" in d.reason
