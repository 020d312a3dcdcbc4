"""One pytest tree, three tiers. A test's tier is the folder it lives in:

tests/unit         -> marker ``unit``         (pure functions, in-process fakes)
tests/integration  -> marker ``integration``  (real Foundry runtime, Prometheus, loopback servers)
tests/e2e          -> marker ``e2e``          (the whole stack on a real Docker Engine)

Shared fixtures live in tests/plugins/, one module per concern.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

# A runner that starts the suite in the background (`cmd &` in a script) hands every
# process SIGINT *ignored*, and Python then installs no KeyboardInterrupt handler; the
# Ctrl-C tests (restore, lock, foundry.serve) need what a terminal gives. Restored here,
# for this process and — since exec resets a handled signal to its default — its children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

pytest_plugins = [
    "tests.plugins.common",
    "tests.plugins.foundry",
    "tests.plugins.images",
    "tests.plugins.stack",
]

_TIERS = ("unit", "integration", "e2e")
_ROOT = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            tier = Path(item.fspath).relative_to(_ROOT).parts[0]
        except ValueError:
            continue
        if tier in _TIERS:
            item.add_marker(getattr(pytest.mark, tier))
