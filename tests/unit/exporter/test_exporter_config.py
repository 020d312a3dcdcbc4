"""Config: every error fixture yields exactly its expected message; tracked configs load."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundry_exporter.__main__ import main
from foundry_exporter.config import AUTO, ConfigError, load_config
from tests.plugins.common import FIXTURES, REPO

ERRORS = sorted((FIXTURES / "exporter" / "config").glob("*.yml"))


def _expected(path: Path) -> list[str]:
    lines = [ln.removeprefix("# expect: ") for ln in path.read_text().splitlines()
             if ln.startswith("# expect: ")]
    assert lines, f"{path} has no '# expect:' header"
    return [ln.replace("{file}", str(path)) for ln in lines]


def test_there_is_one_fixture_per_error() -> None:
    assert len(ERRORS) >= 30


@pytest.mark.parametrize("path", ERRORS, ids=[p.stem for p in ERRORS])
def test_config_error_message_is_exact(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.problems == _expected(path)


def test_all_problems_are_reported_at_once() -> None:
    path = FIXTURES / "exporter" / "config" / "many_errors.yml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert len(caught.value.problems) == 5


def test_missing_file_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yml", environ={})
    assert str(caught.value) == (f"{tmp_path / 'nope.yml'}: cannot read: No such file or directory; "
                                 "check the --config path")


def test_example_config_loads_with_secrets_from_env() -> None:
    config = load_config(REPO / "exporter" / "config.example.yml", environ={"VLLM_API_KEY": "s3cr3t-key"})
    by_name = {t.name: t for t in config.targets}
    assert by_name["foundry"].module.probes == ("models", "loaded", "chat")
    assert by_name["foundry"].module.canary.interval == 60.0
    assert by_name["vllm"].module.api_key == "s3cr3t-key"
    assert "s3cr3t" not in repr(by_name["vllm"])  # secrets stay out of logs
    assert by_name["open-webui"].module.probes == ("health",)
    assert set(config.modules) >= {"foundry", "openai", "openwebui", "foundry_local_catalog"}


def test_stack_config_reads_foundry_url_from_env() -> None:
    config = load_config(REPO / "exporter" / "config.stack.yml",
                         environ={"FOUNDRY_BASE_URL": "http://host.docker.internal:9180/",
                                  "FOUNDRY_API_KEY": "gateway-key"})
    foundry, webui = config.targets
    assert (foundry.kind, foundry.url, foundry.module.canary.model) == (
        "foundry", "http://host.docker.internal:9180", AUTO)
    assert foundry.module.api_key == "gateway-key"  # the gateway wants it
    assert (webui.kind, webui.url) == ("openwebui", "http://open-webui:8080")


def test_defaults_apply_and_probes_keep_run_order(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("defaults: {interval: 2m, timeout: 500ms}\n"
                    "targets: [{name: a, kind: foundry, url: 'http://h:1', probes: [chat, models]}]\n")
    (target,) = load_config(path, environ={}).targets
    assert (target.interval, target.module.timeout, target.module.probes) == (
        120.0, 0.5, ("models", "chat"))


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yml"
    good.write_text("targets: [{name: a, kind: openwebui, url: 'http://h:1'}]\n")
    assert main(["--config", str(good), "--check-config"]) == 0
    assert capsys.readouterr().out == f"{good}: OK; targets: a (openwebui)\n"
    bad = FIXTURES / "exporter" / "config" / "bad_kind.yml"
    assert main(["--config", str(bad), "--check-config"]) == 2
    err = capsys.readouterr().err
    assert err == "config has 1 problem(s):\n" + "\n".join(_expected(bad)) + "\n"
