"""The stack's gateway config: the fleet file checked whole before anything starts, and
only the keys it names handed to the gateway's container."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackctl.config.stack import ROOT, Stack
from stackctl.errors import UsageError
from stackctl.fleet import stackconfig

KEY = "k" * 32


def _stack(tmp_path: Path, fleet: str = "", **env: str) -> Stack:
    return Stack(ROOT, tmp_path / ".env", {"GATEWAY_API_KEY": KEY, "STACK_STATE_DIR": str(tmp_path / "state"),
                                           "GATEWAY_FLEET_FILE": fleet, **env})


MANAGED = {"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:52180", "GATEWAY_UPSTREAM_FOLLOW": "false"}
FLEET = """upstreams:
  - {name: foundry, url_env: GATEWAY_UPSTREAM_URL}
  - {name: desk2, url: "http://192.168.1.21:9180", api_key_env: EDGE_DESK2_KEY}
"""


def test_without_a_fleet_file_the_stack_config_and_no_keys(tmp_path: Path) -> None:
    st = _stack(tmp_path)
    out = stackconfig.prepare(st, MANAGED)
    assert out["GATEWAY_CONFIG_FILE"] == str(stackconfig.STACK_CONFIG)
    keys = Path(out["GATEWAY_ENV_FILE"])
    assert keys.read_text() == "" and keys.stat().st_mode & 0o777 == 0o600
    assert not stackconfig.is_fleet(st)


def test_a_fleet_file_hands_over_only_the_keys_it_names(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yml"
    fleet.write_text(FLEET)
    st = _stack(tmp_path, str(fleet), EDGE_DESK2_KEY="e" * 32, WEBUI_ADMIN_PASSWORD="secret-secret")
    out = stackconfig.prepare(st, MANAGED)
    assert out["GATEWAY_CONFIG_FILE"] == str(fleet) and stackconfig.is_fleet(st)
    assert Path(out["GATEWAY_ENV_FILE"]).read_text() == f"EDGE_DESK2_KEY={'e' * 32}\n"


def test_the_digest_follows_the_file_and_the_keys(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yml"
    fleet.write_text(FLEET)
    first = stackconfig.prepare(_stack(tmp_path, str(fleet), EDGE_DESK2_KEY="e" * 32), MANAGED)
    same = stackconfig.prepare(_stack(tmp_path, str(fleet), EDGE_DESK2_KEY="e" * 32), MANAGED)
    other_key = stackconfig.prepare(_stack(tmp_path, str(fleet), EDGE_DESK2_KEY="f" * 32), MANAGED)
    fleet.write_text(FLEET.replace("desk2", "desk3"))
    other_file = stackconfig.prepare(_stack(tmp_path, str(fleet), EDGE_DESK2_KEY="e" * 32), MANAGED)
    digests = [d["GATEWAY_CONFIG_DIGEST"] for d in (first, same, other_key, other_file)]
    assert digests[0] == digests[1] and len(set(digests)) == 3


def test_a_missing_fleet_file_is_one_line_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        stackconfig.check(_stack(tmp_path, "gateway/nope.yml"))
    assert "GATEWAY_FLEET_FILE='gateway/nope.yml'" in str(err.value)
    assert "copy gateway/fleet.example.yml there" in str(err.value)


def test_a_bad_fleet_file_lists_every_problem_and_writes_nothing(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yml"
    fleet.write_text(FLEET + "  - {name: desk2, kind: cloud, url: \"http://x.example\", models: [m]}\n")
    st = _stack(tmp_path, str(fleet))
    with pytest.raises(UsageError) as err:
        stackconfig.prepare(st, MANAGED)
    lines = str(err.value).splitlines()
    assert lines[0].startswith("the gateway's config has 3 problem(s)")
    assert any("upstreams[1].api_key_env: environment variable EDGE_DESK2_KEY is not set" in ln for ln in lines)
    assert any('upstreams[2].url: "http://x.example" is not https' in ln for ln in lines)
    assert any("upstreams[2].api_key_env: missing; a cloud upstream needs its key" in ln for ln in lines)
    assert not (tmp_path / "state").exists()  # nothing written


def test_a_relative_fleet_path_is_the_projects(tmp_path: Path) -> None:
    assert stackconfig.config_file(_stack(tmp_path, "gateway/fleet.yml")) == ROOT / "gateway" / "fleet.yml"


def test_a_ca_file_is_refused_for_the_containerised_gateway(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read")
    fleet = tmp_path / "fleet.yml"
    fleet.write_text(FLEET + f"  - {{name: sky, kind: cloud, url: \"https://x.example\", "
                             f"api_key_env: EDGE_DESK2_KEY, models: [m], ca_file: \"{ca}\"}}\n")
    with pytest.raises(UsageError) as err:
        stackconfig.check(_stack(tmp_path, str(fleet), EDGE_DESK2_KEY="e" * 32))
    assert str(err.value).startswith(f"{fleet}: upstreams[2].ca_file: the stack's gateway runs in a container")
