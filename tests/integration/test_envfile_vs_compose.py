"""envfile reads .env exactly as compose does, proved by the binaries themselves.

Every corpus line (tests/fixtures/envfile/corpus.txt) goes through compose
v1.29.2 and v2's own ``config``; a line envfile accepts must read the same in
envfile and in both, a line it refuses must be one the two read apart (or one
they would interpolate), and every line envfile writes must read back as its
value in both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stackctl.config import envfile
from tests.unit.config.test_envfile import CASES, WRITTEN, Case

COMPOSES = {
    "compose-v1": Path("/usr/bin/docker-compose"),
    "compose-v2": Path(sys.executable).parent / "docker-compose",
}
UNSET = "__ENVFILE_UNSET__"
PROBE = "interpolated"  # ENVFILE_PROBE in compose's environment, for the `interp` lines


def compose_reads(binary: Path, env_text: str, keys: list[str], tmp: Path) -> dict[str, str | None] | str:
    """What ``binary config`` gives a service for each key (None: unset), or its error text.

    The environment is emptied: a variable set in the shell would win over .env.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    env_file = tmp / "corpus.env"
    env_file.write_bytes(env_text.encode("utf-8"))
    compose_file = tmp / "compose.yml"
    compose_file.write_text(yaml.safe_dump({"services": {"s": {
        "image": "busybox", "environment": {k: f"${{{k}-{UNSET}}}" for k in keys}}}}))
    json_out = ["--format", "json"] if binary == COMPOSES["compose-v2"] else []
    cp = subprocess.run(
        [str(binary), "--project-directory", str(tmp), "-p", "envprobe", "--env-file", str(env_file),
         "-f", str(compose_file), "config", *json_out],
        capture_output=True, text=True, timeout=120,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp), "ENVFILE_PROBE": PROBE})
    if cp.returncode != 0:
        return f"error: {cp.stderr.strip().splitlines()[-1:]}"
    env = (json.loads(cp.stdout) if json_out else yaml.safe_load(cp.stdout))["services"]["s"]["environment"]
    # config output escapes a literal '$' as '$$' (the file it prints is itself interpolated)
    return {k: None if env[k] == UNSET else str(env[k]).replace("$$", "$") for k in keys}


SAME = [c for c in CASES if c.outcome == "same"]
VARIANTS = {"lf": lambda t: t, "crlf": lambda t: t.replace("\n", "\r\n")}


def envfile_reads(text: str) -> dict[str, str]:
    """envfile's values, or each key mapped to the refusal (so a mismatch report names the line)."""
    try:
        return envfile.values(envfile.parse(text))
    except envfile.UsageError as e:
        return {Case("", text, 0).key: f"refused: {e}"}


@pytest.mark.parametrize("variant", [*VARIANTS, "bom"])
@pytest.mark.parametrize("compose", COMPOSES)
def test_every_accepted_corpus_line_reads_as_compose_reads_it(compose, variant, tmp_path):
    crlf = variant != "lf"
    to_file = VARIANTS["crlf" if crlf else "lf"]
    ours = {k: v for c in SAME for k, v in envfile_reads(to_file(c.text)).items()}
    text = ("\ufeff" if variant == "bom" else "") + "".join(to_file(c.text) for c in SAME)
    theirs = compose_reads(COMPOSES[compose], text, [c.key for c in SAME], tmp_path)
    assert isinstance(theirs, dict), f"{compose} refused the accepted lines: {theirs}"
    wrong = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
    assert not wrong, f"(envfile, {compose}) disagree: {wrong}"
    assert envfile_reads(text) == ours, "the whole file reads otherwise than its lines one by one"


@pytest.mark.parametrize("case", [c for c in CASES if c.outcome in ("differ", "interp")], ids=str)
def test_each_refused_line_is_one_the_composes_read_apart_or_interpolate(case, tmp_path):
    """The refusal is needed: were the composes to agree (and not interpolate), it could go."""
    with pytest.raises(envfile.UsageError, match=f"line {case.refused_at}: .*{case.key}"):
        envfile.parse(case.text)
    reads = {name: compose_reads(binary, case.text, [case.key], tmp_path / name)
             for name, binary in COMPOSES.items()}
    if case.outcome == "differ":
        assert reads["compose-v1"] != reads["compose-v2"], f"both composes read {case} alike: {reads}"
    else:
        assert any(PROBE in str(r) for r in reads.values()), f"no compose interpolates {case}: {reads}"


def test_every_line_envfile_writes_reads_back_in_both_composes(tmp_path):
    lines = [envfile.assignment(f"W{i}", v) for i, v in enumerate(WRITTEN)]
    text = envfile.render(lines)
    keys = [ln.key for ln in lines]
    for name, binary in COMPOSES.items():
        theirs = compose_reads(binary, text, keys, tmp_path / name)
        assert theirs == envfile.values(lines), f"{name} reads back:\n{text}\nas {theirs}"


def test_both_compose_binaries_are_here():
    """The proof above needs both; a machine without them must not pass silently."""
    missing = [f"{n} ({p})" for n, p in COMPOSES.items() if not p.exists()]
    assert not missing, f"missing {missing}: install Debian's docker-compose and the dev extras"


def test_the_corpus_covers_every_outcome():
    assert {c.outcome for c in CASES} == {"same", "differ", "interp", "policy"}
    assert all(isinstance(c, Case) for c in CASES)
