"""`k8s-render` from the command line: bad input is one line on stderr, exit 2, nothing
written; a good render names its files and the commands that deploy it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.k8s.k8s_checks import REPO, UPSTREAMS

INVOKE = Path(sys.executable).parent / "invoke"
GW = "registry.example.com/foundry-chat/gateway:0.1.0"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(INVOKE), "k8s-render", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env={**os.environ, "STACK_CWD": str(REPO)})


@pytest.mark.parametrize(("args", "words"), [
    (["--namespace", "Bad_NS", "--upstream", UPSTREAMS], "namespace 'Bad_NS' is not a valid Kubernetes name"),
    (["--namespace", "chat", "--upstream", "10.0.0.5:52180"], "upstream '10.0.0.5:52180' has no scheme"),
    (["--namespace", "chat"], "no Foundry upstream given"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, words):
    out = tmp_path / "k8s"
    cp = run("--out", str(out), "--gateway-image", GW, *args)
    assert cp.returncode == 2
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0] and " — " in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_a_full_folder_without_force_is_refused(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    cp = run("--out", str(tmp_path), "--namespace", "chat", "--upstream", UPSTREAMS, "--gateway-image", GW)
    assert cp.returncode == 2 and "is not empty" in cp.stderr and "--force" in cp.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_a_render_names_its_deploy_commands(tmp_path):
    out = tmp_path / "k8s"
    cp = run("--out", str(out), "--namespace", "chat", "--upstream", "http://10.0.0.5:52180",
             "--upstream", "http://10.0.0.6:52180", "--gateway-image", GW)
    assert cp.returncode == 0, cp.stderr
    assert "manual EndpointSlice (2 host(s))" in cp.stdout
    assert f"kubectl apply --server-side -k {out}" in cp.stdout
    assert "helm upgrade --install open-webui open-webui/open-webui --version" in cp.stdout
    assert (out / "kustomization.yaml").is_file()
