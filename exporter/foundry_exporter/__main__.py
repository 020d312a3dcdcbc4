"""``foundry-exporter`` / ``python -m foundry_exporter``: flags, config, run."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__
from .config import ConfigError, load_config

DEFAULT_CONFIG = "/etc/foundry-exporter/config.yml"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="foundry-exporter", description=(
        "Prometheus exporter for Foundry Local and OpenAI-compatible servers."))
    parser.add_argument("--config", default=os.environ.get("FOUNDRY_EXPORTER_CONFIG", DEFAULT_CONFIG),
                        help="YAML config file (env FOUNDRY_EXPORTER_CONFIG; default %(default)s)")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the config (and the env vars it names), then exit")
    parser.add_argument("--listen-address", default=None,
                        help="host:port to serve on (overrides listen_address in the config)")
    parser.add_argument("--log-level", default=os.environ.get("FOUNDRY_EXPORTER_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO: a line per probe, forever. Probe outcomes
    # are logged by the scheduler, on change only.
    logging.getLogger("httpx2").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"config has {len(exc.problems)} problem(s):", file=sys.stderr)
        print(str(exc), file=sys.stderr)
        return 2
    if args.check_config:
        names = ", ".join(f"{t.name} ({t.kind})" for t in config.targets) or "none"
        print(f"{args.config}: OK; targets: {names}")
        return 0
    from .app import run  # deferred: --check-config needs no server machinery

    return run(config, args.listen_address or config.listen_address)


if __name__ == "__main__":
    sys.exit(main())
