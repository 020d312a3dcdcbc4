"""#4: every image the run needs is checked before anything starts, and all that
are missing and cannot be pulled are named in ONE message, each with its .env key."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackctl.config import envfile
from stackctl.config.settings import BASE_IMAGE_KEY, IMAGE_KEYS, SETTINGS
from stackctl.config.stack import Stack
from stackctl.console import Reporter
from stackctl.docker import images
from stackctl.errors import StackError

REPO = Path(__file__).resolve().parents[3]


class NoRegistry:
    """An engine API whose every pull fails the way a machine without a registry does."""

    def __init__(self):
        self.pulled = []

    def pull(self, ref, stream, decode):
        self.pulled.append(ref)
        return iter([{"error": f"Get \"https://registry/v2/\": dial tcp: lookup registry: no such host ({ref})"}])


class Client:
    def __init__(self, api):
        self.api = api


def stack(profiles: str = "grafana") -> Stack:
    env = {s.key: s.default for s in SETTINGS} | {"COMPOSE_PROFILES": profiles}
    return Stack(REPO, REPO / ".env", env)


def test_needed_lists_service_images_and_the_base_when_the_exporter_is_built():
    s = stack()
    built = [k for k in IMAGE_KEYS if k not in images.needed(s, built_fresh=True)]
    assert built == ["EXPORTER_IMAGE", "GATEWAY_IMAGE", "FOUNDRY_KEEPER_IMAGE"]  # the stack builds them; never pulled
    assert BASE_IMAGE_KEY not in images.needed(s, built_fresh=True)
    assert images.needed(s, built_fresh=False)[-1] == BASE_IMAGE_KEY


def test_a_disabled_profile_needs_no_image():
    assert "GRAFANA_IMAGE" not in images.needed(stack(profiles=""), built_fresh=True)


def test_all_missing_images_in_one_message_with_their_keys():
    s = stack()
    keys = images.needed(s, built_fresh=False)
    api = NoRegistry()
    with pytest.raises(StackError) as err:
        images.ensure_present(Client(api), s, keys, present=lambda ref: False, reporter=Reporter.quiet())
    msg = str(err.value)
    assert err.value.exit_code == 2 and "\n" not in msg
    assert msg.startswith(f"{len(keys)} image(s) are not present and cannot be pulled: ")
    for k in keys:
        assert f"{k}={s.env[k]} (" in msg
    assert api.pulled == [s.env[k] for k in keys]  # every one tried, not the first only


def test_present_images_are_not_pulled_and_only_the_missing_are_named():
    s = stack()
    keys = images.needed(s, built_fresh=False)
    have = {s.env[k] for k in keys if k != "PROMETHEUS_IMAGE"}
    with pytest.raises(StackError) as err:
        images.ensure_present(Client(NoRegistry()), s, keys, present=lambda ref: ref in have,
                              reporter=Reporter.quiet())
    assert str(err.value).startswith("1 image(s) are not present and cannot be pulled: PROMETHEUS_IMAGE=")


def test_nothing_missing_is_silent():
    s = stack()
    images.ensure_present(Client(NoRegistry()), s, images.needed(s, False), present=lambda ref: True,
                          reporter=Reporter.quiet())


def test_readme_key_table_lists_every_image_key():
    table = [ln for ln in (REPO / "README.md").read_text().splitlines() if ln.startswith("|")]
    for key in (*IMAGE_KEYS, BASE_IMAGE_KEY):
        assert any(f"`{key}`" in ln for ln in table), f"{key} missing from README's key table"


def test_example_env_documents_every_image_key():
    text = envfile.render_example()
    for key in (*IMAGE_KEYS, BASE_IMAGE_KEY):
        assert f"\n{key}=" in text
