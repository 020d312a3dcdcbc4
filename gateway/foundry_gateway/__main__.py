"""``foundry-gateway`` / ``python -m foundry_gateway``: flags, config, run."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__
from .config import ConfigError, is_host_port, load_config

DEFAULT_CONFIG = "/etc/foundry-gateway/config.yml"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="foundry-gateway", description=(
        "Guarded, measured reverse proxy in front of Foundry Local."))
    parser.add_argument("--config", default=os.environ.get("FOUNDRY_GATEWAY_CONFIG", DEFAULT_CONFIG),
                        help="YAML config file (env FOUNDRY_GATEWAY_CONFIG; default %(default)s)")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the config (and the env vars it names), then exit")
    parser.add_argument("--listen-address", action="append", default=None, metavar="IP:PORT",
                        help="address to serve on, repeatable or comma-separated "
                             "(overrides listen_addresses)")
    parser.add_argument("--log-level", default=os.environ.get("FOUNDRY_GATEWAY_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.listen_address:
        args.listen_address = [a.strip() for arg in args.listen_address for a in arg.split(",")]
    for address in args.listen_address or ():
        if not is_host_port(address):
            print(f"--listen-address: {address!r} is not IP:port; write it like 127.0.0.1:9180",
                  file=sys.stderr)
            return 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"config has {len(exc.problems)} problem(s):", file=sys.stderr)
        print(str(exc), file=sys.stderr)
        return 2
    listen = tuple(args.listen_address or config.listen_addresses)
    if args.check_config:
        print(f"{args.config}: OK; upstream {config.upstream.name} at {config.upstream.url}; "
              f"listening on {', '.join(listen)}")
        return 0
    from .app import run  # deferred: --check-config needs no server machinery

    return run(config, listen)


if __name__ == "__main__":
    sys.exit(main())
