"""The offline bundle on the real engine: `bundle save` → `docker rmi` → `bundle load`
gives every image back with the same id and the model folder byte for byte; each bad
bundle is refused in one line with no image loaded, no folder written, .env unchanged;
a load interrupted half-way (Ctrl-C) leaves no image and no folder behind.

Small on purpose (the suite's budget): two images built FROM scratch here, each with a
unique file (unique ids, a few MiB), stand in for the stack's; the .env points every
image key at one of them, as a mirror or air-gap .env would. The commands run as a user
runs them (`invoke bundle …` with the stack's env file).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import docker
import docker.errors
import pytest

from stackctl.config import envfile
from stackctl.config.settings import IMAGE_KEYS
from stackctl.day2 import bundle as b
from tests.plugins.common import FIXTURES, REPO
from tests.plugins.stack import INVOKE

MODEL = FIXTURES / "tiny-model"


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _build(client, tag: str, payload: bytes, ctx: Path) -> str:
    ctx.mkdir()
    (ctx / "payload").write_bytes(payload)
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY payload /payload\n")
    image, _ = client.images.build(path=str(ctx), tag=tag, rm=True, network_mode="none")
    return image.id


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two tiny images, an env file naming them for every key, and a clean-up."""
    client = docker.from_env()
    root = tmp_path_factory.mktemp("bundle")
    tag = uuid.uuid4().hex[:10]
    refs = {"a": f"foundry-chat-test/bundle-a:{tag}", "b": f"foundry-chat-test/bundle-b:{tag}"}
    ids = {k: _build(client, ref, os.urandom(3 << 20) if k == "b" else uuid.uuid4().bytes, root / k)
           for k, ref in refs.items()}
    env_file = root / "stack.env"
    keys = b.BUNDLE_KEYS
    env_file.write_text(f"COMPOSE_PROJECT_NAME=flcs-bundle-{tag}\nCOMPOSE_PROFILES=\n"
                        f"STACK_STATE_DIR={root / 'state'}\n"
                        + "".join(f"{k}={refs['b' if n % 2 else 'a']}\n" for n, k in enumerate(keys)))
    envfile.ensure(env_file)
    yield {"root": root, "env_file": env_file, "refs": refs, "ids": ids, "client": client}
    for ref in refs.values():
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(ref, force=True)


def run(world, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in envfile.BY_KEY}
    env.update(STACK_ENV_FILE=str(world["env_file"]), STACK_CWD=str(world["root"]), NO_COLOR="1", COLUMNS="200")
    cp = subprocess.run([str(INVOKE), "-r", str(REPO), *args], env=env, capture_output=True, text=True,
                        timeout=300, stdin=subprocess.DEVNULL)
    sys.stderr.write(f"\n$ invoke {' '.join(args)} -> {cp.returncode}\n{cp.stdout[-2000:]}{cp.stderr[-2000:]}\n")
    return cp


def present(world) -> dict[str, str | None]:
    out = {}
    for k, ref in world["refs"].items():
        try:
            out[k] = world["client"].images.get(ref).id
        except docker.errors.ImageNotFound:
            out[k] = None
    return out


def rmi(world) -> None:
    for ref in world["refs"].values():
        with contextlib.suppress(docker.errors.ImageNotFound):
            world["client"].images.remove(ref, force=True)
    assert present(world) == {"a": None, "b": None}


@pytest.fixture(scope="module")
def saved(world) -> Path:
    """`bundle save` with the tiny model, as a user runs it (a path relative to their cwd)."""
    cp = run(world, "bundle", "save", "offline.bundle", "--model-path", str(MODEL))
    assert cp.returncode == 0, cp.stderr
    path = world["root"] / "offline.bundle"
    assert "bundle written: " in cp.stdout and "(100%)" in cp.stdout  # progress was shown
    assert f"`{REPO / 'stack'} bundle load offline.bundle`" in cp.stdout
    assert not [p for p in world["root"].iterdir() if p.name.endswith(".partial")]
    return path


def test_save_refuses_to_overwrite_without_force(world, saved):
    before = hashlib.sha256(saved.read_bytes()).hexdigest()
    cp = run(world, "bundle", "save", "offline.bundle")
    assert cp.returncode == 2 and cp.stderr.strip().splitlines() == [
        f"error: {saved} already exists — choose another name or pass --force to replace it"]
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == before


def _rewrite(src: Path, dst: Path, edit) -> Path:
    with tarfile.open(src) as tar:
        items = [(i, tar.extractfile(i).read() if i.isfile() else b"") for i in tar]
    items = edit(items)
    with tarfile.open(dst, "w", format=tarfile.GNU_FORMAT) as out:
        for info, data in items:
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return dst


def _lie(items):
    m = json.loads(items[-1][1])
    for e in m["images"]:  # every key sharing that member: a consistent lie
        if e["member"] == m["images"][0]["member"]:
            e["sha256"] = "f" * 64
    return [*items[:-1], (items[-1][0], json.dumps(m).encode())]


def _extra(items):
    extra = tarfile.TarInfo(f"{b.MODEL}/not-listed.bin")
    return [*items[:-1], (extra, b"smuggled"), items[-1]]


