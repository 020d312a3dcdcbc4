"""CLI status output of each generation -> service root (or None when not running)."""

import pytest

from stackctl.foundry.discovery import parse_cli_status

CLASSIC_RUNNING = "🟢 Model management service is running on http://127.0.0.1:5273/openai/status\n"
CLASSIC_STOPPED = (
    "🔴 Model management service is not running!\n"
    "To start the service, run the following command: foundry service start\n"
)
NEW_CLI_RUNNING = "Foundry Local server is running.\n  Endpoint: http://127.0.0.1:60123\n  Models loaded: 1\n"
NEW_CLI_V1 = "Server running at http://localhost:60123/v1 (pid 4242)\n"
NEW_CLI_STOPPED = "Foundry Local server is not running. Start it with: foundry server start\n"


@pytest.mark.parametrize(
    ("text", "root"),
    [
        (CLASSIC_RUNNING, "http://127.0.0.1:5273"),
        (NEW_CLI_RUNNING, "http://127.0.0.1:60123"),
        (NEW_CLI_V1, "http://localhost:60123"),
        (CLASSIC_STOPPED, None),
        (NEW_CLI_STOPPED, None),
        ("", None),
    ],
)
def test_parse_cli_status(text, root):
    assert parse_cli_status(text) == root
