"""Command line: `python -m bot run|migrate|check-config|demo|rotate-keys [--config PATH]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from bot.config import ConfigError, load_settings, masked_dump, resolve_config_path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Rallypoint Discord bot")
    parser.add_argument("command", choices=["run", "migrate", "check-config", "demo", "rotate-keys"])
    parser.add_argument("--config", help="TOML config file (default: $RALLYPOINT_CONFIG or ./config.toml)")
    parser.add_argument(
        "--log-level", help="DEBUG, INFO, WARNING (default: INFO; WARNING for the demo's readable transcript)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = args.log_level or ("WARNING" if args.command == "demo" else "INFO")
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if args.command == "demo":
        from bot.demo import run_demo

        return asyncio.run(run_demo())
    try:
        settings = load_settings(resolve_config_path(args.config))
    except ConfigError as exc:
        print(f"rallypoint: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(json.dumps(masked_dump(settings), indent=2))
        return 0

    from bot import app

    if args.command == "migrate":
        applied = asyncio.run(app.migrate(settings))
        print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
        return 0
    if args.command == "rotate-keys":
        try:
            count = asyncio.run(app.rotate_contact_keys(settings))
        except ConfigError as exc:
            print(f"rallypoint: {exc}", file=sys.stderr)
            return 2
        print(f"re-encrypted {count} contact address(es) with the primary key")
        return 0
    try:
        asyncio.run(app.run(settings))
    except ConfigError as exc:
        print(f"rallypoint: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
