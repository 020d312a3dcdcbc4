"""Where the embedded Foundry Local server keeps its files (one place).

Invariant: everything the embedded server writes lives under
``<STACK_STATE_DIR>/foundry/``; callers pass the stack state dir, never the
subfolder, so every module agrees on the layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FoundryPaths:
    state_dir: Path  # the stack's STACK_STATE_DIR

    @property
    def root(self) -> Path:
        return self.state_dir / "foundry"

    @property
    def state_file(self) -> Path:
        return self.root / "server.json"

    @property
    def supervisor_file(self) -> Path:  # the supervisor that restarts a crashed server
        return self.root / "supervisor.json"

    @property
    def keep_file(self) -> Path:  # what the keeper serves again when nothing keeps it (keeper.py)
        return self.root / "keep.json"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def app_data(self) -> Path:
        return self.root / "app"

    @property
    def model_cache(self) -> Path:
        return self.root / "models"

    @property
    def runtime_logs(self) -> Path:
        return self.root / "logs"
