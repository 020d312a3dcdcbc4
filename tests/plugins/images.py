"""Fixtures providing the stack images (owned by the CI/images work).

``base_image``   tag of a local Debian image with python3, curl, wget, jq and the host CA
                 (run throwaway containers from it, e.g. to reach the host's Foundry Local).
``stack_images`` the image variables for compose (see tests.e2e.images.build.ensure_images):
                 OPENWEBUI_IMAGE, PROMETHEUS_IMAGE, EXPORTER_BASE_IMAGE, COMPOSE_PROFILES
                 ("" = no Grafana here), GRAFANA_IMAGE when the official one is present,
                 and STACK_BUILD_NETWORK=host (stackctl's exporter build needs it here).

Both build on first use (minutes when cold, about a second when cached by content) and
print progress to the terminal even under output capture, so CI logs show what takes time.
Without a reachable Docker Engine they fail (never skip): the e2e tier is part of every run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from tests.e2e.images import build


def _progress(config: pytest.Config):
    """A progress callback that reaches the terminal despite pytest's capture."""
    capman = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")
    start = time.monotonic()

    def say(msg: str) -> None:
        line = f"[images {time.monotonic() - start:5.0f}s] {msg}"
        if capman is None or reporter is None:
            print(line, file=sys.stderr, flush=True)
            return
        with capman.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(line)

    return say


def _require_docker() -> None:
    why = None
    if shutil.which("docker") is None:
        why = "docker CLI not found"
    elif subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        why = "Docker Engine not reachable (`docker info` fails)"
    if why is None:
        return
    # Never a skip: a run without the e2e tier must not look like a passing one.
    pytest.fail(f"{why}; the e2e tier needs a running Docker Engine — start it "
                "(CI: .ci/run does), or run `invoke test --tier 'unit or integration'`", pytrace=False)


def _or_fail(fn, *args):
    try:
        return fn(*args)
    except build.ImageBuildError as e:
        pytest.fail(f"building test images failed: {e}", pytrace=False)


@pytest.fixture(scope="session")
def base_image(pytestconfig: pytest.Config) -> str:
    _require_docker()
    return _or_fail(build.ensure_base, _progress(pytestconfig))


@pytest.fixture(scope="session")
def stack_images(pytestconfig: pytest.Config, base_image: str) -> dict[str, str]:
    say = _progress(pytestconfig)
    images = _or_fail(build.ensure_images, say)
    if not build.grafana_available(images):
        say("the stack runs WITHOUT Grafana in this session (no image can be built here)")
    return images
