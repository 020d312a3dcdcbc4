"""One check framework (runner.py) and the checks of `doctor` (setup, troubleshooting)
and `smoke` (the chat path, observability, a real browser).

The runner imports no sibling; check modules import the runner, never each other's
privates; doctor.py and smoke.py only choose which checks run and in what order."""
