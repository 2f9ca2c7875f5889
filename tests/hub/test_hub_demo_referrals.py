"""`vward demo-referrals`: the demo's feed enters the seeded referral stream into the triage
queue through the hub's own referral transaction (patient registered, audited, 2-hour clock
for 2-hour referrals only), opens with the backfill's referrals waiting, stays bounded, and
cannot log in as its account."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from typing import Any

import psycopg

from simulators import referrals
from ward.domain.patients import Urgency
from ward.hub import demo_referrals
from ward.hub.auth import authenticate

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
BACKFILL = dt.timedelta(hours=3)


def _expected(seed: int, per_hour: float) -> list[referrals.SimReferral]:
    made = referrals.stream(seed, NOW - BACKFILL, per_hour)
    return list(itertools.takewhile(lambda r: r.at <= NOW, made))


def _feed(db_url: str, *, seed: int, per_hour: float, max_waiting: int
          ) -> demo_referrals.Fed:
    return demo_referrals.feed(db_url, seed=seed, per_hour=per_hour, backfill=BACKFILL,
                               max_waiting=max_waiting, stop=threading.Event(),
                               clock=lambda: NOW, backlog_only=True)


def test_the_backlog_is_entered_as_the_hub_enters_referrals(db_url: str,
                                                            db: psycopg.Connection[Any]) -> None:
    expected = _expected(7, 5.0)
    assert len(expected) >= 8  # about 15 in 3 hours at 5 an hour
    fed = _feed(db_url, seed=7, per_hour=5.0, max_waiting=100)
    assert fed == demo_referrals.Fed(len(expected), 0)
    rows = db.execute(
        "SELECT p.nhs_number, a.source, a.urgency, a.referred_at, a.referral_reason, "
        "a.referrer, a.referred_by, a.referral_observations FROM admissions a "
        "JOIN patients p ON p.id = a.patient_id WHERE a.status = 'referred' "
        "ORDER BY a.referred_at").fetchall()
    assert [(r[0], r[1], r[2], r[3], r[4], r[5], r[7]) for r in rows] == [
        (e.nhs_number, e.source.value, e.urgency.value, e.at, e.reason, e.referrer,
         dict(e.observations)) for e in expected]
    assert {r[6] for r in rows} == {demo_referrals.FEED_USER}
    clocks = db.execute("SELECT count(*) FROM tasks WHERE kind = 'urgent_response'").fetchone()
    assert clocks == (sum(e.urgency is Urgency.TWO_HOUR for e in expected),)
    audited = db.execute("SELECT count(*) FROM audit_log WHERE actor = %s AND action = 'refer'",
                         (demo_referrals.FEED_USER,)).fetchone()
    assert audited == (len(expected),)
    # The account exists for the audit trail only.
    assert authenticate(db, demo_referrals.FEED_USER, "") is None
    assert db.execute("SELECT active FROM users WHERE username = %s",
                      (demo_referrals.FEED_USER,)).fetchone() == (False,)
    # Run again on the same database: every one of these patients is already waiting.
    again = _feed(db_url, seed=7, per_hour=5.0, max_waiting=100)
    assert again == demo_referrals.Fed(0, len(expected))


def test_the_queue_stays_bounded(db_url: str, db: psycopg.Connection[Any]) -> None:
    expected = _expected(3, 6.0)
    fed = _feed(db_url, seed=3, per_hour=6.0, max_waiting=4)
    assert fed == demo_referrals.Fed(4, len(expected) - 4)
    assert db.execute("SELECT count(*) FROM admissions WHERE status = 'referred'"
                      ).fetchone() == (4,)


def test_the_queue_never_runs_dry(db_url: str, db: psycopg.Connection[Any]) -> None:
    """A quiet spell (here: a one-minute backfill, so hardly any referral is due yet) does not
    leave the screen empty: referrals are brought forward to now up to the floor."""
    fed = demo_referrals.feed(db_url, seed=11, per_hour=4.0, backfill=dt.timedelta(minutes=1),
                              max_waiting=10, min_waiting=3, stop=threading.Event(),
                              clock=lambda: NOW, backlog_only=True)
    assert fed.entered == 3
    assert db.execute("SELECT count(*), max(referred_at) FROM admissions "
                      "WHERE status = 'referred'").fetchone() == (3, NOW)
