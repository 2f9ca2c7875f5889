"""`vward alerting`: the escalation scheduler (one leader) and the outbox notifier.

Every ``--interval`` seconds: compete for leadership (PostgreSQL advisory lock); the leader
sweeps timers (overdue, device, escalation, snooze, auto-resolution); every process delivers
due outbox rows (webhook, MQTT, dashboard). SIGINT/SIGTERM stop it cleanly with status 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import socket
import threading
from types import FrameType

import psycopg

from alerting import outbox, scheduler
from alerting.errors import PolicyError
from alerting.notify import DashboardNotifier, MqttNotifier, WebhookNotifier
from alerting.outbox import Notifier
from alerting.policy import load_policy, policy_path
from ward.settings import Settings

log = logging.getLogger("alerting")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", help="escalation policy YAML (default: VW_ESCALATION_POLICY "
                        "or deploy/escalation/default.yaml)")
    # 15 s: the shortest time to acknowledge is 15 min, so escalations are at most 1/60 late.
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between sweeps")
    parser.add_argument("--once", action="store_true", help="one sweep and delivery, then exit")
    parser.add_argument("--check-policy", action="store_true", help="validate the policy and exit")


def run(args: argparse.Namespace, settings: Settings) -> int:
    path = policy_path(args.policy or settings.escalation_policy)
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        print(f"vward alerting: {exc}")
        return 2
    if args.check_policy:
        print(f"{path}: policy {policy.name!r} is valid")
        return 0
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
    secret = settings.secret_key.get_secret_value().encode() if settings.secret_key else b""
    with psycopg.connect(conninfo) as conn, psycopg.connect(conninfo, autocommit=True) as live:
        notifiers: dict[str, Notifier] = {"dashboard": DashboardNotifier(live)}
        if secret:
            notifiers["webhook"] = WebhookNotifier(secret)
        if settings.mqtt_url:
            notifiers["mqtt"] = MqttNotifier(settings.mqtt_url, client_id=f"vw-alerting-{os.getpid()}",
                                             username=settings.mqtt_username,
                                             password=settings.mqtt_password.get_secret_value()
                                             if settings.mqtt_password else None)
        print(f"vward alerting: policy {policy.name!r}, channels {sorted(notifiers)}, "
              f"holder {holder}", flush=True)
        try:
            while not stop.is_set():
                now = dt.datetime.now(dt.UTC)
                try:
                    if leader.acquire(now):
                        result = scheduler.sweep(conn, policy, now)
                        leader.heartbeat(now, result)
                        # Every 15 s: INFO only when the sweep changed something.
                        changed = (result.timer_changes or result.escalated
                                   or result.snoozes_expired)
                        log.log(logging.INFO if changed else logging.DEBUG, "sweep %s", result)
                    report = outbox.deliver_due(conn, notifiers, now)
                    if report.delivered or report.retried or report.failed:
                        log.info("outbox delivered=%d retried=%d failed=%d", report.delivered,
                                 report.retried, report.failed)
                except psycopg.OperationalError as exc:
                    log.warning("database unavailable (%s); retrying", exc)
                    if not conn.closed:
                        conn.rollback()
                if args.once:
                    break
                stop.wait(args.interval)
        finally:
            leader.release()
            for notifier in notifiers.values():
                close = getattr(notifier, "close", None)
                if close is not None:
                    close()
    return 0
