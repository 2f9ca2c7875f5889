"""`vward demo-referrals`: the demo's live referral feed, so the triage queue is never empty.

`vward demo` starts it once the hub answers. It takes the seeded stream of
`simulators.referrals` (GP, ambulance, 111, ED, urgent community response, hospital ward
step-down, self/carer; a few an hour) and enters each referral as it falls due, through the
same transaction the hub's phone-referral form uses (`ward.hub.admitting.refer_new_patient`:
the patient registered, the referral audited, its 2-hour clock started when it is a 2-hour
referral, and an event sent so every open triage screen shows it at once). It starts
`--backfill` in the past, so the queue opens with the referrals of the last two hours waiting
and their clocks already running, then follows the wall clock.

The queue is bounded: while `--max-waiting` referrals wait for a decision, a new one is
passed over (the referrer takes the patient elsewhere, as happens when a ward does not
answer), so an unattended demo does not pile up a day of referrals. It never runs dry either:
while fewer than `--min-waiting` wait (a quiet spell of the Poisson stream, or a quick
triager), the next referral is brought forward to now. The feed enters
referrals as the account `referral-feed` (inactive: it cannot log in), so the audit log
says where they came from.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from simulators.referrals import SimReferral, stream
from simulators.scenario import parse_duration
from ward.domain.errors import DomainError
from ward.domain.patients import Patient
from ward.hub import admitting
from ward.hub.auth import Role, User, hash_password
from ward.settings import Settings

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
FEED_USER = "referral-feed"
# A few an hour: enough that the queue moves while someone watches, few enough to triage.
DEFAULT_PER_HOUR = 4.0
# The queue opens with the last two hours' referrals waiting (as the demo's ward opens with
# two hours of readings).
DEFAULT_BACKFILL = "2h"
# More than this many referrals waiting and the feed passes new ones over (see above).
DEFAULT_MAX_WAITING = 10
# Fewer than this many waiting and the next referral comes now: the screen is never empty.
DEFAULT_MIN_WAITING = 2
# How often a sleeping feed looks whether the queue fell below the floor (a decision taken).
FLOOR_CHECK_S = 20.0
DEFAULT_SEED = 2026
# After losing the database, try again this often (the demo's database restarts with it).
RETRY_S = 5.0


@dataclass(frozen=True, slots=True)
class Fed:
    entered: int
    passed_over: int


def feed_user(conn: Conn) -> User:
    """The feed's own account (created inactive, with a random password nobody knows)."""
    conn.execute(
        "INSERT INTO users (username, display_name, role, password_hash, active) "
        "VALUES (%s, %s, %s, %s, false) ON CONFLICT (username) DO NOTHING",
        (FEED_USER, "Demo referral feed", Role.HUB_NURSE.value,
         hash_password(secrets.token_urlsafe(32))))
    row = conn.execute("SELECT id, display_name FROM users WHERE username = %s",
                       (FEED_USER,)).fetchone()
    assert row is not None  # noqa: S101 - inserted just above if it was missing
    return User(int(row[0]), FEED_USER, str(row[1]), Role.HUB_NURSE)


def waiting(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM admissions WHERE status = 'referred'").fetchone()
    return int(row[0]) if row else 0


def enter(conn: Conn, user: User, referral: SimReferral, *, now: dt.datetime,
          max_waiting: int) -> int | None:
    """Enter one referral (its own savepoint); None when passed over or refused."""
    if waiting(conn) >= max_waiting:
        return None
    patient = Patient(referral.nhs_number, referral.given_name, referral.family_name,
                      referral.date_of_birth)
    try:
        with conn.transaction():
            return admitting.refer_new_patient(
                conn, user, now, patient, source=referral.source, urgency=referral.urgency,
                reason=referral.reason, observations=dict(referral.observations),
                referrer=referral.referrer, referred_at=min(referral.at, now),
                pathway=referral.pathway)
    except DomainError as exc:  # e.g. this test patient is already referred (a re-run)
        log.info("referral of %s not entered: %s", referral.nhs_number, exc)
        return None


def feed(conninfo: str, *, seed: int, per_hour: float, backfill: dt.timedelta,
         max_waiting: int, stop: threading.Event, min_waiting: int = 0,
         clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
         backlog_only: bool = False) -> Fed:
    """Run the feed until `stop` (or, with `backlog_only`, until it has caught up)."""
    referrals = stream(seed, clock() - backfill, per_hour)
    pending = next(referrals)
    entered = passed = 0
    while not stop.is_set():
        try:
            with psycopg.connect(conninfo) as conn:
                user = feed_user(conn)
                conn.commit()
                while not stop.is_set():
                    now = clock()
                    if pending.at > now and waiting(conn) < min_waiting:
                        pending = replace(pending, at=now)  # brought forward (see above)
                    conn.commit()  # end the count's snapshot before sleeping
                    if pending.at > now:
                        if backlog_only:
                            return Fed(entered, passed)
                        stop.wait(min((pending.at - now).total_seconds(), FLOOR_CHECK_S))
                        continue
                    if enter(conn, user, pending, now=now, max_waiting=max_waiting) is None:
                        passed += 1
                    else:
                        entered += 1
                    conn.commit()
                    pending = next(referrals)
        except psycopg.OperationalError as exc:
            log.warning("referral feed lost the database (%s); retrying in %.0f s",
                        type(exc).__name__, RETRY_S)
            stop.wait(RETRY_S)
    return Fed(entered, passed)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0] if __doc__ else None
    parser.add_argument("--per-hour", type=float, default=DEFAULT_PER_HOUR,
                        help=f"referrals an hour on average (default {DEFAULT_PER_HOUR:g})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--backfill", default=DEFAULT_BACKFILL,
                        help=f"start this far in the past (default {DEFAULT_BACKFILL})")
    parser.add_argument("--max-waiting", type=int, default=DEFAULT_MAX_WAITING,
                        help="pass new referrals over while this many wait (default "
                             f"{DEFAULT_MAX_WAITING})")
    parser.add_argument("--min-waiting", type=int, default=DEFAULT_MIN_WAITING,
                        help="bring the next referral forward while fewer wait (default "
                             f"{DEFAULT_MIN_WAITING})")
    parser.add_argument("--backlog-only", action="store_true",
                        help="enter the backfill's referrals and stop")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _s, _f: stop.set())
    fed = feed(settings.database_conninfo(), seed=args.seed, per_hour=args.per_hour,
               backfill=parse_duration(args.backfill), max_waiting=args.max_waiting,
               min_waiting=args.min_waiting, stop=stop, backlog_only=args.backlog_only)
    print(f"vward demo-referrals: {fed.entered} referral(s) entered, "  # noqa: T201
          f"{fed.passed_over} passed over", flush=True)
    return 0
