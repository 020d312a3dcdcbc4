"""Fixtures serving the real Foundry Local runtime (owned by the Foundry work).

``foundry_server`` (session scope) starts the stack's own embedded server —
``stackctl.foundry.serve``, the same code path as ``invoke foundry.serve`` —
serving the tiny offline test model from tests/fixtures/tiny-model on a free
port with its own temporary state dir, and stops it after the session. It
yields a ``stackctl.foundry.ServerState``; the fields tests use:

- ``root_url``       ``http://127.0.0.1:PORT`` (service root: ``/status``, ``/models/loaded``)
- ``chat_base_url``  ``http://127.0.0.1:PORT/catalogs/local/v1`` (OpenAI base; local
                     models are served only under ``/catalogs/local``)
- ``model_id``       ``tiny-chat-generic-cpu:1`` (what chat requests name)
- ``model_alias``    ``tiny-chat``
- ``port``, ``pid``, ``urls`` (loopback first, then the Docker bridge gateway
  when there is one), ``state_dir`` (pass it to discover/status/stop), ``log_path``

From a container use ``stackctl.foundry.container_url(state.chat_base_url)``.
Do not stop the session server from a test; start your own with ``serve()``
if a test needs to stop one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stackctl.errors import StackError
from stackctl.foundry import ServerState, serve, stop
from tests.plugins.common import FIXTURES, free_port

TINY_MODEL_DIR = FIXTURES / "tiny-model"
TINY_MODEL_ALIAS = "tiny-chat"
TINY_MODEL_ID = "tiny-chat-generic-cpu:1"


def serve_tiny_model(state_dir: Path, port: int | None = None) -> ServerState:
    """Serve the tiny model with the embedded server; the caller stops it (``stop(state_dir)``)."""
    return serve(state_dir, port=port or free_port(), model_path=str(TINY_MODEL_DIR), name=TINY_MODEL_ALIAS)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    return TINY_MODEL_DIR


@pytest.fixture(scope="session")
def foundry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerState]:
    """The embedded Foundry Local server serving the tiny model (see the module docstring)."""
    state_dir = tmp_path_factory.mktemp("foundry-state")
    state = serve_tiny_model(state_dir)
    try:
        yield state
    finally:
        try:
            stop(state_dir)
        except StackError as err:  # someone stopped it; say so, as it breaks other tests
            pytest.fail(f"the session foundry_server was already gone at teardown: {err}")
