"""A render is written whole or not at all: bad input, a full folder, a crash half-way
leave OUT exactly as it was; --force replaces only a previous render."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackctl.errors import StackError, UsageError
from stackctl.k8s import k8s_render, write_tree
from stackctl.k8s.render import KUSTOMIZATION, MARKER
from tests.unit.k8s.k8s_checks import REPO, UPSTREAMS

GW = "registry.example.com/gw:1"


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p != folder)


def test_renders_into_a_new_folder(tmp_path):
    out = tmp_path / "k8s"
    res = k8s_render(out, "chat", UPSTREAMS, gateway_image=GW, root=REPO)
    assert sorted(_tree(out)) == sorted(res.files)
    assert (out / KUSTOMIZATION).read_text().startswith(MARKER)
    assert _siblings(out) == []  # no temporary folder left beside it


def test_renders_into_an_empty_folder(tmp_path):
    out = tmp_path / "k8s"
    out.mkdir()
    k8s_render(out, "chat", UPSTREAMS, gateway_image=GW, root=REPO)
    assert (out / KUSTOMIZATION).is_file()


@pytest.mark.parametrize(("ns", "ups", "words"), [
    ("Bad_NS", UPSTREAMS, "not a valid Kubernetes name"),
    ("chat", "10.0.0.5:52180", "has no scheme"),
    ("chat", "", "no Foundry upstream given"),
])
def test_bad_input_writes_nothing(tmp_path, ns, ups, words):
    out = tmp_path / "k8s"
    with pytest.raises(UsageError, match=words):
        k8s_render(out, ns, ups, gateway_image=GW, root=REPO)
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_folder_needs_force_and_is_left_alone(tmp_path):
    out = tmp_path / "k8s"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=r"is not empty .* --force"):
        k8s_render(out, "chat", UPSTREAMS, gateway_image=GW, root=REPO)
    with pytest.raises(UsageError, match="did not write"):
        k8s_render(out, "chat", UPSTREAMS, gateway_image=GW, root=REPO, force=True)
    assert _tree(out) == {"notes.txt": b"mine"} and _siblings(out) == []


def test_force_replaces_a_previous_render_whole(tmp_path):
    out = tmp_path / "k8s"
    k8s_render(out, "one", UPSTREAMS, gateway_image=GW, root=REPO)
    (out / "dashboards" / "stale.yaml").write_text("old")
    with pytest.raises(UsageError, match="--force"):
        k8s_render(out, "two", UPSTREAMS, gateway_image=GW, root=REPO)
    assert "namespace: one" in (out / KUSTOMIZATION).read_text()
    k8s_render(out, "two", UPSTREAMS, gateway_image=GW, root=REPO, force=True)
    assert "namespace: two" in (out / KUSTOMIZATION).read_text()
    assert not (out / "dashboards" / "stale.yaml").exists() and _siblings(out) == []


def test_a_crash_half_way_leaves_the_previous_render(tmp_path, monkeypatch):
    out = tmp_path / "k8s"
    k8s_render(out, "one", UPSTREAMS, gateway_image=GW, root=REPO)
    before = _tree(out)
    real, calls = Path.write_text, []

    def failing(self, *a, **kw):  # the disk fills up on the third file
        calls.append(self)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(OSError):
        k8s_render(out, "two", UPSTREAMS, gateway_image=GW, root=REPO, force=True)
    monkeypatch.undo()
    assert _tree(out) == before and _siblings(out) == []


def test_out_must_be_a_folder_under_an_existing_one(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        write_tree({"a": "b"}, f)
    with pytest.raises(UsageError, match="does not exist"):
        write_tree({"a": "b"}, tmp_path / "no" / "k8s")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_broken_source_is_named(tmp_path):
    from tests.unit.k8s.k8s_checks import copy_sources

    root = copy_sources(tmp_path / "repo")
    (root / "prometheus" / "rules" / "broken.yml").write_text("groups: [\n")
    with pytest.raises(StackError, match=r"broken\.yml is not valid YAML"):
        k8s_render(tmp_path / "k8s", "chat", UPSTREAMS, gateway_image=GW, root=root)
    assert not (tmp_path / "k8s").exists()


def test_no_dashboards_is_named_with_the_command_that_makes_them(tmp_path):
    from stackctl.config import settings
    from tests.unit.k8s.k8s_checks import copy_sources

    root = copy_sources(tmp_path / "repo")
    for p in (root / settings.GRAFANA_DASHBOARDS).glob("*.json"):
        p.unlink()
    with pytest.raises(StackError, match=r"no dashboards in .* — run `.*stack dashboards` first"):
        k8s_render(tmp_path / "k8s", "chat", UPSTREAMS, gateway_image=GW, root=root)
    assert not (tmp_path / "k8s").exists()
