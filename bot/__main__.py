"""Command line: `python -m bot run|migrate|check-config|backup|rotate-keys|demo [--config PATH]`.

Every refusal is one line on stderr starting `rallypoint:` with exit code 2 (a configuration error:
restarting will not fix it, so the systemd unit does not restart on it); never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from bot.api.deps import package_version
from bot.client import NoVoiceLibraryWarnings
from bot.config import ConfigError, Settings, load_settings, masked_dump, resolve_config_path

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
Handler = Callable[[argparse.Namespace], int]
EXIT_CONFIG = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other refusal."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"rallypoint: {message} (see {self.prog} --help)\n")


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{value!r} is not a log level: use one of {', '.join(LOG_LEVELS)}")
    return level


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bot", description="Rallypoint: a self-hosted Discord bot for game nights.")
    parser.add_argument("--version", action="version", version=f"rallypoint {package_version()}")
    # The options go before or after the command; given after it, they win.
    logs, config = _Parser(add_help=False), _Parser(add_help=False)
    for target, default in ((parser, None), (logs, argparse.SUPPRESS)):
        target.add_argument(
            "--log-level",
            type=_log_level,
            default=default,
            help=f"{', '.join(LOG_LEVELS)} (default: INFO; WARNING for the demo's readable transcript)",
        )
    for target, default in ((parser, None), (config, argparse.SUPPRESS)):
        target.add_argument(
            "--config", default=default, help="TOML config file (default: $RALLYPOINT_CONFIG, else ./config.toml)"
        )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str, handler: Handler, *, configured: bool = True) -> _Parser:
        parents = [config, logs] if configured else [logs]
        sub: _Parser = commands.add_parser(name, parents=parents, help=summary, description=description)
        sub.set_defaults(handler=handler)
        return sub

    command(
        "run", "run the bot",
        "Connect to Discord (and Telegram and Signal when configured), serve the HTTP API and send the "
        "scheduled campaigns until SIGTERM or SIGINT. Checks the configuration first, like check-config; "
        "applies pending database migrations (copying the database aside first). An unreachable Discord is "
        "retried with backoff; a rejected token or an invisible guild stops it with exit code 2.",
        _run,
    )
    command(
        "migrate", "apply pending database migrations",
        "Copy the database aside (<file>.bak-<version>-<time>, with SQLite's backup API), then apply the pending "
        "migrations, each in its own transaction. Refuses a database whose schema is newer than this code.",
        _migrate,
    )
    command(
        "check-config", "validate the configuration and print it with secrets masked",
        "Run exactly the checks `run` makes before it connects, print the effective configuration (file and "
        "environment) as JSON with every secret masked, then warnings on stderr. Exit code 2 if run would refuse.",
        _check_config,
    )
    backup = command(
        "backup", "copy the database, safely while the bot runs",
        "Copy the database with SQLite's online backup API (consistent even while the bot writes), then check "
        "the copy's integrity. DESTINATION is a file (replaced) or a directory (a time-stamped file inside it).",
        _backup,
    )
    backup.add_argument("destination", type=Path, help="file or directory to write the copy to")
    command(
        "rotate-keys", "re-encrypt stored contact addresses with the primary key",
        "After putting a new key first in security.contact_encryption_key, re-encrypt every stored Telegram chat "
        "id and Signal number with it (safe while the bot runs). Exit code 2 if an address cannot be decrypted.",
        _rotate_keys,
    )
    demo = command(
        "demo", "rehearse a whole campaign offline",
        "Start the built-in Discord, Telegram and Signal emulators on loopback and run a compressed evening "
        "against them with the real bot, printing what players receive. Needs no configuration.",
        _demo,
        configured=False,
    )
    demo.add_argument(
        "--serve", action="store_true",
        help="afterwards keep the emulated world running and print the address of the bot's page, where "
        "you sign in as any demo player or the promoter (until Ctrl-C)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args.log_level or ("WARNING" if args.command == "demo" else "INFO"))
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"rallypoint: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 0


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("discord.client").addFilter(NoVoiceLibraryWarnings())


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(resolve_config_path(args.config))


def _run(args: argparse.Namespace) -> int:
    from bot import app

    return asyncio.run(app.run(_settings(args)))


def _check_config(args: argparse.Namespace) -> int:
    from bot.preflight import check_run

    settings = _settings(args)
    warnings = check_run(settings, os.environ)
    print(json.dumps(masked_dump(settings), indent=2))
    for warning in warnings:
        print(f"rallypoint: warning: {warning}", file=sys.stderr)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from bot import app

    opened = asyncio.run(app.migrate(_settings(args)))
    if opened.copy is not None:
        print(f"copied the database to {opened.copy.target} first")
    print(f"applied {len(opened.applied)} migration(s): {', '.join(opened.applied) or 'none pending'}")
    return 0


def _backup(args: argparse.Namespace) -> int:
    from bot import app

    settings = _settings(args)
    target: Path = args.destination
    if target.is_dir():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = target / f"{settings.storage.path.stem}-{stamp}.sqlite3"
    result = app.backup_database(settings, target)
    print(f"backed up to {result.target} ({result.pages} pages, schema version {result.schema_version}, integrity ok)")
    return 0


def _rotate_keys(args: argparse.Namespace) -> int:
    from bot import app

    count = asyncio.run(app.rotate_contact_keys(_settings(args)))
    print(f"re-encrypted {count} contact address(es) with the primary key")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return asyncio.run(run_demo(serve=args.serve))


if __name__ == "__main__":
    sys.exit(main())
