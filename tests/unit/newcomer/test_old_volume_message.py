"""#8: a fresh .env on an earlier install's volume — up says what happened and offers
the three ways out, each a command the user has (the e2e test runs them for real)."""

from __future__ import annotations

import httpx
import pytest

from stackctl import openwebui
from stackctl.config.settings import SETTINGS
from stackctl.config.stack import Stack
from stackctl.lifecycle.reset_admin import SCRIPT, foreign_data_message

ENV = {s.key: s.default for s in SETTINGS} | {"COMPOSE_PROJECT_NAME": "demo"}


@pytest.mark.parametrize("fresh", [True, False])
def test_the_message_names_the_volume_and_every_way_out(tmp_path, fresh):
    msg = foreign_data_message(Stack(tmp_path, tmp_path / ".env", ENV), fresh_env=fresh)
    assert "demo_open-webui-data" in msg and "earlier install" in msg and "\n" not in msg
    assert "restore that install's .env" in msg
    assert "`./stack reset-admin`" in msg and "`./stack down --volumes --yes`" in msg
    assert "the stack is stopped again" in msg
    assert ("this .env was just created" in msg) is fresh


def test_a_rejected_sign_in_is_its_own_error_naming_reset_admin():
    ui = openwebui.OpenWebUI("http://ui", http=httpx.Client(transport=httpx.MockTransport(
        lambda request: httpx.Response(400, json={"detail": "The email or password provided is incorrect."}))))
    with pytest.raises(openwebui.CredentialsRejected) as err:
        ui.signin("admin@example.com", "wrong-password-123")
    assert "`./stack reset-admin`" in str(err.value) and "change them back" not in str(err.value)


def test_the_reset_script_takes_the_password_from_its_environment_only():
    assert 'os.environ["ADMIN_PASSWORD"]' in SCRIPT and "sys.argv" not in SCRIPT
    compile(SCRIPT, "reset-admin", "exec")
