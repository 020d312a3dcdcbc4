"""#1: a model given on the command line is remembered in .env (FOUNDRY_MODEL or
FOUNDRY_MODEL_PATH; setting one clears the other), said in one line, and what every
later command reads; the catalog error never claims a --model nobody passed."""

from __future__ import annotations

import io
import stat

import pytest
from rich.console import Console

from stackctl.config import envfile
from stackctl.config.stack import Stack
from stackctl.console import Reporter
from stackctl.errors import UsageError
from stackctl.foundry import runtime, view
from tests.plugins.foundry import TINY_MODEL_DIR


@pytest.fixture
def stack(tmp_path):
    path = tmp_path / ".env"
    envfile.ensure(path)
    return Stack(tmp_path, path, envfile.load(path))


def wide() -> Reporter:
    return Reporter(Console(file=io.StringIO(), width=1000, highlight=False))


def said(rep: Reporter) -> list[str]:
    return [ln for ln in rep.console.file.getvalue().splitlines() if ln.strip()]


def test_model_path_is_written_clearing_the_alias_and_said_once(stack):
    rep = wide()
    view.remember_model(stack, None, str(TINY_MODEL_DIR), rep)
    env = envfile.load(stack.env_file)
    assert env["FOUNDRY_MODEL_PATH"] == str(TINY_MODEL_DIR.resolve())
    assert env["FOUNDRY_MODEL"] == ""
    assert view.configured_model(env) == (None, str(TINY_MODEL_DIR.resolve()))
    assert stat.S_IMODE(stack.env_file.stat().st_mode) == 0o600
    lines = said(rep)
    assert len(lines) == 1 and "remembered FOUNDRY_MODEL_PATH=" in lines[0] and "FOUNDRY_MODEL cleared" in lines[0]


def test_alias_is_written_clearing_the_path(stack):
    view.remember_model(stack, None, str(TINY_MODEL_DIR), Reporter.quiet())
    rep = wide()
    view.remember_model(stack.with_env(envfile.load(stack.env_file)), "phi-4-mini", None, rep)
    env = envfile.load(stack.env_file)
    assert (env["FOUNDRY_MODEL"], env["FOUNDRY_MODEL_PATH"]) == ("phi-4-mini", "")
    assert view.configured_model(env) == ("phi-4-mini", None)
    assert len(said(rep)) == 1


def test_the_same_model_again_writes_and_says_nothing(stack):
    view.remember_model(stack, None, str(TINY_MODEL_DIR), Reporter.quiet())
    before = stack.env_file.read_bytes()
    rep = wide()
    view.remember_model(stack, None, str(TINY_MODEL_DIR), rep)
    assert stack.env_file.read_bytes() == before and said(rep) == []


def test_a_bad_folder_is_refused_and_nothing_written(stack, tmp_path):
    before = stack.env_file.read_bytes()
    with pytest.raises(UsageError, match="no such directory"):
        view.remember_model(stack, None, str(tmp_path / "nope"), Reporter.quiet())
    assert stack.env_file.read_bytes() == before


def test_no_option_changes_nothing(stack):
    before = stack.env_file.read_bytes()
    assert view.remember_model(stack, None, None, Reporter.quiet()) == {}
    assert stack.env_file.read_bytes() == before


def test_catalog_error_names_no_option_and_the_offline_key():
    msg = runtime.offline_message("qwen2.5-0.5b", runtime.DEFAULT_CATALOG_URL)
    assert "--model qwen2.5-0.5b" not in msg
    assert "FOUNDRY_MODEL_PATH" in msg and "./stack up --model-path DIR" in msg
    assert "invoke" not in msg
