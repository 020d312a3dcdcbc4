"""The stand-in images keep the promises the stack and the e2e tier rely on."""

from __future__ import annotations

import subprocess

from stackctl.config import envfile
from tests.e2e.images import build
from tests.plugins.common import REPO


def _run(image: str, *cmd: str, entrypoint: str | None = None) -> str:
    argv = ["docker", "run", "--rm", "--network", "none"]
    if entrypoint is not None:
        argv += ["--entrypoint", entrypoint]
    out = subprocess.run([*argv, image, *cmd], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_key_changes_with_any_input():
    a = build.inputs_key([("x", b"1"), ("y", b"2")])
    assert a == build.inputs_key([("x", b"1"), ("y", b"2")])
    assert a != build.inputs_key([("x", b"1"), ("y", b"3")])
    assert a != build.inputs_key([("y", b"2"), ("x", b"1")])
    assert a != build.inputs_key([("x", b"12"), ("y", b"")])


def test_base_has_python_curl_and_the_host_ca(base_image: str):
    out = _run(
        base_image, "sh", "-c", "python3 -V && curl --version && wget --version && jq --version"
    )
    assert "Python 3.11" in out
    ca = _run(base_image, "cat", "/etc/ssl/certs/ca-certificates.crt")
    assert ca == build.CA_BUNDLE.read_text()


def test_openwebui_stand_in_serves_like_upstream(stack_images: dict[str, str]):
    image = stack_images["OPENWEBUI_IMAGE"]
    if image == build.OFFICIAL["OPENWEBUI_IMAGE"]:
        return  # the official image is in use; nothing of ours to check
    cmd = _run(image, "sh", "-c", 'echo "$PWD $DATA_DIR $PORT" && command -v curl && cat start.sh')
    assert cmd.startswith("/app/backend /app/backend/data 8080\n")
    assert "exec open-webui serve" in cmd  # the server replaces the shell: PID 1


_EMBED = """
import os
from huggingface_hub import snapshot_download
from sentence_transformers import SentenceTransformer
# what Open WebUI 0.12.4 does offline (retrieval/utils.py get_model_path, routers/retrieval.py get_ef)
path = snapshot_download(repo_id=os.environ["RAG_EMBEDDING_MODEL"], local_files_only=True,
                         cache_dir=os.environ["SENTENCE_TRANSFORMERS_HOME"])
m = SentenceTransformer(path, device="cpu")
a, b, c = m.encode(["lava erupts from a volcano", "magma reaches the surface", "bake sourdough bread"])
print(len(a), float(a @ b) > float(a @ c))
"""


def test_openwebui_stand_in_has_its_default_embedding_model_without_network(stack_images: dict[str, str]):
    image = stack_images["OPENWEBUI_IMAGE"]
    if image == build.OFFICIAL["OPENWEBUI_IMAGE"]:
        return  # the official image bakes it the same way; nothing of ours to check
    stack = envfile.values(envfile.parse((REPO / "openwebui" / "openwebui.env").read_text()))
    out = _run(image, "env", f"RAG_EMBEDDING_MODEL={stack['RAG_EMBEDDING_MODEL']}", "python", "-c", _EMBED)
    assert out.splitlines()[-1] == "384 True"


def test_prometheus_stand_in_matches_official_layout(stack_images: dict[str, str]):
    image = stack_images["PROMETHEUS_IMAGE"]
    if image == build.OFFICIAL["PROMETHEUS_IMAGE"]:
        return
    out = _run(
        image,
        "-c",
        "id -un; ls -ld /prometheus; command -v wget; /bin/prometheus --version",
        entrypoint="sh",
    )
    user, storage, wget, version = out.splitlines()[:4]
    assert user == "nobody" and "nobody" in storage and wget
    assert "prometheus, version 2." in version
