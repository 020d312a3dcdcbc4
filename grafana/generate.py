"""Write grafana/dashboards/*.json from the builders in this package.

Run ``python grafana/generate.py`` (or ``python -m grafana.generate``) after
changing a dashboard and commit the JSON; the unit tests fail when the committed files differ from a fresh build.
Output is deterministic: sorted keys, panel ids in layout order.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

if not __package__:  # run as a file: make the repo root importable for `grafana.*`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grafana import chats, foundry_local, stack_health

DASHBOARDS_DIR = Path(__file__).parent / "dashboards"

# Each module has UID and build(); its file is <UID>.json.
DASHBOARDS = (chats, foundry_local, stack_health)


def _number_panels(panels: list) -> None:
    for number, panel in enumerate(panels, start=1):
        panel.id = number


def render(builder: dashboard.Dashboard) -> str:
    """The dashboard as the JSON text Grafana's file provider reads."""
    model = builder.build()
    _number_panels(model.panels or [])
    return json.dumps(json.loads(JSONEncoder().encode(model)), indent=2, sort_keys=True) + "\n"


def build_all() -> dict[str, str]:
    """File name -> JSON text for every dashboard."""
    return {f"{module.UID}.json": render(module.build()) for module in DASHBOARDS}


def write_all(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    """Write every dashboard into ``directory``; returns the files that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in build_all().items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed


def main() -> int:
    for path in write_all():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
