"""The .env file: generated once, 0600, idempotent, never overwriting the user."""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from stackctl.config import envfile
from stackctl.config.settings import SECRET_KEYS, SETTINGS
from stackctl.errors import UsageError


def mode(p):
    return stat.S_IMODE(p.stat().st_mode)


def test_first_run_writes_every_key_0600_with_distinct_generated_secrets(tmp_path):
    p = tmp_path / ".env"
    env, added = envfile.ensure(p)
    assert mode(p) == 0o600
    assert set(added) == {s.key for s in SETTINGS}
    secrets = [env[k] for k in SECRET_KEYS]
    assert len(set(secrets)) == len(secrets)
    assert all(len(v) >= 32 for v in secrets)
    assert env["STACK_BIND_ADDRESS"] == "127.0.0.1"


def test_second_run_changes_nothing(tmp_path):
    p = tmp_path / ".env"
    envfile.ensure(p)
    before = p.read_bytes()
    _, added = envfile.ensure(p)
    assert added == []
    assert p.read_bytes() == before


def test_user_values_and_comments_are_kept_and_missing_keys_appended(tmp_path):
    p = tmp_path / ".env"
    p.write_text("# mine\nOPENWEBUI_PORT=3300\nMY_OWN=1\n")
    env, added = envfile.ensure(p)
    text = p.read_text()
    assert text.startswith("# mine\nOPENWEBUI_PORT=3300\nMY_OWN=1\n")
    assert env["OPENWEBUI_PORT"] == "3300"
    assert "OPENWEBUI_PORT" not in added and "GRAFANA_PORT" in added


def test_loose_permissions_are_tightened(tmp_path):
    p = tmp_path / ".env"
    envfile.ensure(p)
    p.chmod(0o644)
    envfile.ensure(p)
    assert mode(p) == 0o600


def test_empty_secrets_from_the_example_are_generated(tmp_path):
    p = tmp_path / ".env"
    p.write_text(envfile.render_example())
    env, added = envfile.ensure(p)
    assert set(SECRET_KEYS) <= set(added)
    assert all(len(env[k]) >= 32 for k in SECRET_KEYS)


@pytest.mark.parametrize("text, needle", [
    ("OPENWEBUI_PORT 3000\n", "line 1: expected KEY=VALUE"),
    ("OPENWEBUI_PORT='30$0'\n", "line 1: OPENWEBUI_PORT contains '$'"),
    ("A=1\nA=2\n", "line 2: A is set twice"),
    ("lower=1\n", "line 1: expected KEY=VALUE"),
])
def test_malformed_lines_are_refused_and_nothing_is_written(tmp_path, text, needle):
    p = tmp_path / ".env"
    p.write_text(text)
    with pytest.raises(UsageError) as exc:
        envfile.ensure(p)
    assert needle in str(exc.value)
    assert str(p) in str(exc.value)
    assert p.read_text() == text
    assert exc.value.exit_code == 2


@pytest.mark.parametrize("line, needle", [
    ("OPENWEBUI_PORT=70000", "OPENWEBUI_PORT='70000' is not a port"),
    ("GRAFANA_PORT=3000", "both use port 3000"),
    ("STACK_BIND_ADDRESS=localhost", "STACK_BIND_ADDRESS='localhost' is not an IP address"),
    ("FOUNDRY_LOCAL_ENDPOINT=ftp://x", "is not an http(s) URL"),
    ("WEBUI_ADMIN_PASSWORD=short", "WEBUI_ADMIN_PASSWORD is shorter than 12"),
    ("WEBUI_ADMIN_EMAIL=admin", "is not an email address"),
    ("COMPOSE_PROJECT_NAME=My Stack", "COMPOSE_PROJECT_NAME='My Stack'"),
])
def test_bad_values_are_named(tmp_path, line, needle):
    p = tmp_path / ".env"
    p.write_text(line + "\n")
    with pytest.raises(UsageError) as exc:
        envfile.ensure(p)
    assert needle in str(exc.value)
    assert p.read_text() == line + "\n"


def test_all_problems_are_reported_at_once(tmp_path):
    p = tmp_path / ".env"
    p.write_text("OPENWEBUI_PORT=x\nPROMETHEUS_PORT=0\n")
    with pytest.raises(UsageError) as exc:
        envfile.ensure(p)
    assert "OPENWEBUI_PORT" in str(exc.value) and "PROMETHEUS_PORT" in str(exc.value)


def test_set_managed_rewrites_only_managed_keys(tmp_path):
    p = tmp_path / ".env"
    envfile.ensure(p)
    before = envfile.load(p)
    assert envfile.set_managed(p, {"GATEWAY_UPSTREAM_URL": "http://host.docker.internal:1/v1"})
    after = envfile.load(p)
    assert after["GATEWAY_UPSTREAM_URL"] == "http://host.docker.internal:1/v1"
    assert {k: v for k, v in after.items() if k != "GATEWAY_UPSTREAM_URL"} == \
        {k: v for k, v in before.items() if k != "GATEWAY_UPSTREAM_URL"}
    assert not envfile.set_managed(p, {"GATEWAY_UPSTREAM_URL": "http://host.docker.internal:1/v1"})
    with pytest.raises(ValueError):
        envfile.set_managed(p, {"OPENWEBUI_PORT": "1"})
    assert mode(p) == 0o600


def test_load_without_file_says_run_up(tmp_path):
    with pytest.raises(UsageError, match=r"run `\./stack up`"):
        envfile.load(tmp_path / ".env")


