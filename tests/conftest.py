"""One pytest tree, three tiers. A test's tier is the folder it lives in:

tests/unit         -> marker ``unit``         (pure functions, in-process fakes)
tests/integration  -> marker ``integration``  (real Foundry runtime, Prometheus, loopback servers)
tests/e2e          -> marker ``e2e``          (the whole stack on a real Docker Engine)

Shared fixtures live in tests/plugins/, one module per concern.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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
