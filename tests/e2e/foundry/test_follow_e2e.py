"""A user's own Foundry Local that restarts on another port (issue 15, item 5), on the
real engine: chat through the stack's gateway works again with no command.

The gateway is the stack's image, run as compose runs it (host networking, read-only,
the stack's config file, GATEWAY_UPSTREAM_FOLLOW=true as `up` sets it for a Foundry it
found through the CLI): what it reads to re-find Foundry is the host's socket table as a
host-networking container sees it. The Foundry is the real runtime with the tiny model,
in a state folder of its own (the user's, not the stack's); it stops and starts again,
and its service picks a new port. `up`'s side (GATEWAY_UPSTREAM_FOLLOW only for a
CLI-found Foundry) is tests/unit/foundry/test_door.py.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import subprocess
import time
import uuid

import docker
import httpx
import pytest

from stackctl.config.settings import GATEWAY
from stackctl.config.stack import Stack
from stackctl.docker import images
from stackctl.errors import StackError
from stackctl.foundry import stop
from tests.plugins.common import REPO, free_port, wait_for
from tests.plugins.foundry import TINY_MODEL_ID, serve_tiny_model
from tests.plugins.stack import E2EStack, write_env

CHAT_BACK_DEADLINE_S = 30


@pytest.fixture(scope="module")
def gateway_image(tmp_path_factory, stack_images) -> str:
    """The stack's gateway image for today's sources (built as `up` builds it, if missing)."""
    root = tmp_path_factory.mktemp("follow-image")
    s = E2EStack(root / ".env", root / "state")
    write_env(s.env_file, s.state_dir, {k: v for k, v in stack_images.items() if k.endswith("_IMAGE")})
    stack = Stack(REPO, s.env_file, s.env)
    fresh, digest = images.up_to_date(docker.from_env(), stack, GATEWAY)
    if not fresh:
        images.build(stack, GATEWAY, digest)
    return stack.env[GATEWAY.image_key]


@pytest.fixture
def users_foundry(tmp_path):
    own = tmp_path / "users-foundry"
    yield own, serve_tiny_model(own)
    with contextlib.suppress(StackError):  # the test stopped it already
        stop(own)


@pytest.fixture
def gateway(gateway_image, users_foundry):
    _own, first = users_foundry
    port, key, name = free_port(), secrets.token_urlsafe(32), f"flcs-follow-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", "--read-only",
                    "--tmpfs", "/tmp", "-e", f"GATEWAY_API_KEY={key}",
                    "-e", f"GATEWAY_UPSTREAM_URL={first.root_url}/catalogs/local",
                    "-e", "GATEWAY_UPSTREAM_FOLLOW=true",
                    "-v", f"{REPO / 'gateway' / 'config.stack.yml'}:/etc/foundry-gateway/config.yml:ro",
                    gateway_image, "--config", "/etc/foundry-gateway/config.yml",
                    "--listen-address", f"127.0.0.1:{port}"], check=True, capture_output=True)
    try:
        wait_for(lambda: _healthy(port), "the gateway container's /healthz", timeout=30, interval=0.2)
        yield f"http://127.0.0.1:{port}", key, name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _chat(url: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=30, headers={"Authorization": f"Bearer {key}"},
                      json={"model": TINY_MODEL_ID, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})


def test_foundry_back_on_another_port_chats_again_through_the_gateway_container(users_foundry, gateway):
    own, first = users_foundry
    url, key, name = gateway
    assert _chat(url, key).status_code == 200
    stop(own)
    second = serve_tiny_model(own)  # Foundry's service picks a new port on each start
    assert second.port != first.port
    t0 = time.monotonic()
    while (r := _chat(url, key)).status_code != 200:
        assert time.monotonic() - t0 < CHAT_BACK_DEADLINE_S, f"no chat on the new port: {r.status_code} {r.text}"
        time.sleep(0.5)
    print(f"\nFoundry moved :{first.port} → :{second.port}; the first chat after the restart "
          f"answered in {time.monotonic() - t0:.2f} s through the gateway, no command run")
    # Moved to a Foundry serving the model it served: this one (or, where two run, another
    # with the same model: the tests' session server may be one).
    logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr
    assert re.search(rf"answers on :\d+ now \(was :{first.port}\)", logs), logs[-2000:]