def test_committed_example_matches_settings(repo_root):
    assert (repo_root / ".env.example").read_text() == envfile.render_example(), \
        "regenerate: .venv/bin/python -c \"from stackctl.config import envfile; open('.env.example','w').write(envfile.render_example())\""


# --- read as compose reads (issue 13 item 8); the compose binaries themselves
# are run over the same corpus in tests/integration/test_envfile_vs_compose.py.

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "envfile" / "corpus.txt"
_MARKERS = {"<TAB>": "\t", "<SP>": " ", "<CR>": "\r", "<LF>": "\n"}


@dataclass(frozen=True)
class Case:
    """One corpus entry: the .env text it stands for and what must happen to it."""

    outcome: str  # same | differ | interp | policy
    text: str
    corpus_line: int

    @property
    def key(self) -> str:
        return re.match(r"[ \t]*(?:export[ \t]+)?'?([A-Za-z_][A-Za-z0-9_]*)", self.text).group(1)

    @property
    def refused_at(self) -> int:
        """The line a refusal must name: the last one holding the key."""
        return max(n for n, ln in enumerate(self.text.split("\n"), 1) if self.key in ln)

    def __str__(self) -> str:
        return f"{CORPUS.name}:{self.corpus_line}:{self.key}"


def load_corpus() -> list[Case]:
    cases = []
    for n, raw in enumerate(CORPUS.read_text(encoding="utf-8").split("\n"), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        outcome, sep, line = raw.partition("| ")
        assert sep and outcome.strip() in ("same", "differ", "interp", "policy"), f"corpus line {n}: {raw!r}"
        for marker, ch in _MARKERS.items():
            line = line.replace(marker, ch)
        cases.append(Case(outcome.strip(), line + "\n", n))
    return cases


CASES = load_corpus()


def test_the_grafana_example_reads_as_compose_reads_it(tmp_path):
    """Compose hands Grafana `abc`: the stack must check `abc` (too short), not `abc #comment`."""
    assert envfile.values(envfile.parse("GRAFANA_ADMIN_PASSWORD=abc #comment\n")) == {"GRAFANA_ADMIN_PASSWORD": "abc"}
    p = tmp_path / ".env"
    p.write_text("GRAFANA_ADMIN_PASSWORD=abc #comment\n")
    with pytest.raises(UsageError, match="GRAFANA_ADMIN_PASSWORD is shorter than 12"):
        envfile.ensure(p)


@pytest.mark.parametrize("case", [c for c in CASES if c.outcome == "same"], ids=str)
def test_lines_both_composes_read_alike_are_accepted(case):
    parsed = envfile.values(envfile.parse(case.text))
    assert list(parsed) == [case.key]


@pytest.mark.parametrize("case", [c for c in CASES if c.outcome != "same"], ids=str)
def test_lines_the_composes_read_apart_are_refused_in_one_line_naming_line_and_key(case):
    with pytest.raises(UsageError) as exc:
        envfile.parse(case.text, "the/.env")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("the/.env: ")
    assert f"line {case.refused_at}: " in msg and case.key in msg
    assert "—" in msg  # the fix follows the dash


def test_crlf_and_a_bom_read_like_lf():
    lf = "A=1 #c\nB='x y'\nC=\"q\\\"\"\n"
    expected = envfile.values(envfile.parse(lf))
    assert expected == {"A": "1", "B": "x y", "C": 'q"'}
    assert envfile.values(envfile.parse("\ufeff" + lf.replace("\n", "\r\n"))) == expected


def test_a_lone_carriage_return_in_the_file_is_refused(tmp_path):
    """read() sees the file's bytes: Python's text mode would turn the CR into a line break."""
    p = tmp_path / ".env"
    p.write_bytes(b"OPENWEBUI_PORT=3000\rGRAFANA_PORT=3001\n")
    with pytest.raises(UsageError, match="line 1: OPENWEBUI_PORT contains a carriage return"):
        envfile.ensure(p)


WRITTEN = ["plain", "abc #x", " lead", "trail ", "#first", "a#b", "it's", 'say "hi"', "'sq'", '"dq"',
           "back\\slash", "C:\\ends\\", "a\\nb", "tab\there", "two\nlines", "cr\rhere", "a=b", "",
           "pässwörd✓", "http://host.docker.internal:1/v1"]


@pytest.mark.parametrize("value", WRITTEN)
def test_assignment_reads_back_as_its_value(value):
    line = envfile.assignment("K", value)
    assert envfile.values(envfile.parse(envfile.render([line]))) == {"K": value}


@pytest.mark.parametrize("value", ["a$b", "${X}", "needs quotes \\", "bell\a"])
def test_values_no_spelling_carries_through_both_composes_are_not_written(value):
    with pytest.raises(ValueError, match="K"):
        envfile.assignment("K", value)


def test_render_refuses_a_line_whose_text_reads_back_otherwise():
    with pytest.raises(ValueError, match="assignment"):
        envfile.render([envfile.EnvLine("K=abc #x", "K", "abc #x")])


def test_the_example_reads_back_as_the_defaults():
    example = envfile.values(envfile.parse(envfile.render_example()))
    assert example == {s.key: "" if s.secret or s.managed else s.default for s in SETTINGS}


def test_set_managed_quotes_what_needs_quoting(tmp_path):
    p = tmp_path / ".env"
    envfile.ensure(p)
    envfile.set_managed(p, {"GATEWAY_UPSTREAM_URL": "http://h:1/v1 #x"})
    assert 'GATEWAY_UPSTREAM_URL="http://h:1/v1 #x"\n' in p.read_text()
    assert envfile.values(envfile.read(p))["GATEWAY_UPSTREAM_URL"] == "http://h:1/v1 #x"
