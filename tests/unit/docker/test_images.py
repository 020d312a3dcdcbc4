"""Pulling images: progress folded across layers, failures as one line naming
the .env key to change."""

from __future__ import annotations

import pytest

from stackctl.console import Reporter
from stackctl.docker import images
from stackctl.errors import StackError


def test_progress_sums_layers_and_completes_them():
    events = [
        {"status": "Pulling fs layer", "id": "a"},
        {"status": "Downloading", "id": "a", "progressDetail": {"current": 10, "total": 100}},
        {"status": "Downloading", "id": "b", "progressDetail": {"current": 5, "total": 50}},
        {"status": "Pull complete", "id": "a"},
        {"status": "Downloading", "id": "b", "progressDetail": {"current": 50, "total": 50}},
    ]
    assert list(images.pull_progress(events))[-3:] == [(15, 150), (105, 150), (150, 150)]


def test_error_event_raises():
    with pytest.raises(StackError, match="manifest unknown"):
        list(images.pull_progress([{"error": "manifest unknown"}]))


class FakeAPI:
    def __init__(self, events=None, exc=None):
        self.events, self.exc = events or [], exc

    def pull(self, ref, stream, decode):
        if self.exc:
            raise self.exc
        return iter(self.events)


class FakeClient:
    def __init__(self, api):
        self.api = api


@pytest.mark.parametrize("api", [FakeAPI(events=[{"error": "pull access denied"}]),
                                 FakeAPI(exc=OSError("connection refused"))])
def test_pull_failure_names_the_image_and_the_setting(api):
    with pytest.raises(StackError) as err:
        images.pull(FakeClient(api), "ghcr.io/x/y:1", "OPENWEBUI_IMAGE", Reporter.quiet())
    msg = str(err.value)
    assert msg.startswith("cannot pull ghcr.io/x/y:1 (") and "OPENWEBUI_IMAGE in .env" in msg
    assert "\\n" not in msg


def test_pull_reports_progress_lines():
    rep = Reporter.quiet()
    events = [{"id": "a", "progressDetail": {"current": c, "total": 100}} for c in (0, 50, 100)]
    images.pull(FakeClient(FakeAPI(events=events)), "img:1", "PROMETHEUS_IMAGE", rep)
    out = rep.console.file.getvalue()
    assert "(0%)" in out and "(50%)" in out and "(100%)" in out and "pulled img:1" in out
