"""Config: every error fixture yields exactly its expected message; tracked configs load."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundry_gateway.__main__ import main
from foundry_gateway.config import DEFAULT_LISTEN, ConfigError, load_config
from tests.plugins.common import REPO

HERE = Path(__file__).parent
ERRORS = sorted((HERE / "config_errors").glob("*.yml"))
KEY = "k" * 32
ENV = {"GATEWAY_API_KEY": KEY, "SHORT_KEY": "short!"}


def _expected(path: Path) -> list[str]:
    lines = [ln.removeprefix("# expect: ") for ln in path.read_text().splitlines()
             if ln.startswith("# expect: ")]
    assert lines, f"{path} has no '# expect:' header"
    return [ln.replace("{file}", str(path)) for ln in lines]


def test_there_is_one_fixture_per_error() -> None:
    assert len(ERRORS) >= 25


@pytest.mark.parametrize("path", ERRORS, ids=[p.stem for p in ERRORS])
def test_config_error_message_is_exact(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV)
    assert caught.value.problems == _expected(path)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_loopback_and_guarded(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "upstreams: [{name: f, url: 'http://127.0.0.1:1/'}]\n"),
                         environ=ENV)
    assert config.listen_addresses == (DEFAULT_LISTEN,) and DEFAULT_LISTEN.startswith("127.0.0.1:")
    assert config.metrics_require_key is True
    assert config.per_user.enabled is False
    assert config.upstream.url == "http://127.0.0.1:1"
    assert KEY not in repr(config)  # secrets stay out of logs


def test_env_overrides_the_upstream_url(tmp_path: Path) -> None:
    path = _write(tmp_path, "upstreams: [{name: f, url: 'http://127.0.0.1:1'}]\n")
    config = load_config(path, environ={**ENV, "GATEWAY_UPSTREAM_URL": "http://127.0.0.1:2/catalogs/local"})
    assert config.upstream.url == "http://127.0.0.1:2/catalogs/local"


def test_a_bad_env_url_names_the_env_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "upstreams: [{name: f, url_env: FOUNDRY_URL}]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={**ENV, "FOUNDRY_URL": "localhost:5273"})
    assert caught.value.problems == [
        f'{path}: upstreams[0].url_env: "localhost:5273" is not an http URL; write it like '
        "http://127.0.0.1:52180 (Foundry Local serves plain HTTP on loopback)"]


def test_missing_file_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yml", environ=ENV)
    assert str(caught.value) == (f"{tmp_path / 'nope.yml'}: cannot read: No such file or directory; "
                                 "check the --config path")


@pytest.mark.parametrize("name", ["config.example.yml", "config.stack.yml", "config.edge.yml",
                                  "fleet.example.yml"])
def test_tracked_configs_load(name: str) -> None:
    config = load_config(REPO / "gateway" / name,
                         environ={**ENV, "GATEWAY_UPSTREAM_URL": "http://127.0.0.1:52180",
                                  "EDGE_API_KEY": KEY, "EDGE_DESK2_KEY": KEY,
                                  "CLOUD_API_KEY": KEY})
    assert config.upstream.name == "foundry"
    assert config.fleet == (name == "fleet.example.yml")


def test_check_config_prints_ok_and_exits_0(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("GATEWAY_API_KEY", KEY)
    path = _write(tmp_path, "upstreams: [{name: foundry, url: 'http://127.0.0.1:52180'}]\n")
    assert main(["--config", str(path), "--check-config"]) == 0
    assert capsys.readouterr().out == (f"{path}: OK; upstream foundry at http://127.0.0.1:52180; "
                                       f"listening on {DEFAULT_LISTEN}\n")


def test_check_config_reports_problems_and_exits_2(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("GATEWAY_API_KEY", raising=False)
    monkeypatch.delenv("GATEWAY_UPSTREAM_URL", raising=False)
    path = _write(tmp_path, "upstreams: [{name: foundry}]\n")
    assert main(["--config", str(path), "--check-config"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "config has 2 problem(s):"
    assert err[1].startswith(f"{path}: api_key_env: environment variable GATEWAY_API_KEY is not set")


def test_bad_listen_flag_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["--config", str(tmp_path / "x.yml"), "--listen-address", "0.0.0.0"]) == 2
    assert "is not IP:port" in capsys.readouterr().err


def test_listen_flag_takes_a_comma_separated_list(tmp_path: Path, capsys, monkeypatch) -> None:
    # compose hands the stack's managed GATEWAY_LISTEN ("loopback,bridge") as one argument
    monkeypatch.setenv("GATEWAY_API_KEY", "k" * 32)
    monkeypatch.setenv("GATEWAY_UPSTREAM_URL", "http://127.0.0.1:1")
    cfg = tmp_path / "c.yml"
    cfg.write_text("upstreams: [{name: foundry}]\n")
    assert main(["--config", str(cfg), "--check-config",
                 "--listen-address", "127.0.0.1:9180,172.17.0.1:9180"]) == 0
    assert "listening on 127.0.0.1:9180, 172.17.0.1:9180" in capsys.readouterr().out
    assert main(["--config", str(cfg), "--check-config", "--listen-address", "127.0.0.1:9180,x"]) == 2
    assert "'x' is not IP:port" in capsys.readouterr().err
