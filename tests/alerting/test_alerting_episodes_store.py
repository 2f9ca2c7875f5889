"""Episodes, findings, baselines and doubtful readings on the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from alerting import store, trend
from alerting.artefacts import Doubt
from alerting.policy import Policy
from alerting.runner import evaluate_after_commit
from ward.db import channels
from ward.db import migrate as migrate_mod
from ward.db.migrate import load_migrations, migrate
from ward.hub.routers.alerts import load_alert

T0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)
NORMAL = {"spo2": 97, "pulse": 64, "resp_rate": 15, "temperature": 36.7, "systolic_bp": 125,
          "on_oxygen": 0, "consciousness": 0}


def test_migration_merges_existing_open_alerts_into_one_episode_per_patient(
        empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    every = load_migrations()
    monkeypatch.setattr(migrate_mod, "load_migrations", lambda: [m for m in every if m.version < 70])
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        migrate(conn)
        (pid,) = conn.execute(
            "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth) "
            "VALUES ('9000000001', 'A', 'B', '1950-01-01') RETURNING id").fetchone() or ()
        for kind, severity in (("spo2_below_target", "low"), ("news2", "high"),
                               ("device_offline", "low")):
            conn.execute(
                "INSERT INTO alerts (patient_id, kind, severity, state, summary, raised_at, "
                "updated_at) VALUES (%s, %s, %s, 'raised', %s, %s, %s)",
                (pid, kind, severity, kind, T0, T0))
        monkeypatch.setattr(migrate_mod, "load_migrations", lambda: every)
        migrate(conn)
        open_rows = conn.execute("SELECT id, kind FROM alerts WHERE state <> 'resolved'").fetchall()
        assert [k for _, k in open_rows] == ["news2"]  # the most severe is the episode
        findings = {r[0] for r in conn.execute("SELECT kind FROM alert_findings WHERE alert_id = %s",
                                               (open_rows[0][0],))}
        assert findings == {"news2", "spo2_below_target", "device_offline"}
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO alerts (patient_id, kind, severity, state, summary, "
                         "raised_at, updated_at) VALUES (%s, 'x', 'low', 'raised', 'x', %s, %s)",
                         (pid, T0, T0))


def test_findings_are_stored_and_listed_by_the_hub_with_their_evidence(
        db: psycopg.Connection[Any], policy: Policy, write_readings: Any, add_patients: Any,
        readings: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    write_readings(db, readings(pid, T0, **{**NORMAL, "spo2": 90, "pulse": 125, "resp_rate": 26}))
    (change,) = evaluate_after_commit(db, [pid], T0, policy=policy)
    detail = load_alert(db, change.alert_id, T0)
    assert detail.kind == "news2"
    assert detail.severity == "high"
    by_kind = {f.kind: f for f in detail.findings}
    assert set(by_kind) == {"news2", "single_parameter_3", "spo2_below_target"}
    assert not by_kind["news2"].inhibited
    assert by_kind["spo2_below_target"].inhibited
    assert {e["code"] for e in by_kind["spo2_below_target"].evidence} == {"spo2"}
    # one page for the episode, none for the inhibited findings
    pages = db.execute("SELECT count(DISTINCT payload->>'event') FROM notification_outbox "
                       "WHERE alert_id = %s", (change.alert_id,)).fetchone()
    assert pages == (1,)
    reloaded = store.open_episodes(db, [pid])[pid]
    assert {f.kind.value for f in reloaded.findings} == set(by_kind)
    db.rollback()


def test_baseline_is_learned_once_and_a_drift_from_it_raises_an_amber_trend(
        db: psycopg.Connection[Any], policy: Policy, write_readings: Any, add_patients: Any,
        readings: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    for hour in range(7):  # the first hours: this patient's normal
        at = T0 + dt.timedelta(hours=hour)
        write_readings(db, readings(pid, at, **{**NORMAL, "pulse": 62 + hour % 3}))
        evaluate_after_commit(db, [pid], at, policy=policy)
    rows = db.execute("SELECT code, n, round(mean::numeric, 1) FROM patient_baselines "
                      "WHERE patient_id = %s ORDER BY code", (pid,)).fetchall()
    assert {r[0] for r in rows} == {"pulse", "resp_rate", "spo2", "temperature"}
    # the baseline is the circadian-adjusted mean (each reading minus its hour's swing)
    usual = statistics.fmean(62 + hour % 3 - trend.circadian_offset(
        "pulse", T0 + dt.timedelta(hours=hour)) for hour in range(7))
    assert {c: float(m) for c, _, m in rows}["pulse"] == pytest.approx(usual, abs=0.05)
    assert db.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    # pulse 90 and temperature 37.9 score 0 on NEWS2, but are far from this patient's normal
    later = T0 + dt.timedelta(hours=8)
    write_readings(db, readings(pid, later, **{**NORMAL, "pulse": 90, "temperature": 37.9}))
    (change,) = evaluate_after_commit(db, [pid], later, policy=policy)
    assert (change.kind, change.severity) == ("trend", "low")
    (details,) = db.execute("SELECT details FROM alert_findings WHERE kind = 'trend'").fetchone() or ()
    assert {c["code"] for c in details["charted"]} == {"pulse", "resp_rate", "spo2", "temperature"}
    learned = db.execute("SELECT learned_at FROM patient_baselines WHERE code = 'pulse'").fetchone()
    assert learned is not None
    assert learned[0] < later


def test_a_doubtful_spot_reading_raises_nothing_and_calls_the_hook_and_notifies(
        db: psycopg.Connection[Any], db_url: str, policy: Policy, write_readings: Any,
        add_patients: Any, readings: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    write_readings(db, readings(pid, T0, **NORMAL))
    evaluate_after_commit(db, [pid], T0, policy=policy)
    seen: list[tuple[int, Doubt]] = []

    def hook(_conn: Any, doubts: Sequence[tuple[int, Doubt]], _now: dt.datetime) -> None:
        seen.extend(doubts)

    later = T0 + dt.timedelta(hours=3)
    with psycopg.connect(db_url, autocommit=True) as listener:
        channels.listen(listener, channels.EVENTS)
        write_readings(db, readings(pid, later, spo2=93))  # alone, 4 points down, 2 points
        changes = evaluate_after_commit(db, [pid], later, policy=policy, on_doubt=hook)
        payloads = [json.loads(n.payload) for n in listener.notifies(timeout=2, stop_after=3)]
    assert changes == []
    assert [(p, d.code, d.reading.value) for p, d in seen] == [(pid, "spo2", 93.0)]
    doubt = next(p for p in payloads if p.get("type") == "doubtful_reading")
    assert (doubt["patient_id"], doubt["code"], doubt["value"]) == (pid, "spo2", 93.0)


def test_an_episode_written_again_rewrites_its_changed_findings_only(
        db: psycopg.Connection[Any], policy: Policy, raise_news2: Any) -> None:
    """runner.persist leaves a finding row alone when the finding is the very one the episode
    was loaded with, and writes one that changed (issue 14: every write of an episode used
    to rewrite all its findings)."""
    from dataclasses import replace

    from alerting.lifecycle import Transition
    from alerting.runner import persist

    aid = raise_news2(T0)
    (pid,) = db.execute("SELECT patient_id FROM alerts WHERE id = %s", (aid,)).fetchone() or ()
    db.commit()

    def rows() -> dict[str, tuple[str, str, dt.datetime]]:
        return {k: (x, s, at) for k, x, s, at in db.execute(
            "SELECT kind, xmin::text, summary, last_at FROM alert_findings WHERE alert_id = %s",
            (aid,))}

    before = store.open_episodes(db, [pid])[pid]
    assert len(before.findings) >= 2
    stored = rows()
    later = T0 + dt.timedelta(minutes=1)
    first, *others = before.findings
    changed = replace(first, summary="changed", last_at=later)
    after = replace(before, findings=(changed, *others), updated_at=later)
    persist(db, [Transition(before, after)], policy, later)
    db.commit()
    now = rows()
    kind = first.kind.value
    assert now[kind][0] != stored[kind][0]
    assert now[kind][1:] == ("changed", later)
    for f in others:
        assert now[f.kind.value] == stored[f.kind.value]  # the same xmin: not written
    # An equal copy (not the loaded object) is written: only the loaded one is known stored.
    again = store.open_episodes(db, [pid])[pid]
    copy = replace(again.findings[1], summary="copied")
    persist(db, [Transition(again, replace(again, findings=(again.findings[0], copy, *again.findings[2:]),
                                           updated_at=later))], policy, later)
    db.commit()
    assert rows()[copy.kind.value][1] == "copied"
    assert rows()[kind] == now[kind]
