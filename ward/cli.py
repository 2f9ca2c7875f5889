"""`vward`: one command line for every part of the platform.

Each sub-command lives in its own module exposing `configure(parser)` and
`run(args, settings) -> int`; only the chosen one is imported, so `vward score` starts fast
and a part that is not installed says so instead of crashing the whole command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Protocol

from ward.logformat import formatter
from ward.settings import Settings, SettingsError

COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": ("ward.commands.migrate", "apply the database migrations (idempotent)"),
    "maintain": ("ward.commands.maintain", "database housekeeping: readings retention"),
    "demo": ("ward.commands.demo", "start a live virtual ward on this machine"),
    "gateway": ("gateway.cli", "run the MQTT device gateway"),
    "devices": ("gateway.devices_cli", "register and provision devices"),
    "broker": ("gateway.broker_cli", "make a host's broker setup, rotate service secrets"),
    "hub": ("ward.hub.cli", "serve the ward API and dashboard"),
    "users": ("ward.commands.users", "create hub users"),
    "score": ("ward.commands.score", "score a CSV of observations with NEWS2"),
    "alerting": ("alerting.cli", "run the escalation scheduler and notifier"),
    "replay": ("ward.commands.replay", "replay readings through the alert rules"),
    "simulate": ("ward.commands.simulate", "drive the broker with simulated patients"),
    "demo-history": ("ward.hub.demo_history", "backfill a month of demo ward history"),
    "demo-referrals": ("ward.hub.demo_referrals",
                       "feed the triage queue with simulated referrals (the demo's)"),
}


class Command(Protocol):
    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, settings: Settings) -> int: ...


def configure_logging(level: str, kind: str = "text") -> None:
    """Log to stderr as logfmt-style text or, with `VW_LOG_FORMAT=json`, JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(kind))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vward", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, text) in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    module_name, text = COMMANDS[args.command]
    try:
        module: Command = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"vward {args.command}: not available in this build", file=sys.stderr)
            return 2
        raise
    command_parser = argparse.ArgumentParser(prog=f"vward {args.command}", description=text)
    module.configure(command_parser)
    command_args = command_parser.parse_args(rest)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"vward: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        return module.run(command_args, settings)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
