"""`vward alerting`: alert evaluation, the escalation scheduler (one leader) and the notifier.

In a process of its own (`alerting.worker`, ``--evaluator process``, the default), the
evaluator (`alerting.evaluator`) scores the patients the gateways queue after each commit, as
soon as NOTIFY says there are some; ``--evaluator thread`` runs it on a thread of this process
instead (the timer sweep then competes with it for one GIL), ``--evaluator off`` (or
``--no-evaluate``) not at all. Every ``--interval`` seconds: compete for leadership (PostgreSQL advisory lock); the leader
sweeps timers (overdue, device, escalation, snooze, auto-resolution); every process delivers
due outbox rows (webhook, MQTT, dashboard, and the SMS/pager plug-ins of the policy's
``notifiers:``). SIGINT/SIGTERM stop it cleanly with status 0.

``--check-policy`` validates the policy, builds its plug-ins and fails (status 2) when a
contact names a channel no notifier of this process would deliver: such rows would otherwise
wait in the outbox forever while the page never leaves.

A lost database connection (backend terminated, failover, restart) is not fatal and not
permanent: both connections are closed and opened again with the gateway's backoff (0.5 s
doubling to 10 s), the dashboard notifier is rebuilt on the new one, and the loop goes on —
escalations never stop silently while the process stays alive.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import logging
import os
import signal
import socket
import threading
from types import FrameType
from typing import Any

import psycopg

from alerting import outbox, plugins, runner, scheduler, store, worker
from alerting.errors import PolicyError
from alerting.evaluator import Evaluator
from alerting.notify import DashboardNotifier, MqttNotifier, WebhookNotifier
from alerting.outbox import Notifier
from alerting.policy import Policy, configured_policy, policy_path, unserved_channels
from ward import gcpolicy
from ward.settings import Settings

log = logging.getLogger("alerting")

Conn = psycopg.Connection[Any]
# Reconnect backoff, as the gateway's: a quick first retry (a failover), then every 10 s.
DB_RETRY_MIN_S = 0.5
DB_RETRY_MAX_S = 10.0
# A connection attempt that takes longer than this is a failure (and retried).
DB_CONNECT_TIMEOUT_S = 5


class _Database:
    """The loop's work connection and its autocommit one (NOTIFY), re-opened after a loss."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self.conn: Conn | None = None
        self.live: Conn | None = None

    def open(self) -> tuple[Conn, Conn, bool]:
        """(work, live, fresh): connects if needed; `fresh` when new connections were opened
        (so what holds the old ones is rebuilt)."""
        if (self.conn is not None and not self.conn.closed and not self.conn.broken
                and self.live is not None and not self.live.closed and not self.live.broken):
            return self.conn, self.live, False
        self.close()
        name = f"vw-alerting-{os.getpid()}"
        self.conn = psycopg.connect(self._conninfo, connect_timeout=DB_CONNECT_TIMEOUT_S,
                                    application_name=name)
        self.live = psycopg.connect(self._conninfo, autocommit=True, application_name=name,
                                    connect_timeout=DB_CONNECT_TIMEOUT_S)
        return self.conn, self.live, True

    def close(self) -> None:
        for conn in (self.conn, self.live):
            if conn is not None:
                with contextlib.suppress(psycopg.Error):  # closing a broken socket
                    conn.close()
        self.conn = self.live = None


def _tick(db: _Database, leader: scheduler.Leader, policy: Policy,
          notifiers: dict[str, Notifier], now: dt.datetime) -> None:
    """One sweep (when leading) and one outbox delivery; raises OperationalError on a loss."""
    conn, live, fresh = db.open()
    if fresh:
        notifiers["dashboard"] = DashboardNotifier(live)
        log.info("database connected")
    if leader.acquire(now):
        result = scheduler.sweep(conn, policy, now)
        leader.heartbeat(now, result)
        # Every 15 s: INFO only when the sweep changed something.
        changed = result.timer_changes or result.escalated or result.snoozes_expired
        log.log(logging.INFO if changed else logging.DEBUG, "sweep %s", result)
    report = outbox.deliver_due(conn, notifiers, now)
    if report.delivered or report.retried or report.failed:
        log.info("outbox delivered=%d retried=%d failed=%d", report.delivered,
                 report.retried, report.failed)


def built_in_channels(settings: Settings) -> set[str]:
    """The built-in channels this process can deliver with its settings."""
    channels = {"dashboard"}
    if settings.secret_key:
        channels.add("webhook")
    if settings.mqtt_url:
        channels.add("mqtt")
    return channels


def _built_ins(settings: Settings) -> dict[str, Notifier]:
    """Webhook and MQTT; the dashboard notifier is added on each (re)connection (`_tick`)."""
    notifiers: dict[str, Notifier] = {}
    if settings.secret_key:
        notifiers["webhook"] = WebhookNotifier(settings.secret_key.get_secret_value().encode())
    if settings.mqtt_url:
        notifiers["mqtt"] = MqttNotifier(settings.mqtt_url, client_id=f"vw-alerting-{os.getpid()}",
                                         username=settings.mqtt_username,
                                         password=settings.mqtt_password.get_secret_value()
                                         if settings.mqtt_password else None)
    return notifiers


def _close(notifiers: dict[str, Notifier]) -> None:
    for notifier in notifiers.values():
        close = getattr(notifier, "close", None)
        if close is not None:
            close()


