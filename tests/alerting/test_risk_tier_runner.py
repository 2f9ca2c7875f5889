"""The alerting scheduler's sweep computes the risk tier and records a change in the patient's
episode (low severity, never paged); the evaluation of fresh readings does not (it cost every
evaluated pass ~0.1 s, issue 14): the tier follows on the next sweep (real PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg
import pytest

from alerting import risk_store, scheduler
from alerting.policy import Policy
from alerting.runner import assess_tiers, evaluate_after_commit
from ward.db import alerting_queue
from ward.db import migrate as migrate_mod
from ward.db.migrate import load_migrations, migrate
from ward.domain.risk_factors import Acuity, Comorbidity, RiskFactors
from ward.hub.risk import save_factors

T0 = dt.datetime(2026, 1, 14, 12, 0, tzinfo=dt.UTC)  # a Wednesday, in hub hours
NORMAL = {"spo2": 97, "pulse": 64, "resp_rate": 15, "temperature": 36.7, "systolic_bp": 125,
          "on_oxygen": 0, "consciousness": 0}
# NEWS2 5 (medium): respiration 22 (2), pulse 112 (2), temperature 38.5 (1).
MEDIUM = {**NORMAL, "resp_rate": 22, "pulse": 112, "temperature": 38.5}
# LACE 15: 8 days (5), emergent (3), heart failure + COPD (Charlson 4: 5), 2 ED visits (2).
FACTS = RiskFactors(admissions_6_months=1, admissions_12_months=3, index_stay_days=8,
                    acuity=Acuity.EMERGENT, comorbidities=frozenset({
                        Comorbidity.CONGESTIVE_HEART_FAILURE,
                        Comorbidity.CHRONIC_PULMONARY_DISEASE}), ed_visits_6_months=2)


def add_score(db: psycopg.Connection[Any], pid: int, at: dt.datetime, total: int,
              risk: str = "low") -> None:
    db.execute(
        "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, complete, "
        "spo2_scale, sub_scores, missing, evidence) VALUES (%s, %s, %s, %s, false, true, 1, "
        "%s, '{}', '[]')", (pid, at, total, risk, json.dumps({})))


def findings(db: psycopg.Connection[Any], pid: int) -> dict[str, tuple[Any, ...]]:
    return {kind: tuple(rest) for kind, *rest in db.execute(
        "SELECT f.kind, f.severity, f.inhibited, f.cleared_at, f.details FROM alert_findings f "
        "JOIN alerts a ON a.id = f.alert_id WHERE a.patient_id = %s", (pid,))}


def test_a_rise_with_the_readings_is_a_finding_of_the_news2_episode_that_pages_nobody(
        db: psycopg.Connection[Any], policy: Policy, write_readings: Any, add_patients: Any,
        readings: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(hours=2))  # step-up: 1 point
    write_readings(db, readings(pid, T0, **NORMAL))
    assert evaluate_after_commit(db, [pid], T0, policy=policy) == []
    assert risk_store.stored(db, [pid]) == {}  # evaluating readings assesses no tier
    scheduler.sweep(db, policy, T0)
    # The first assessment is stored (low), in the history without an episode.
    assert risk_store.stored(db, [pid])[pid].tier.value == "low"
    assert db.execute("SELECT from_tier, to_tier, alert_id FROM risk_tier_changes "
                      "WHERE patient_id = %s", (pid,)).fetchall() == [(None, "low", None)]

    later = T0 + dt.timedelta(minutes=10)
    write_readings(db, readings(pid, later, **MEDIUM))
    (change,) = evaluate_after_commit(db, [pid], later, policy=policy)
    assert change.kind == "news2"
    assert change.events[0] == "raised"
    assert "risk_tier_changed" not in change.events  # the sweep's, not the evaluation's
    assert set(findings(db, pid)) == {"news2"}
    # NEWS2 5 now (3) + step-up (1) + one of the two hourly sets it asks for missed (2): high,
    # recorded by the next sweep in the NEWS2 episode it joins.
    swept = later + dt.timedelta(seconds=15)
    scheduler.sweep(db, policy, swept)
    found = findings(db, pid)
    assert set(found) == {"news2", "risk_tier"}
    severity, inhibited, cleared_at, details = found["risk_tier"]
    assert (severity, inhibited, cleared_at) == ("low", False, None)
    assert details["tier"] == "high"
    assert [c["factor"] for c in details["contributions"]][:1] == ["news2_now"]
    assert not found["news2"][1]  # the NEWS2 finding is not inhibited by the tier
    (alert_id, kind, sev) = db.execute(
        "SELECT id, kind, severity FROM alerts WHERE patient_id = %s", (pid,)).fetchone() or ()
    assert (kind, sev) == ("news2", "medium")
    events = db.execute("SELECT event, detail->>'page' FROM alert_events WHERE alert_id = %s "
                        "ORDER BY id", (alert_id,)).fetchall()
    assert ("risk_tier_changed", "false") in events
    assert ("finding_raised", "false") in events
    # Only the NEWS2 raise went to a tier's contacts; the tier's events are records only.
    targeted = {e for (e,) in db.execute(
        "SELECT DISTINCT payload->>'event' FROM notification_outbox WHERE alert_id = %s "
        "AND payload->>'target' IS NOT NULL", (alert_id,))}
    assert targeted == {"raised"}
    assert db.execute("SELECT from_tier, to_tier, alert_id FROM risk_tier_changes "
                      "WHERE patient_id = %s ORDER BY id DESC LIMIT 1", (pid,)).fetchone() == (
        "low", "high", alert_id)
    stored = risk_store.stored(db, [pid])[pid]
    assert (stored.tier.value, stored.assessed_at, stored.since) == ("high", swept, swept)


def test_the_sweep_records_a_rise_from_missed_sets_without_a_reading(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(hours=40))
    # NEWS2 3 every 4 h (the 4-hourly plan of a low total) until 12 h ago, then nothing.
    for hours_ago in range(36, 11, -4):
        add_score(db, pid, T0 - dt.timedelta(hours=hours_ago), 3)
    db.commit()
    scheduler.sweep(db, policy, T0 - dt.timedelta(hours=12))
    # NEWS2 3 (1) + step-up (1), every set done: low.
    assert risk_store.stored(db, [pid])[pid].tier.value == "low"
    assert "risk_tier" not in findings(db, pid)
    # No reading since; by now half of the day's sets are missing (+2): rising, found by the
    # sweep alone, in the episode the overdue sets opened.
    scheduler.sweep(db, policy, T0)
    found = findings(db, pid)
    assert found["risk_tier"][:3] == ("low", False, None)
    by_factor = {c["factor"]: c for c in found["risk_tier"][3]["contributions"]}
    assert by_factor["completeness"]["points"] == 2
    assert not found["observations_overdue"][1]  # "no data" is never silenced by the tier
    assert risk_store.stored(db, [pid])[pid].tier.value == "rising"


def test_a_rise_alone_opens_a_quiet_episode_that_never_escalates(
        db: psycopg.Connection[Any], policy: Policy, write_readings: Any, add_patients: Any,
        readings: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(hours=2))
    write_readings(db, readings(pid, T0, **NORMAL))
    evaluate_after_commit(db, [pid], T0, policy=policy)
    scheduler.sweep(db, policy, T0)  # low: step-up (1)
    # A manager enters the readmission facts: LACE 15 (+2); the next sweep assesses them.
    save_factors(db, pid, FACTS, now=T0 + dt.timedelta(minutes=5), by="manager")
    db.commit()
    assert alerting_queue.depth(db) == 1
    evaluate_after_commit(db, [pid], T0 + dt.timedelta(minutes=6), policy=policy)
    assert db.execute("SELECT count(*) FROM alerts WHERE patient_id = %s",
                      (pid,)).fetchone() == (0,)
    scheduler.sweep(db, policy, T0 + dt.timedelta(minutes=6))
    row = db.execute("SELECT id, kind, severity, state, next_escalation_at FROM alerts "
                     "WHERE patient_id = %s", (pid,)).fetchone()
    assert row is not None
    alert_id = row[0]
    assert row[1:] == ("risk_tier", "low", "raised", None)  # no timer: nothing escalates
    assert risk_store.stored(db, [pid])[pid].tier.value == "rising"
    # Hours later, unacknowledged: never escalated, never sent to a tier's contacts.
    scheduler.sweep(db, policy, T0 + dt.timedelta(hours=5))
    assert db.execute("SELECT count(*) FROM alert_events WHERE alert_id = %s "
                      "AND event = 'escalated'", (alert_id,)).fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM notification_outbox WHERE alert_id = %s "
                      "AND payload->>'target' IS NOT NULL", (alert_id,)).fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM notification_outbox WHERE alert_id = %s",
                      (alert_id,)).fetchone() != (0,)  # recorded for MQTT and the dashboard


def test_a_tier_is_not_reassessed_until_due(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(hours=2))
    add_score(db, pid, T0 - dt.timedelta(hours=1), 2)
    db.commit()
    scheduler.sweep(db, policy, T0)
    first = risk_store.stored(db, [pid])[pid].assessed_at
    scheduler.sweep(db, policy, T0 + dt.timedelta(minutes=1))
    assert risk_store.stored(db, [pid])[pid].assessed_at == first  # nothing moved
    add_score(db, pid, T0 + dt.timedelta(minutes=1), 4)  # a different NEWS2 total: due now
    db.commit()
    scheduler.sweep(db, policy, T0 + dt.timedelta(minutes=2))
    assert risk_store.stored(db, [pid])[pid].assessed_at == T0 + dt.timedelta(minutes=2)
    scheduler.sweep(db, policy, T0 + risk_store.REASSESS + dt.timedelta(minutes=2))
    assert risk_store.stored(db, [pid])[pid].assessed_at == (
        T0 + risk_store.REASSESS + dt.timedelta(minutes=2))


def test_at_most_a_capped_number_per_call_and_the_rest_stay_due(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(risk_store, "MAX_PER_CALL", 2)
    ids = add_patients(db, 3, T0 - dt.timedelta(hours=2))
    for pid in ids:
        add_score(db, pid, T0 - dt.timedelta(hours=1), 2)
    db.commit()
    with db.transaction():
        assess_tiers(db, ids, T0, policy=policy)
    assert sorted(risk_store.stored(db, ids)) == ids[:2]
    with db.transaction():
        assess_tiers(db, ids, T0 + dt.timedelta(seconds=15), policy=policy)
    assert sorted(risk_store.stored(db, ids)) == ids


def test_a_fall_with_no_episode_is_kept_in_the_history_only(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(hours=2))
    add_score(db, pid, T0 - dt.timedelta(hours=1), 7, "high")
    db.commit()
    with db.transaction():
        assess_tiers(db, [pid], T0, policy=policy)  # high (first: opens nothing)
    add_score(db, pid, T0 + dt.timedelta(minutes=1), 1)
    db.commit()
    with db.transaction():
        assess_tiers(db, [pid], T0 + dt.timedelta(minutes=2), policy=policy)
    assert db.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    assert db.execute("SELECT from_tier, to_tier, alert_id FROM risk_tier_changes "
                      "WHERE patient_id = %s ORDER BY id", (pid,)).fetchall() == [
        (None, "high", None), ("high", "low", None)]


def test_migration_starts_the_runner_from_the_last_tier_the_hub_recorded(
        empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    every = load_migrations()
    monkeypatch.setattr(migrate_mod, "load_migrations",
                        lambda: [m for m in every if m.version < 250])
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        migrate(conn)
        pids = [row[0] for row in conn.execute(
            "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth) "
            "VALUES ('9000000001', 'A', 'B', '1950-01-01'), ('9000000002', 'C', 'D', "
            "'1950-01-01') RETURNING id")]
        conn.execute(
            "INSERT INTO admissions (patient_id, pathway, source, status, referred_at, "
            "admitted_at) SELECT id, 'step_up', 'gp', 'admitted', %s, %s "
            "FROM unnest(%s::bigint[]) AS id", (T0, T0, pids))
        for pid, tier, hours in ((pids[0], "rising", 1), (pids[0], "high", 2),
                                 (pids[1], "low", -1)):  # the second's is from before admission
            conn.execute(
                "INSERT INTO risk_tier_changes (patient_id, to_tier, points, evidence, "
                "changed_at) VALUES (%s, %s, 3, '[]', %s)",
                (pid, tier, T0 + dt.timedelta(hours=hours)))
        monkeypatch.setattr(migrate_mod, "load_migrations", lambda: every)
        migrate(conn)
        assert conn.execute("SELECT patient_id, tier, news2_total, since FROM risk_tiers"
                            ).fetchall() == [(pids[0], "high", None, T0 + dt.timedelta(hours=2))]
        cols = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'risk_tier_changes' AND table_schema = current_schema()")}
        assert "alert_id" in cols
        assert not cols & {"severity", "paged"}


def test_a_sweep_assesses_at_most_the_cap_whatever_its_chunks(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The cap is per sweep, not per chunk (1,000 new admissions were assessed in one sweep,
    100 per chunk, each chunk holding its patients' locks; fails on the old sweep)."""
    monkeypatch.setattr(risk_store, "MAX_PER_CALL", 2)
    monkeypatch.setattr(scheduler, "SWEEP_CHUNK", 2)
    ids = add_patients(db, 6, T0 - dt.timedelta(hours=2))
    for pid in ids:
        add_score(db, pid, T0 - dt.timedelta(hours=1), 2)
    db.commit()
    scheduler.sweep(db, policy, T0)
    assert sorted(risk_store.stored(db, ids)) == ids[:2]