def _bad_bundles(saved: Path, root: Path) -> dict[str, tuple[Path, str]]:
    data = saved.read_bytes()
    with tarfile.open(saved) as tar:
        image = next(i for i in tar.getmembers() if i.name.startswith(b.IMAGES))
    truncated = root / "truncated.bundle"
    truncated.write_bytes(data[: image.offset_data + image.size // 2])
    flipped = root / "flipped.bundle"
    bad = bytearray(data)
    bad[image.offset_data + image.size // 3] ^= 0x20
    flipped.write_bytes(bytes(bad))
    other = root / "other.tar"
    with tarfile.open(other, "w") as tar:
        tar.add(MODEL, arcname="tiny-model")
    return {
        "truncated": (truncated, "truncated"),
        "flipped": (flipped, f"checksum mismatch for {image.name}"),
        "lying": (_rewrite(saved, root / "lying.bundle", _lie), "checksum mismatch for images/"),
        "extra": (_rewrite(saved, root / "extra.bundle", _extra), "model/not-listed.bin is not listed"),
        "not a bundle": (other, "is not a bundle made by this stack (it starts with 'tiny-model'"),
    }


def test_each_bad_bundle_is_refused_in_one_line_and_nothing_appears(world, saved):
    rmi(world)
    env_before = world["env_file"].read_bytes()
    for why, (path, want) in _bad_bundles(saved, world["root"]).items():
        target = world["root"] / f"model-{why.replace(' ', '-')}"
        cp = run(world, "bundle", "load", path.name, "--model-dir", target.name)
        lines = cp.stderr.strip().splitlines()
        assert cp.returncode == 1 and len(lines) == 1, (why, cp.stderr)
        assert lines[0].startswith(f"error: {path.name}: ") and want in lines[0], (why, lines)
        assert "refused; nothing was loaded or written" in lines[0]
        assert present(world) == {"a": None, "b": None}, why
        assert not target.exists(), why
        assert not [p for p in world["root"].iterdir() if p.name.startswith(f".{target.name}")], why
    assert world["env_file"].read_bytes() == env_before


def test_ctrl_c_half_way_through_a_load_leaves_no_image_and_no_folder(world, saved):
    """On the real engine: image a loads, image b is cut off mid-upload by Ctrl-C (the
    progress seam raises it once b's bytes are flowing); a must be gone again."""
    rmi(world)
    target = world["root"] / "model-interrupted"

    def progress(what, done, total):
        if world["refs"]["b"] in what and (1 << 20) < done < total:  # its first MiB went to the engine
            raise KeyboardInterrupt

    store = b.DockerImages(world["client"])
    env = envfile.load(world["env_file"])
    with b.open_bundle(saved) as v, pytest.raises(KeyboardInterrupt):
        b.load(v, store, model_dir=target, env_file=world["env_file"], env=env, models_home=world["root"],
               progress=progress)
    assert present(world) == {"a": None, "b": None}
    assert not target.exists() and not [p for p in world["root"].iterdir() if p.name.startswith(".model-")]


def test_load_brings_back_every_image_with_its_id_and_the_model_folder(world, saved):
    rmi(world)
    env_file = world["env_file"]
    # A fresh clone's .env names the pinned images, not these: load points it at them.
    text = env_file.read_text()
    for k in IMAGE_KEYS:
        text = text.replace(f"{k}={world['refs']['a']}\n", f"{k}=elsewhere/{k.lower()}:1\n")
    env_file.write_text(text)
    target = world["root"] / "models" / "tiny"
    cp = run(world, "bundle", "load", "offline.bundle", "--model-dir", "models/tiny")
    assert cp.returncode == 0, cp.stderr
    assert present(world) == world["ids"]
    assert tree(target) == tree(MODEL)
    env = envfile.load(env_file)
    with b.open_bundle(saved) as v:
        assert all(env[i.key] == i.ref for i in v.manifest.images)
    assert cp.stdout.strip().splitlines()[-1] == f"Next: `{REPO / 'stack'} up --model-path {target}`"
    again = run(world, "bundle", "load", "offline.bundle", "--model-dir", "models/tiny")
    assert again.returncode == 2 and "already exists and is not an empty folder" in again.stderr


def test_a_load_while_another_stack_command_holds_the_lock_is_refused_and_loads_nothing(world, saved):
    from stackctl.lock import stack_lock

    rmi(world)
    with stack_lock(world["root"] / "state", "./stack up"):
        cp = run(world, "bundle", "load", "offline.bundle", "--model-dir", "model-locked")
    assert cp.returncode != 0 and len(cp.stderr.strip().splitlines()) == 1
    assert "stack lock" in cp.stderr and "./stack up" in cp.stderr
    assert present(world) == {"a": None, "b": None} and not (world["root"] / "model-locked").exists()


def test_a_wrong_action_or_option_is_one_line_of_bad_input(world):
    for args, want in ((("bundle", "unpack", "x.bundle"), "bundle 'unpack': say `"),
                       (("bundle", "save", "x.bundle", "--model-dir", "m"), "--model-dir is not an option of "
                                                                            "`bundle save`"),
                       (("bundle", "load", "x.bundle", "--force"), "--force is not an option of `bundle load`"),
                       (("bundle", "load", "nope.bundle"), "nope.bundle: no such file")):
        cp = run(world, *args)
        assert cp.returncode == 2 and cp.stderr.strip().splitlines() == [cp.stderr.strip()], args
        assert cp.stderr.startswith("error: ") and want in cp.stderr, (args, cp.stderr)
    assert not (world["root"] / "x.bundle").exists()
