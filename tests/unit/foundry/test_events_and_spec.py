"""The start-up event protocol and the model options (pure)."""

import pytest

from stackctl.errors import UsageError
from stackctl.foundry.events import ERROR, PROGRESS, Event, decode
from stackctl.foundry.model_spec import local_name, resolve


def test_event_roundtrip():
    e = Event(PROGRESS, "qwen:4", percent=42.5)
    assert decode(e.encode()) == e
    err = Event(ERROR, "boom", code=2)
    assert decode(err.encode()) == err


@pytest.mark.parametrize("line", [b"", b"not json", b"[1]", b'{"kind": "other"}', b"[foundry] native log line"])
def test_non_events_are_ignored(line):
    assert decode(line) is None


def test_local_model_from_folder(tmp_path):
    folder = tmp_path / "My Model_v2"
    folder.mkdir()
    (folder / "genai_config.json").write_text("{}")
    spec = resolve(None, str(folder))
    assert spec.local and spec.alias == "my-model_v2" and spec.local_id == "my-model_v2-generic-cpu:1"
    assert resolve(None, str(folder), "tiny-chat").local_id == "tiny-chat-generic-cpu:1"
    assert local_name(tmp_path / "---") == "local-model"


def test_catalog_model():
    spec = resolve("qwen2.5-0.5b", None)
    assert not spec.local and spec.alias == "qwen2.5-0.5b"


@pytest.mark.parametrize(
    ("model", "path", "name", "message"),
    [
        ("a", "b", None, "pass either --model ALIAS or --model-path DIR, not both"),
        (None, None, None, "no model: pass --model ALIAS (catalog, needs internet) or --model-path DIR (local, offline)"),
        ("a", None, "x", "--name only applies with --model-path"),
    ],
)
def test_bad_options(model, path, name, message):
    with pytest.raises(UsageError) as err:
        resolve(model, path, name)
    assert str(err.value) == message
    assert err.value.exit_code == 2


def test_model_path_without_genai_config(tmp_path):
    with pytest.raises(UsageError) as err:
        resolve(None, str(tmp_path))
    assert str(err.value).startswith(f"--model-path {tmp_path}: no genai_config.json — ")
    assert "\n" not in str(err.value)


def test_model_path_missing(tmp_path):
    with pytest.raises(UsageError, match="no such directory"):
        resolve(None, str(tmp_path / "nope"))
