"""The evaluator's kept state (store.EpisodeCache with its SeriesCache: readings windows
loaded only from their newest reading on) gives the answers a fresh process gives, whatever
other connections change between passes (issue 14)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from alerting import care_plan_store, store
from alerting.policy import Policy
from alerting.runner import Change, evaluate_after_commit

T0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
NORMAL = {"spo2": 96, "pulse": 72, "resp_rate": 16, "temperature": 36.8}
FULL = {**NORMAL, "systolic_bp": 125, "on_oxygen": 0, "consciousness": 0}

Outcome = tuple[list[Change], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]


def _stored(db: psycopg.Connection[Any]) -> tuple[list[tuple[Any, ...]], ...]:
    alerts = db.execute(
        "SELECT patient_id, kind, severity, state, summary, details, evidence, partial, "
        "updated_at, next_escalation_at FROM alerts ORDER BY id").fetchall()
    findings = db.execute(
        "SELECT a.patient_id, f.kind, f.severity, f.summary, f.details, f.evidence, f.first_at, "
        "f.last_at, f.clear_since, f.cleared_at, f.inhibited FROM alert_findings f "
        "JOIN alerts a ON a.id = f.alert_id ORDER BY a.id, f.kind").fetchall()
    scores = db.execute("SELECT patient_id, computed_at, total, risk, complete, evidence "
                        "FROM scores ORDER BY 1, 2").fetchall()
    return alerts, findings, scores


def test_the_kept_state_answers_as_a_fresh_process_does(
        db: psycopg.Connection[Any], db_url: str, policy: Policy, add_patients: Any,
        readings: Any, write_readings: Any) -> None:
    wearer, spot, leaving = add_patients(db, 3, T0 - dt.timedelta(days=1))
    ids = [wearer, spot, leaving]
    # An hour of one-a-minute readings (wearer, leaving); a spot patient's two full sets.
    for m in range(60, 0, -1):
        at = T0 - m * MIN
        for pid in (wearer, leaving):
            write_readings(db, readings(pid, at, **{**NORMAL, "spo2": 95 + m % 3}))
    for at in (T0 - dt.timedelta(hours=5), T0 - dt.timedelta(minutes=50)):
        write_readings(db, readings(spot, at, **FULL))
    cache = store.EpisodeCache()

    steps: list[tuple[str, Outcome, Outcome]] = []

    def compare(name: str, at: dt.datetime) -> None:
        with db.transaction():
            kept, _ = store.load_batch(db, ids, at, cache)
        with db.transaction():
            cold, _ = store.load_batch(db, ids, at)
        assert kept == cold, name
        try:
            with db.transaction():
                incremental = (_plain(evaluate_after_commit(db, ids, at, policy=policy,
                                                            cache=cache)), *_stored(db))
                raise _RollBack
        except _RollBack:
            pass
        fresh = (_plain(evaluate_after_commit(db, ids, at, policy=policy)), *_stored(db))
        db.commit()
        assert incremental == fresh, name
        steps.append((name, incremental, fresh))

    compare("first pass", T0)
    reloaded = cache.series.reloaded
    write_readings(db, readings(wearer, T0 + MIN, spo2=93, pulse=80))
    compare("new readings", T0 + MIN)
    assert cache.series.incremental > 0
    assert cache.series.reloaded == reloaded  # in order: only the new rows were loaded
    # A late reading, older than the newest held, from another connection (store-and-forward).
    with psycopg.connect(db_url) as other:
        write_readings(other, readings(wearer, T0 - 20 * MIN, device="late", spo2=85, pulse=130))
    compare("late reading", T0 + 2 * MIN)
    assert cache.series.reloaded > reloaded
    reloaded = cache.series.reloaded
    # A second device's reading at the very instant of the newest held one.
    with psycopg.connect(db_url) as other:
        write_readings(other, readings(wearer, T0 + MIN, device="twin", spo2=99))
    compare("same instant", T0 + 3 * MIN)
    assert cache.series.reloaded > reloaded
    # A care-plan change on another connection: a threshold the wearer's pulse now breaches.
    with psycopg.connect(db_url) as other:
        care_plan_store.set_threshold(other, wearer, parameter="pulse", low=None, high=75,
                                      by="dr", reason="rate control", now=T0 + 3 * MIN)
        care_plan_store.set_spo2_scale(other, spot, scale=2, target_low=88, target_high=92,
                                       by="dr", reason="COPD", now=T0 + 3 * MIN)
        other.commit()
    write_readings(db, readings(wearer, T0 + 4 * MIN, pulse=81, spo2=94))
    compare("care plan", T0 + 4 * MIN)
    # Discharged on another connection: not kept any more.
    with psycopg.connect(db_url) as other:
        other.execute("UPDATE admissions SET status = 'discharged', discharged_at = %s, "
                      "outcome = 'usual_residence' WHERE patient_id = %s",
                      (T0 + 5 * MIN, leaving))
        other.commit()
    compare("discharge", T0 + 5 * MIN)
    assert leaving not in cache.series
    # Time moves on: the windows slide (old rows leave them), readings keep coming.
    for m in (40, 41, 70, 75):
        write_readings(db, readings(wearer, T0 + m * MIN, **NORMAL))
        compare(f"minute {m}", T0 + m * MIN)
    # Long quiet (the ward's clock only): the held windows are not reused, the answers agree.
    compare("much later", T0 + 75 * MIN + store.CACHE_IDLE + 2 * MIN)
    # A pass of other patients after CACHE_IDLE: what these patients held is dropped.
    cache.used([], T0 + 90 * MIN + store.CACHE_IDLE + 2 * MIN)
    assert len(cache) == len(cache.series) == 0
    assert wearer not in cache.series
    assert any(c for _, (c, *_), _ in steps)  # the sequence did raise and change episodes
    kinds = {row[1] for _, (_, _, findings, _), _ in steps for row in findings}
    assert "threshold" in kinds


class _RollBack(Exception):
    pass


def _plain(changes: list[Change]) -> list[tuple[Any, ...]]:
    return [(c.patient_id, c.kind, c.state, c.severity, c.events) for c in changes]


def test_the_score_history_loaded_is_what_the_rules_read_of_the_whole_day(
        db: psycopg.Connection[Any], add_patients: Any) -> None:
    """The store loads the newest score and the newest complete one of the 24 h up to `now`
    (not the whole day): the band (`due.last_complete`) and the store-or-not decision (the
    last point) come out as from every stored score, at the window's edges too."""
    from alerting import due
    from alerting.news2 import Risk

    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=3))
    hour = dt.timedelta(hours=1)
    stored = [  # (offset from T0, total, complete)
        (-30 * hour, 9, True), (-24 * hour, 6, True), (-10 * hour, 5, True),
        (-3 * hour, 1, False), (-hour, 2, True), (-0.5 * hour, 0, False),
        (10 * MIN, 7, True), (2 * hour, 3, False)]
    store.insert_scores(db, [{
        "patient_id": pid, "computed_at": (T0 + off).isoformat(), "total": total,
        "risk": (Risk.MEDIUM if total >= 5 else Risk.LOW).value, "any_single_3": False,
        "complete": complete, "spo2_scale": 1, "sub_scores": {},
        "missing": [] if complete else ["resp_rate"], "evidence": []}
        for off, total, complete in stored])
    db.commit()
    every = [(at, total, Risk(risk), complete) for at, total, risk, complete in db.execute(
        "SELECT computed_at, total, risk, complete FROM scores WHERE patient_id = %s "
        "ORDER BY computed_at", (pid,)).fetchall()]
    for off in (-31 * hour, -24 * hour, -10 * hour - MIN, -10 * hour, -2 * hour, -hour,
                dt.timedelta(0), 10 * MIN, hour, 3 * hour, 14 * hour, 25 * hour, 40 * hour):
        now = T0 + off
        with db.transaction():
            history = store.load_snapshots(db, [pid], now)[pid].score_history
        assert len(history) <= 2, off  # the day's scores are not all decoded
        window = [p for p in every if p[0] > now - store.SCORE_HISTORY]
        whole = window if window and window[-1] == every[-1] else [*window, every[-1]]
        loaded = [(p.computed_at, p.total, p.risk, p.complete) for p in history]
        assert due.last_complete(loaded, now) == due.last_complete(whole, now), off
        assert loaded[-1] == whole[-1], off
        assert loaded == sorted(loaded), off
