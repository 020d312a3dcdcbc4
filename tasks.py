"""The root of the command line (`invoke --list`): the per-concern collections of
stackctl/cli, one error edge, defaults from the settings table.

Every command's logic is a function in stackctl/ that returns data; stackctl/cli
turns that data into lines on the terminal and an exit code (0 ok, 1 failed
check or operation, 2 bad input or missing prerequisite).
"""

from __future__ import annotations

import os

from invoke import Collection

from stackctl.cli import day2, dev, fleet, foundry, k8s, knowledge, stack
from stackctl.config.settings import TASK_DEFAULTS

ns = Collection()
for concern in (stack, day2, dev, fleet, k8s):
    for t in concern.ns.tasks.values():
        ns.add_task(t)
ns.add_collection(foundry.ns, name="foundry")
ns.add_collection(knowledge.ns, name="knowledge")
ns.configure({"stack": TASK_DEFAULTS, "run": {"pty": os.isatty(1)}})