def check(policy: Policy, settings: Settings) -> list[str]:
    """Problems that would leave pages undelivered (builds, then closes, the plug-ins)."""
    extra, problems = plugins.build(policy.notifiers)
    _close(extra)
    available = built_in_channels(settings) | set(extra)
    problems += unserved_channels(policy, available)
    if "mqtt" not in available:
        # alerting.tasks sends full-set commands to home hubs through the outbox's mqtt rows.
        problems.append("channel 'mqtt' (used by full-set commands to home hubs) has no "
                        "notifier: set VW_MQTT_URL")
    return problems


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", help="escalation policy YAML (default: VW_ESCALATION_POLICY "
                        "or deploy/escalation/default.yaml)")
    # 15 s: the shortest time to acknowledge is 15 min, so escalations are at most 1/60 late.
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between sweeps")
    parser.add_argument("--once", action="store_true", help="one sweep and delivery, then exit")
    parser.add_argument("--check-policy", action="store_true", help="validate the policy and exit")
    parser.add_argument("--evaluator", choices=("process", "thread", "off"), default="process",
                        help="where queued patients are evaluated: a child process (default; "
                        "the timer sweep never delays it), a thread of this process, or not "
                        "here (another process does)")
    parser.add_argument("--no-evaluate", action="store_true", help="the same as --evaluator off")


def _evaluator(args: argparse.Namespace, conninfo: str, policy: Policy, stop: threading.Event,
               ) -> tuple[Evaluator | None, threading.Thread | None]:
    """The in-process evaluator: a thread (`--evaluator thread`), or drained by the loop
    (`--once`); None when it runs in a child process or not here."""
    if args.no_evaluate or args.evaluator == "off" or (
            args.evaluator == "process" and not args.once):
        return None, None
    evaluator = Evaluator(conninfo, functools.partial(runner.evaluate_after_commit,
                                                      policy=policy,
                                                      cache=store.EpisodeCache()))
    return evaluator, None if args.once else evaluator.start(stop)


def _stop_evaluator(evaluator: Evaluator | None, thread: threading.Thread | None) -> None:
    if thread is not None:  # let a pass in progress commit (or roll back) cleanly
        thread.join(timeout=10)
    elif evaluator is not None:
        evaluator.close()


def _child(args: argparse.Namespace, conninfo: str, settings: Settings, path: str,
           stop: threading.Event) -> worker.EvaluatorProcess | None:
    if args.no_evaluate or args.evaluator != "process" or args.once:
        return None
    child = worker.EvaluatorProcess(conninfo, settings, path, stop)
    child.start()
    return child


def _loop(args: argparse.Namespace, db: _Database, leader: scheduler.Leader, *, policy: Policy,
          notifiers: dict[str, Notifier], evaluator: Evaluator | None,
          stop: threading.Event) -> None:
    """Tick every `--interval` until stopped; a lost database is reopened with backoff."""
    delay = DB_RETRY_MIN_S
    try:
        while not stop.is_set():
            try:
                if evaluator is not None and args.once:
                    evaluator.drain()
                _tick(db, leader, policy, notifiers, dt.datetime.now(dt.UTC))
                delay = DB_RETRY_MIN_S
            except psycopg.OperationalError as exc:
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                log.warning("database connection lost (%s: %s); reconnecting in %.1f s",
                            type(exc).__name__, first_line, delay)
                db.close()
                if args.once or stop.wait(delay):
                    break
                delay = min(delay * 2, DB_RETRY_MAX_S)
                continue
            if args.once:
                break
            stop.wait(args.interval)
    finally:
        db.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    path = policy_path(args.policy or settings.escalation_policy)
    try:
        policy = configured_policy(settings, str(path))
    except PolicyError as exc:
        print(f"vward alerting: {exc}")
        return 2
    problems = check(policy, settings)
    if args.check_policy:
        if problems:
            for problem in problems:
                print(f"vward alerting: {path}: {problem}")
            return 2
        print(f"{path}: policy {policy.name!r} is valid; every channel has a notifier")
        return 0
    for problem in problems:
        log.warning("%s: %s; its rows wait for a process that has one", path, problem)
    # Before any thread or child process starts: they inherit it (worker.lower_priority).
    nice = worker.lower_priority(settings.alerting_nice)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    conninfo = settings.database_conninfo()
    holder = f"{socket.gethostname()}:{os.getpid()}"
    leader = scheduler.Leader(conninfo, holder)
    notifiers = _built_ins(settings)
    notifiers.update(plugins.build(policy.notifiers)[0])
    channels = sorted([*notifiers, "dashboard"])
    print(f"vward alerting: policy {policy.name!r}, channels {channels}, holder {holder}, "
          f"nice {nice}", flush=True)
    evaluator, thread = _evaluator(args, conninfo, policy, stop)
    child = _child(args, conninfo, settings, str(path), stop)
    log.info("alerting %s", gcpolicy.describe(gcpolicy.tune_for_service()))
    try:
        _loop(args, _Database(conninfo), leader, policy=policy, notifiers=notifiers,
              evaluator=evaluator, stop=stop)
    finally:
        if child is not None:
            child.stop()
        _stop_evaluator(evaluator, thread)
        leader.release()
        _close(notifiers)
    return 0
