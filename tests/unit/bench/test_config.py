"""Prompt and model files: strict validation with exact messages (one fixture per error)."""

from __future__ import annotations

import pytest
import yaml

from stackctl.bench.config import DEFAULT_PROMPTS, load_prompts, resolve_models
from stackctl.errors import UsageError


def write(tmp_path, text, name="p.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_the_committed_default_prompt_set_is_valid():
    ps = load_prompts()
    assert ps.source == str(DEFAULT_PROMPTS)
    assert [p.id for p in ps.prompts] == ["short-answer", "list", "code", "summarize"]
    assert [p.max_tokens for p in ps.prompts] == [32, 64, 96, 64]


@pytest.mark.parametrize(("text", "message"), [
    ("prompts:\n  - {id: a, text: hi}\ntemperature: 1\n",
     "temperature: unknown key (allowed: max_tokens, prompts)"),
    ("prompts:\n  - {id: a, text: hi, model: x}\n",
     "prompts[0].model: unknown key (allowed: id, text, max_tokens)"),
    ("max_tokens: 0\nprompts:\n  - {id: a, text: hi}\n",
     "max_tokens: must be an integer from 1 to 4096, got 0"),
    ("prompts:\n  - {id: a, text: hi, max_tokens: many}\n",
     "prompts[0].max_tokens: must be an integer from 1 to 4096, got 'many'"),
    ("prompts:\n  - {id: a, text: hi}\n  - {id: a, text: ho}\n",
     "prompts[1].id: 'a' is used twice"),
    ("prompts:\n  - {id: a, text: ''}\n", "prompts[0].text: must be a non-empty string"),
    ("prompts: []\n", "prompts: must be a non-empty list"),
    ("prompts:\n  - just text\n", "prompts[0]: must be a mapping with id and text"),
    ("- a\n", "top level must be a mapping with 'prompts'"),
])
def test_prompt_file_errors_name_file_and_key(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(UsageError) as e:
        load_prompts(p)
    assert str(e.value) == f"{p}: {message}"
    assert e.value.exit_code == 2


def test_all_problems_are_reported_at_once(tmp_path):
    p = write(tmp_path, "extra: 1\nprompts:\n  - {id: '', text: hi, foo: 2}\n")
    with pytest.raises(UsageError) as e:
        load_prompts(p)
    assert str(e.value) == (f"{p}: extra: unknown key (allowed: max_tokens, prompts); "
                            "prompts[0].foo: unknown key (allowed: id, text, max_tokens); "
                            "prompts[0].id: must be a non-empty string")


def test_unreadable_prompt_files(tmp_path):
    with pytest.raises(UsageError, match=r"nope.yaml: no such file$"):
        load_prompts(tmp_path / "nope.yaml")
    p = write(tmp_path, "prompts: [\n")
    with pytest.raises(UsageError) as e:
        load_prompts(p)
    assert str(e.value) == f"{p}: not valid YAML at line 2"


def test_models_from_option_and_file(tmp_path):
    assert resolve_models(None, None) is None
    assert resolve_models(" a:1, b:2 ,a:1,", None) == ("a:1", "b:2")
    f = write(tmp_path, yaml.safe_dump({"models": ["x:1", "y:2"]}), "m.yaml")
    assert resolve_models(None, f) == ("x:1", "y:2")


@pytest.mark.parametrize(("text", "message"), [
    ("models: []\n", "models: must be a non-empty list of model ids"),
    ("models: [a, 3]\n", "models[1]: must be a non-empty string, got 3"),
    ("models: [a]\nrounds: 2\n", "rounds: unknown key (allowed: models)"),
    ("[a, b]\n", "top level must be a mapping with 'models'"),
])
def test_models_file_errors(tmp_path, text, message):
    f = write(tmp_path, text, "m.yaml")
    with pytest.raises(UsageError) as e:
        resolve_models(None, f)
    assert str(e.value) == f"{f}: {message}"


def test_models_option_errors(tmp_path):
    with pytest.raises(UsageError, match=r"^use --models or --models-file, not both$"):
        resolve_models("a", tmp_path / "m.yaml")
    with pytest.raises(UsageError, match=r"^--models: give at least one model id"):
        resolve_models(" , ", None)


def test_bench_options_are_checked_before_any_request():
    from stackctl.bench.run import BenchOptions, run_bench

    with pytest.raises(UsageError, match=r"^--rounds must be at least 1, got 0$"):
        run_bench(BenchOptions(rounds=0, base_url="http://x/v1", models="m"))
    with pytest.raises(UsageError, match=r"^--base-url needs --models or --models-file"):
        run_bench(BenchOptions(base_url="http://x/v1"))
