"""The stack with Debian's compose v1.29.2, for users whose distro ships only that:
up reaches all-healthy, status finds the containers (by label: v1 names them
``project_service_1``), down removes them and keeps the data."""

from __future__ import annotations

import docker
import pytest

from tests.e2e.helpers import signin, states
from tests.plugins.stack import STACK_MODEL_ID

V1 = "/usr/bin/docker-compose"


@pytest.fixture(scope="module")
def v1_stack(e2e_stack):
    e2e_stack.extra_env["STACK_COMPOSE"] = V1
    return e2e_stack


def test_up_status_down_with_compose_v1(v1_stack):
    cp = v1_stack.invoke("up", timeout=1500)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "docker-compose 1.29.2" in cp.stdout
    st = states(v1_stack)
    assert all(st[s].ok for s in ("open-webui", "exporter", "prometheus"))
    assert all(s.container.endswith("_1") for s in st.values()), "not compose v1's naming"
    assert signin(v1_stack).models(refresh=True) == [STACK_MODEL_ID]
    assert v1_stack.invoke("status").returncode == 0
    assert v1_stack.invoke("down").returncode == 0
    assert not states(v1_stack)
    project = v1_stack.env["COMPOSE_PROJECT_NAME"]
    assert docker.from_env().volumes.get(f"{project}_open-webui-data")  # data kept
