"""Migration 0240 on data written by the schema before it: the `follow_up_calls` rows become
the worklist's follow-up-call tasks (one per discharge), clocks started for referrals that
were not 2-hour referrals lose their verdict, and the old table is gone."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from ward.db import migrate as migrate_mod
from ward.db.migrate import load_migrations, migrate
from ward.domain.nhs_number import with_check_digit

T = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _one(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _patient(conn: psycopg.Connection[Any], n: int) -> int:
    nhs = next(x for x in (with_check_digit(f"{999_100_000 + n * 10 + i:09d}")
                           for i in range(10)) if x)
    return int(_one(conn, "INSERT INTO patients (nhs_number, given_name, family_name, "
                          "date_of_birth) VALUES (%s, 'P', %s, '1940-01-01') RETURNING id",
                    (nhs, f"P{n}")))


def _discharged(conn: psycopg.Connection[Any], pid: int, out: dt.datetime) -> int:
    return int(_one(conn, "INSERT INTO admissions (patient_id, pathway, source, status, "
                          "referred_at, decided_at, admitted_at, discharged_at, outcome) "
                          "VALUES (%s, 'step_up', 'gp', 'discharged', %s, %s, %s, %s, "
                          "'usual_residence') RETURNING id",
                    (pid, out - 3 * DAY, out - 3 * DAY, out - 3 * DAY, out)))


def _call(conn: psycopg.Connection[Any], pid: int, aid: int, out: dt.datetime, status: str,
          note: str | None = None) -> None:
    done = None if status == "due" else out + DAY
    conn.execute("INSERT INTO follow_up_calls (patient_id, admission_id, due_at, status, "
                 "created_at, done_at, done_by, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                 (pid, aid, out + DAY, status, out, done, None if done is None else "nurse",
                  note))


def _task(conn: psycopg.Connection[Any], kind: str, pid: int, created: dt.datetime,
          due: dt.datetime, *, outcome: str | None = None, met: bool | None = None) -> int:
    closed = None if outcome is None else created + dt.timedelta(hours=1)
    return int(_one(conn, "INSERT INTO tasks (kind, patient_id, reason, detail, due_at, "
                          "priority, created_by, created_at, status, closed_at, outcome, met) "
                          "VALUES (%s, %s, 'r', 'd', %s, 3, 'ward', %s, %s, %s, %s, %s) "
                          "RETURNING id", (kind, pid, due, created,
                                           "open" if outcome is None else "done", closed,
                                           outcome, met)))


def test_follow_up_calls_become_worklist_tasks(empty_db_url: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    every = load_migrations()
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        monkeypatch.setattr(migrate_mod, "load_migrations",
                            lambda: [m for m in every if m.version < 240])
        migrate(conn)
        with conn.transaction():
            p = [_patient(conn, n) for n in range(7)]
            # 0: recorded done on the old screen; the worklist's own task still open.
            a0 = _discharged(conn, p[0], T)
            _call(conn, p[0], a0, T, "done", "well")
            t0 = _task(conn, "follow_up_call", p[0], T, T + 2 * DAY)
            # 1: still due, no task (discharged before the worklist existed).
            a1 = _discharged(conn, p[1], T + DAY)
            _call(conn, p[1], a1, T + DAY, "due")
            # 2: not reached, no task.
            a2 = _discharged(conn, p[2], T)
            _call(conn, p[2], a2, T, "not_reached", "no answer")
            # 3: still due, but the patient is back on the ward since.
            a3 = _discharged(conn, p[3], T)
            _call(conn, p[3], a3, T, "due")
            conn.execute("INSERT INTO admissions (patient_id, pathway, source, status, "
                         "referred_at, decided_at, admitted_at) VALUES (%s, 'step_up', 'gp', "
                         "'admitted', %s, %s, %s)", (p[3], T + DAY, T + DAY, T + DAY))
            # 4: a call completed on the worklist with free text.
            a4 = _discharged(conn, p[4], T)
            t4 = _task(conn, "follow_up_call", p[4], T, T + 2 * DAY, outcome="spoke to wife")
            # 5, 6: clocks of a same-day (met recorded) and of a 2-hour referral.
            clocks = {}
            for i, urgency in ((5, "same_day"), (6, "two_hour")):
                aid = int(_one(conn, "INSERT INTO admissions (patient_id, pathway, source, "
                                     "status, referred_at, urgency) VALUES (%s, 'step_up', "
                                     "'111', 'referred', %s, %s) RETURNING id",
                               (p[i], T, urgency)))
                clocks[urgency] = (aid, _task(conn, "urgent_response", p[i], T,
                                              T + dt.timedelta(hours=2),
                                              outcome="seen" if i == 5 else None,
                                              met=True if i == 5 else None))
        monkeypatch.setattr(migrate_mod, "load_migrations", lambda: every)
        assert [m.split("_")[0] for m in migrate(conn)] == [
            f"{m.version:04d}" for m in every if m.version >= 240]

        def calls(aid: int) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT status, outcome, closed_by, not_before, due_at FROM tasks "
                "WHERE admission_id = %s AND kind = 'follow_up_call'", (aid,)).fetchall()

        assert calls(a0) == [("done", "reached", "nurse", None, T + 2 * DAY)]
        assert _one(conn, "SELECT note FROM task_events WHERE task_id = %s", (t0,)) == (
            "reached: well")
        assert calls(a1) == [("open", None, None, T + 2 * DAY, T + 3 * DAY)]
        assert calls(a2) == [("done", "not_reached", "nurse", T + DAY, T + 2 * DAY)]
        assert calls(a3) == [("done", "readmitted", "ward", T + DAY, T + 2 * DAY)]
        assert calls(a4)[0][:2] == ("done", "reached")
        assert _one(conn, "SELECT admission_id FROM tasks WHERE id = %s", (t4,)) == a4
        same_day, two_hour = clocks["same_day"], clocks["two_hour"]
        assert conn.execute("SELECT admission_id, status, met FROM tasks WHERE id = %s",
                            (same_day[1],)).fetchone() == (same_day[0], "done", None)
        assert conn.execute("SELECT admission_id, status, met FROM tasks WHERE id = %s",
                            (two_hour[1],)).fetchone() == (two_hour[0], "open", None)
        assert _one(conn, "SELECT to_regclass('follow_up_calls')") is None
        # One follow-up call per discharge, held by the database.
        with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
            conn.execute("INSERT INTO tasks (kind, patient_id, admission_id, reason, due_at, "
                         "created_by, created_at) VALUES ('follow_up_call', %s, %s, 'again', "
                         "%s, 'ward', %s)", (p[4], a4, T + 2 * DAY, T))
