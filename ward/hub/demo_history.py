"""`vward demo-history`: a month of past ward activity, so the report screens of `vward demo`
show something on first look.

The live demo (simulated patients over MQTT) only ever has *today*: no discharges yet, no
28-day readmissions, no acknowledged alerts from last week. This backfills, once per
database, 30 days of synthetic referrals (accepted and declined), stays with discharge
outcomes, a few readmissions, the worklist's 2-hour clocks (of 2-hour referrals, mostly met)
and follow-up calls (mostly made within 2 days), and alerts acknowledged after a while (some
escalated), for patients of their own (NHS numbers from the 999 test range, never real), plus
one care-plan change on a live demo patient so the care-plan history is not empty. A seeded random
generator and the `now` parameter make it reproducible; the `vw_meta` marker makes a second
run a no-op.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import zlib
from typing import Any

import psycopg

from alerting import care_plan_store
from ward.db import worklist
from ward.domain.nhs_number import with_check_digit
from ward.domain.patients import URGENT_RESPONSE, urgent_response_met
from ward.settings import Settings

Conn = psycopg.Connection[Any]
MARKER = "demo_history"
DAYS = 30
PATIENTS = 60
# 999 000 000 + a block no simulator scenario uses for its first numbers (they start at
# crc32(name) % 83 blocks of 12 000; this block is picked the same way from our own name).
_BASE = 999_000_000 + (zlib.crc32(b"vward demo history") % 83) * 12_000
OUTCOMES = (("usual_residence", 0.78), ("conveyed_ed", 0.09), ("admitted_hospital", 0.08),
            ("transferred", 0.03), ("died", 0.02))
SOURCES = ("gp", "ambulance", "111", "urgent_community_response", "ed", "hospital_ward")
SEVERITIES = (("low_medium", 0.45), ("medium", 0.35), ("high", 0.2))
URGENCIES = (("two_hour", 0.35), ("same_day", 0.45), ("next_day", 0.15), ("routine", 0.05))


def _numbers(count: int) -> list[str]:
    out: list[str] = []
    candidate = _BASE
    while len(out) < count:
        number = with_check_digit(f"{candidate:09d}")
        if number is not None:
            out.append(number)
        candidate += 1
    return out


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([k for k, _ in weighted], [w for _, w in weighted])[0]


def _patient(conn: Conn, nhs: str, i: int) -> int:
    row = conn.execute(
        "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (nhs_number) DO UPDATE SET nhs_number = "
        "EXCLUDED.nhs_number RETURNING id",
        (nhs, f"Past{i:02d}", "Demo", dt.date(1930 + i % 50, 1 + i % 12, 1 + i % 28))
    ).fetchone()
    assert row is not None  # noqa: S101 - INSERT … RETURNING always returns its row
    return int(row[0])


def _alerts(conn: Conn, rng: random.Random, pid: int, start: dt.datetime,
            end: dt.datetime) -> None:
    for n in range(rng.choice((0, 1, 1, 2, 3))):
        raised = start + (end - start) * rng.random()
        severity = _pick(rng, SEVERITIES)
        acked = rng.random() < 0.9
        ack_at = raised + dt.timedelta(minutes=rng.lognormvariate(2.3, 0.7)) if acked else None
        row = conn.execute(
            "INSERT INTO alerts (patient_id, kind, severity, state, summary, raised_at, "
            "updated_at, acknowledged_at, acknowledged_by, resolved_at, resolved_by) "
            "VALUES (%s, %s, %s, 'resolved', %s, %s, %s, %s, %s, %s, 'system') RETURNING id",
            (pid, f"demo_history_{n}", severity, f"demo: {severity} alert", raised,
             raised + dt.timedelta(hours=2), ack_at, "nurse" if acked else None,
             raised + dt.timedelta(hours=2))).fetchone()
        assert row is not None  # noqa: S101
        conn.execute("INSERT INTO alert_events (alert_id, at, event, actor) "
                     "VALUES (%s, %s, 'raised', 'system')", (row[0], raised))
        if ack_at is not None and ack_at - raised > dt.timedelta(minutes=15):
            conn.execute("INSERT INTO alert_events (alert_id, at, event, actor) "
                         "VALUES (%s, %s, 'escalated', 'system')",
                         (row[0], raised + dt.timedelta(minutes=15)))
        if ack_at is not None:
            conn.execute("INSERT INTO alert_events (alert_id, at, event, actor) "
                         "VALUES (%s, %s, 'acknowledged', 'nurse')", (row[0], ack_at))


def _one(conn: Conn, query: str, params: tuple[object, ...]) -> int:
    row = conn.execute(query, params).fetchone()
    assert row is not None  # noqa: S101 - INSERT … RETURNING always returns its row
    return int(row[0])


def _urgency(rng: random.Random, pathway: str) -> str:
    """About a third of step-up referrals ask for the 2-hour response; step-downs never."""
    if pathway == "step_down":
        return rng.choice(("same_day", "next_day", "routine"))
    return _pick(rng, URGENCIES)


def _complete(conn: Conn, task_id: int, at: dt.datetime, outcome: str, *,
              met: bool | None = None) -> None:
    conn.execute("UPDATE tasks SET status = 'done', closed_at = %s, closed_by = 'nurse', "
                 "outcome = %s, met = %s WHERE id = %s", (at, outcome, met, task_id))


def _urgent_response(conn: Conn, rng: random.Random, pid: int, aid: int,
                     referred: dt.datetime) -> None:
    """The 2-hour clock of a 2-hour referral, closed seen in time (about 3 in 4) or late."""
    task = worklist.start_urgent_clock(conn, pid, aid, referred)
    if task is None:  # pragma: no cover - one clock per admission, and this one is new
        return
    minutes = rng.uniform(25, 115) if rng.random() < 0.76 else rng.uniform(125, 240)
    seen = referred + dt.timedelta(minutes=minutes)
    _complete(conn, task, seen, "seen at home",
              met=urgent_response_met(referred + URGENT_RESPONSE, seen, seen=True))


def _follow_up_call(conn: Conn, rng: random.Random, pid: int, aid: int, *,
                    discharged: dt.datetime, now: dt.datetime) -> None:
    """The discharge's follow-up call (the worklist task every discharge makes), made on
    day 1 or 2 mostly; a few were not reached or made late; recent ones still due."""
    task = worklist.schedule_follow_up_call(conn, pid, aid, discharged)
    if task is None:  # pragma: no cover - one call per discharge, and this one is new
        return
    roll = rng.random()
    hours = rng.uniform(24, 47) if roll < 0.85 else rng.uniform(49, 72)
    at = discharged + dt.timedelta(hours=hours)
    if at >= now:
        return  # not made yet: it stays on the worklist
    _complete(conn, task, at, "not_reached" if 0.85 <= roll < 0.9 else "reached")


def seed(conn: Conn, *, now: dt.datetime, seed_value: int = 13) -> bool:
    """Backfill once; True when it wrote the history, False when it was already there."""
    conn.execute("LOCK TABLE vw_meta IN SHARE ROW EXCLUSIVE MODE")
    if conn.execute("SELECT 1 FROM vw_meta WHERE key = %s", (MARKER,)).fetchone():
        return False
    rng = random.Random(seed_value)  # noqa: S311 - synthetic demo data, not a secret
    for i, nhs in enumerate(_numbers(PATIENTS)):
        pid = _patient(conn, nhs, i)
        referred = now - dt.timedelta(days=DAYS) + dt.timedelta(days=DAYS - 10) * rng.random()
        decided = referred + dt.timedelta(minutes=rng.lognormvariate(4.2, 0.8))
        source = rng.choice(SOURCES)
        pathway = "step_down" if source == "hospital_ward" else "step_up"
        urgency = _urgency(rng, pathway)
        if rng.random() < 0.12:
            aid = _one(conn,
                "INSERT INTO admissions (patient_id, pathway, source, status, referred_at, "
                "decided_at, decision_reason, urgency) VALUES (%s, %s, %s, 'declined', %s, "
                "%s, %s, %s) RETURNING id",
                (pid, pathway, source, referred, decided, "demo: needs hospital care",
                 urgency))
            if urgency == "two_hour":
                worklist.start_urgent_clock(conn, pid, aid, referred)
                worklist.stop_urgent_clock(conn, aid, decided, "referral declined")
            continue
        stays = 2 if rng.random() < 0.1 else 1
        admitted = decided
        for _ in range(stays):
            discharged = admitted + dt.timedelta(days=rng.uniform(1.5, 9))
            if discharged >= now:
                break
            aid = _one(conn,
                "INSERT INTO admissions (patient_id, pathway, source, status, referred_at, "
                "decided_at, admitted_at, discharged_at, outcome, urgency) "
                "VALUES (%s, %s, %s, 'discharged', %s, %s, %s, %s, %s, %s) RETURNING id",
                (pid, pathway, source, referred, decided, admitted, discharged,
                 _pick(rng, OUTCOMES), urgency))
            if urgency == "two_hour":
                _urgent_response(conn, rng, pid, aid, referred)
            _follow_up_call(conn, rng, pid, aid, discharged=discharged, now=now)
            _alerts(conn, rng, pid, admitted, discharged)
            urgency = _urgency(rng, pathway)
            referred = discharged + dt.timedelta(days=rng.uniform(2, 20))
            decided = admitted = referred + dt.timedelta(hours=1)
            if referred >= now:
                break
    _care_plan_example(conn, now)
    conn.execute("INSERT INTO vw_meta (key, value) VALUES (%s, %s)", (MARKER, now.isoformat()))
    return True


def _care_plan_example(conn: Conn, now: dt.datetime) -> None:
    """Put the first live demo patient with the default plan on a patient-specific pulse
    threshold, as the demo clinician would, so the care-plan history has a row."""
    row = conn.execute(
        "SELECT a.patient_id FROM admissions a LEFT JOIN care_plans c USING (patient_id) "
        "WHERE a.status = 'admitted' AND c.patient_id IS NULL ORDER BY a.patient_id LIMIT 1"
    ).fetchone()
    if row is not None:
        care_plan_store.set_threshold(conn, int(row[0]), parameter="pulse", low=None, high=120.0,
                                by="doctor", reason="demo: known fast AF, rate-controlled",
                                now=now - dt.timedelta(hours=3))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0] if __doc__ else None


def run(args: argparse.Namespace, settings: Settings) -> int:
    with psycopg.connect(settings.database_conninfo()) as conn:
        wrote = seed(conn, now=dt.datetime.now(dt.UTC))
    print("vward demo-history: " + ("a month of demo history written" if wrote  # noqa: T201
                                     else "already there, nothing written"), flush=True)
    return 0
