"""The committed tiny chat model fixture is intact and self-consistent.

The integration and e2e tiers serve tests/fixtures/tiny-model with the real
Foundry Local runtime; a truncated or hand-edited file there would surface as an
obscure native error much later. These checks are pure file reads (no torch,
no runtime) and pin the facts the serving code relies on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODEL_DIR = FIXTURES / "tiny-model"
MANIFEST = FIXTURES / "tiny-model.sha256"

SPECIAL_TOKENS = {
    "<|endoftext|>": 0,
    "<|im_start|>": 1,
    "<|im_end|>": 2,
    "<tool_call>": 3,
    "</tool_call>": 4,
}
EOS_TOKEN, EOS_ID = "<|im_end|>", 2
REQUIRED_FILES = {
    "genai_config.json",
    "model.onnx",
    "model.onnx.data",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
}


def parse_manifest(text: str) -> dict[str, str]:
    """`<sha256>  <relative path>` lines -> {path: sha256}; rejects malformed or duplicate lines."""
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        digest, sep, path = line.partition("  ")
        if (
            not sep
            or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)
            or not path
        ):
            raise ValueError(f"manifest line {number} is malformed: {line!r}")
        if path in entries:
            raise ValueError(f"manifest line {number} repeats {path!r}")
        entries[path] = digest
    return entries


def files_on_disk(model_dir: Path) -> dict[str, str]:
    base = model_dir.parent
    return {
        p.relative_to(base).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(model_dir.rglob("*"))
        if p.is_file()
    }


def manifest_problems(manifest: dict[str, str], disk: dict[str, str]) -> list[str]:
    problems = [f"missing on disk: {p}" for p in sorted(manifest.keys() - disk.keys())]
    problems += [f"not in manifest: {p}" for p in sorted(disk.keys() - manifest.keys())]
    problems += [
        f"checksum differs: {p}"
        for p in sorted(manifest.keys() & disk.keys())
        if manifest[p] != disk[p]
    ]
    return problems


# --- the comparison logic itself can fail -------------------------------------------------


def test_manifest_comparison_reports_missing_extra_and_changed() -> None:
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    manifest = {"m/x": a, "m/y": b}
    assert manifest_problems(manifest, {"m/x": a, "m/y": b}) == []
    assert manifest_problems(manifest, {"m/x": a}) == ["missing on disk: m/y"]
    assert manifest_problems(manifest, {"m/x": a, "m/y": b, "m/z": c}) == ["not in manifest: m/z"]
    assert manifest_problems(manifest, {"m/x": a, "m/y": c}) == ["checksum differs: m/y"]


@pytest.mark.parametrize(
    "text",
    ["nothex" + "0" * 58 + "  m/x", "a" * 64 + " m/x", "a" * 64 + "  ", ("a" * 64 + "  m/x\n") * 2],
)
def test_manifest_parser_rejects_malformed_lines(text: str) -> None:
    with pytest.raises(ValueError):
        parse_manifest(text)


def test_manifest_check_notices_a_changed_file(tmp_path: Path) -> None:
    model = tmp_path / "tiny-model"
    model.mkdir()
    (model / "f.bin").write_bytes(b"one")
    manifest = files_on_disk(model)
    (model / "f.bin").write_bytes(b"two")
    assert manifest_problems(manifest, files_on_disk(model)) == [
        "checksum differs: tiny-model/f.bin"
    ]


# --- the committed fixture ------------------------------------------------------------------


def test_manifest_is_sorted_and_matches_files_exactly() -> None:
    text = MANIFEST.read_text(encoding="utf-8")
    manifest = parse_manifest(text)
    assert list(manifest) == sorted(manifest), "manifest must be sorted by path"
    assert text.endswith("\n")
    assert manifest_problems(manifest, files_on_disk(MODEL_DIR)) == []


def test_required_files_present() -> None:
    present = {p.name for p in MODEL_DIR.iterdir() if p.is_file()}
    assert present >= REQUIRED_FILES, f"missing: {sorted(REQUIRED_FILES - present)}"


def test_fixture_is_small() -> None:
    total = sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file())
    assert 500_000 < total < 4_000_000


def test_genai_config_describes_the_tiny_qwen2_model() -> None:
    cfg = json.loads((MODEL_DIR / "genai_config.json").read_text(encoding="utf-8"))
    model = cfg["model"]
    assert model["type"] == "qwen2"
    assert model["vocab_size"] == 4096
    assert model["context_length"] == 4096
    assert model["eos_token_id"] == EOS_ID
    assert model["pad_token_id"] == SPECIAL_TOKENS["<|endoftext|>"]
    decoder = model["decoder"]
    assert decoder["filename"] == "model.onnx"
    assert (MODEL_DIR / decoder["filename"]).is_file()
    assert (decoder["hidden_size"], decoder["num_hidden_layers"]) == (64, 2)
    assert (decoder["num_attention_heads"], decoder["num_key_value_heads"]) == (4, 2)
    assert cfg["search"]["max_length"] == 4096


def test_tokenizer_has_the_special_tokens_at_fixed_ids() -> None:
    tok = json.loads((MODEL_DIR / "tokenizer.json").read_text(encoding="utf-8"))
    added = {t["content"]: t["id"] for t in tok["added_tokens"]}
    assert added == SPECIAL_TOKENS
    assert all(t["special"] for t in tok["added_tokens"])
    assert tok["model"]["type"] == "BPE"
    assert len(tok["model"]["vocab"]) == 4096
    assert tok["pre_tokenizer"]["type"] == "Sequence"
    assert [p["type"] for p in tok["pre_tokenizer"]["pretokenizers"]] == ["Split", "ByteLevel"]


def test_tokenizer_config_names_eos_and_class() -> None:
    cfg = json.loads((MODEL_DIR / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert cfg["eos_token"] == EOS_TOKEN
    assert cfg["pad_token"] == "<|endoftext|>"
    assert cfg["tokenizer_class"] == "Qwen2Tokenizer"
    assert cfg["model_max_length"] == 4096


def test_chat_template_is_chatml_with_tools() -> None:
    template = (MODEL_DIR / "chat_template.jinja").read_text(encoding="utf-8")
    for marker in (
        "<|im_start|>",
        "<|im_end|>",
        "<tool_call>",
        "</tool_call>",
        "add_generation_prompt",
        "tools",
    ):
        assert marker in template, marker