def test_every_tier_is_at_most_reassess_stale_with_the_ward_at_the_cap_s_bound(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The tier's guarantee (risk_store.REASSESS, 5 min) with a capped sweep every 15 s: the
    largest ward the cap serves, MAX_PER_CALL x (REASSESS - DUE_AFTER) / 15 s patients (here
    the cap is 2, so 20), whose NEWS2 totals move on every sweep (a moved input must not
    starve the stalest)."""
    monkeypatch.setattr(risk_store, "MAX_PER_CALL", 2)
    every = dt.timedelta(seconds=15)
    n = int(2 * ((risk_store.REASSESS - risk_store.DUE_AFTER) / every))
    ids = add_patients(db, n, T0 - dt.timedelta(hours=2))
    db.commit()
    worst = dt.timedelta(0)
    for i in range(int(dt.timedelta(minutes=12) / every)):
        now = T0 + i * every
        for pid in ids[:4]:  # these keep moving
            add_score(db, pid, now - dt.timedelta(seconds=1), i % 3)
        db.commit()
        tiers = risk_store.stored(db, ids)  # what the hub shows until this sweep
        if len(tiers) == n:
            worst = max(worst, *(now - t.assessed_at for t in tiers.values()))
        scheduler.sweep(db, policy, now)
    assert dt.timedelta(0) < worst <= risk_store.REASSESS
