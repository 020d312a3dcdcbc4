"""#6: a crashed embedded Foundry is reported as the stack's own server that died
(pid, how if known, last log lines, the log's path, what restores it) by status,
doctor and smoke — not as "not found". The log is written the way the server
process writes it (header by the launcher, then `foundry-server[PID]` lines)."""

from __future__ import annotations

import json

from stackctl.checks import chat, doctor
from stackctl.checks.context import Ctx
from stackctl.checks.runner import FAIL
from stackctl.config import envfile
from stackctl.config.stack import Stack
from stackctl.foundry import view
from stackctl.foundry.paths import FoundryPaths
from stackctl.lifecycle.ops import StatusReport, status_table

HEADER = "\n=== foundry.serve 2026-12-01T15:32:28+00:00: -m stackctl.foundry.server --port 1 --alias tiny\n"
READY = ("2026-12-01 15:32:29,141 INFO foundry-server[4242] stage starting the Foundry Local runtime\n"
         "2026-12-01 15:32:29,586 INFO foundry-server[4242] stage starting the web service\n"
         "2026-12-01 15:32:29,591 INFO foundry-server[4242] ready serving tiny-generic-cpu:1\n")
STOPPED = ("2026-12-01 15:40:00,000 INFO foundry-server[4242] received SIGTERM\n"
           "2026-12-01 15:40:00,100 INFO foundry-server[4242] stopping\n"
           "2026-12-01 15:40:00,300 INFO foundry-server[4242] stopped\n")


def make_stack(tmp_path, log: str) -> Stack:
    env_file = tmp_path / ".env"
    envfile.ensure(env_file)
    stack = Stack(tmp_path, env_file, envfile.load(env_file) | {"STACK_STATE_DIR": str(tmp_path / "state")})
    paths = FoundryPaths(stack.state_dir)
    paths.root.mkdir(parents=True)
    paths.log_file.write_text(log)
    return stack


def test_a_run_that_reached_ready_and_never_stopped_died(tmp_path):
    stack = make_stack(tmp_path, HEADER + "old run\n" + HEADER + READY)
    found, reason = view.current(stack)
    assert found is None
    assert reason.startswith("the stack's own Foundry Local server (pid 4242) died (no exit status recorded: killed")
    assert "ready serving tiny-generic-cpu:1" in reason  # the last lines of its log
    assert f"log: {FoundryPaths(stack.state_dir).log_file}" in reason
    assert reason.endswith("— `./stack up` restarts it")
    assert "not found" not in reason


def test_its_last_error_is_how_it_died(tmp_path):
    stack = make_stack(tmp_path, HEADER + READY + "2026-12-01 15:33:00,000 ERROR foundry-server[4242] watchdog: boom\n")
    _, reason = view.current(stack)
    assert "died (its last error: watchdog: boom)" in reason


def test_a_clean_stop_is_not_a_death(tmp_path):
    stack = make_stack(tmp_path, HEADER + READY + STOPPED)
    _, reason = view.current(stack)
    assert not reason.startswith("the stack's own")


def test_a_failed_start_up_is_not_a_death(tmp_path):
    stack = make_stack(tmp_path, HEADER + "2026-12-01 15:32:29,141 INFO foundry-server[4242] stage starting\n")
    _, reason = view.current(stack)
    assert not reason.startswith("the stack's own")


def test_status_doctor_and_smoke_say_it_died(tmp_path):
    stack = make_stack(tmp_path, HEADER + READY)
    found, reason = view.current(stack)
    table = status_table(StatusReport(stack, {}, {}, found, reason))
    from rich.console import Console

    console = Console(record=True, width=400)
    console.print(table)
    text = console.export_text()
    assert "died" in text and "not found" not in text and "pid 4242" in text

    ctx = Ctx(stack=stack)
    ctx.discover = view.current
    doc = list(doctor.check_foundry(ctx))
    assert doc[0].status == FAIL and doc[0].detail.startswith("the stack's own Foundry Local server (pid 4242) died")
    from stackctl.checks.runner import Failed

    try:
        chat.check_foundry(ctx)
    except Failed as err:
        assert err.detail.startswith("the stack's own Foundry Local server (pid 4242) died")
    else:
        raise AssertionError("smoke's Foundry check passed with a dead server")
    json.dumps(doc[0].detail)  # one line of text
    assert "\n" not in doc[0].detail
