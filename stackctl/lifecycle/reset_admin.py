"""`reset-admin`: make Open WebUI's admin sign in with the password in .env again.

What it is for: a fresh clone (new .env, new generated password) that meets the
data volume of an earlier install under the same project name. Open WebUI keeps
its users in webui.db inside that volume, so it rejects the new password; the
stack cannot sign in to reconcile its connection. This sets the admin's password
hash in webui.db to WEBUI_ADMIN_PASSWORD (and the admin's e-mail to
WEBUI_ADMIN_EMAIL), keeping every chat, user and setting.

How: Open WebUI is stopped first (a running server holds webui.db open in WAL
mode); a throwaway container of the stack's own Open WebUI image (it carries
python and bcrypt, the hash Open WebUI checks) mounts the volume, writes the hash
in one transaction and is removed. The password travels in the container's
environment, never on a command line. The admin chosen: the admin user with
WEBUI_ADMIN_EMAIL, else the oldest admin.
"""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import dataclass

import docker.errors

from stackctl.config.settings import OPENWEBUI
from stackctl.config.stack import Stack, load_stack
from stackctl.console import Reporter, cmd
from stackctl.docker import compose as composer
from stackctl.docker import engine, volumes
from stackctl.errors import StackError

DATA_DIR = "/app/backend/data"  # where the Open WebUI image keeps webui.db (compose mounts the volume here)
TIMEOUT_S = 120

# Runs inside the Open WebUI image. Prints one JSON line: {"ok": …} or {"error": …}.
SCRIPT = r"""
import json, os, sqlite3, sys
db = os.path.join(os.environ["DATA_DIR"], "webui.db")
def out(**kw):
    print(json.dumps(kw)); sys.exit(0 if "ok" in kw else 3)
if not os.path.exists(db):
    out(error="the volume holds no webui.db (Open WebUI never started on it)")
email, password = os.environ["ADMIN_EMAIL"], os.environ["ADMIN_PASSWORD"]
try:
    import bcrypt
    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
except ImportError:
    from passlib.context import CryptContext
    digest = CryptContext(schemes=["bcrypt"]).hash(password)
con = sqlite3.connect(db, timeout=30)
admins = con.execute("SELECT id, email FROM user WHERE role = 'admin' ORDER BY created_at").fetchall()
if not admins:
    out(error="webui.db has no admin user")
uid, old = next((a for a in admins if a[1].lower() == email.lower()), admins[0])
with con:
    n = con.execute("UPDATE auth SET password = ?, email = ? WHERE id = ?", (digest, email, uid)).rowcount
    con.execute("UPDATE user SET email = ? WHERE id = ?", (email, uid))
if n != 1:
    out(error="the admin user has no sign-in record (auth row)")
out(ok=True, old_email=old, email=email, admins=len(admins))
"""


@dataclass(frozen=True)
class ResetResult:
    stack: Stack
    email: str
    old_email: str
    stopped_openwebui: bool


def foreign_data_message(stack: Stack, fresh_env: bool) -> str:
    """What `up` says when Open WebUI rejects .env's admin: whose data it is and the
    three ways out, each a command that works as printed. Pure."""
    volume = volumes.volume_name(stack.project, OPENWEBUI.volume)
    what = ("this .env was just created, but the Open WebUI volume {v} holds the data of an "
            "earlier install (its users were made with another .env)" if fresh_env else
            "the Open WebUI volume {v} holds users made with other credentials (an earlier "
            "install's .env, or a password changed since)").format(v=volume)
    return (f"Open WebUI rejected the admin credentials in {stack.env_file.name}: {what}; the stack "
            "is stopped again. Ways out: restore that install's .env (WEBUI_ADMIN_EMAIL, "
            f"WEBUI_ADMIN_PASSWORD, WEBUI_SECRET_KEY) and run `{cmd('up')}`; or keep this .env and "
            f"set the admin's password in the volume to it with `{cmd('reset-admin')}`, then "
            f"`{cmd('up')}` (chats kept); or start empty, deleting the old data, with "
            f"`{cmd('down --volumes --yes')}`, then `{cmd('up')}`")


def reset_admin(*, reporter: Reporter | None = None) -> ResetResult:
    r = reporter or Reporter.quiet()
    stack = load_stack()
    client = engine.client()
    volume = volumes.volume_name(stack.project, OPENWEBUI.volume)
    if not volumes.volume_exists(client, volume):
        raise StackError(f"there is no Open WebUI data volume {volume} — nothing to reset; "
                         f"`{cmd('up')}` creates it with the admin from .env", exit_code=2)
    image = stack.env[OPENWEBUI.image_key]
    if not engine.image_present(client, image):
        raise StackError(f"the Open WebUI image {image} ({OPENWEBUI.image_key}) is not present — "
                         f"`{cmd('up')}` pulls it", exit_code=2)
    state = engine.services(client, stack.project).get(OPENWEBUI.name)
    stopped = state is not None and state.state in ("running", "restarting")
    if stopped:
        r.step(f"stopping {OPENWEBUI.title} (webui.db is written next)")
        composer.run(composer.find(), stack, "stop", *composer.services_arg(stack, [OPENWEBUI.name]))
    email = stack.env["WEBUI_ADMIN_EMAIL"]
    answer = _run(client, image, volume, stack, email)
    if "error" in answer:
        raise StackError(f"cannot reset the admin in {volume}: {answer['error']}", exit_code=1)
    return ResetResult(stack, answer["email"], answer["old_email"], stopped)


def _run(client, image: str, volume: str, stack: Stack, email: str) -> dict:
    ctr = client.containers.create(
        image, entrypoint=["python", "-c", SCRIPT], network_disabled=True, user="0",
        environment={"DATA_DIR": DATA_DIR, "ADMIN_EMAIL": email,
                     "ADMIN_PASSWORD": stack.env["WEBUI_ADMIN_PASSWORD"]},
        volumes={volume: {"bind": DATA_DIR, "mode": "rw"}},
        labels={**volumes.THROWAWAY, volumes.PROJECT_LABEL: stack.project},
    )
    try:
        ctr.start()
        code = ctr.wait(timeout=TIMEOUT_S).get("StatusCode", 1)
        output = ctr.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        with suppress(docker.errors.NotFound):
            ctr.remove(force=True)
    for line in reversed(output.splitlines()):
        with suppress(ValueError):
            answer = json.loads(line)
            if isinstance(answer, dict):
                return answer
    last = output.strip().splitlines()[-1][:200] if output.strip() else "no output"
    return {"error": f"the reset script failed (exit {code}): {last}"}
