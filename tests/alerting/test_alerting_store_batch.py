"""The evaluator's one-round-trip load equals the separate loads; scored patients are
announced in chunks that fit a NOTIFY (issue 14)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg
from hypothesis import given
from hypothesis import strategies as st

from alerting import store
from alerting.actions import acknowledge, resolve
from alerting.policy import Policy
from alerting.runner import evaluate_after_commit
from ward.db import channels

T0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)
NORMAL = {"spo2": 97, "pulse": 70, "resp_rate": 16, "temperature": 36.8, "systolic_bp": 125,
          "on_oxygen": 0, "consciousness": 0}
SICK = {**NORMAL, "spo2": 90, "pulse": 125, "resp_rate": 26}


@given(st.lists(st.integers(min_value=1, max_value=2**62), unique=True, max_size=3000),
       st.integers(min_value=30, max_value=6000))
def test_patient_chunks_keep_every_id_once_in_order_and_under_the_limit(
        ids: list[int], max_bytes: int) -> None:
    chunks = channels.patient_chunks(ids, max_bytes)
    assert [pid for chunk in chunks for pid in chunk] == ids
    assert all(chunks)
    for chunk in chunks:
        assert len(chunk) == 1 or len(json.dumps(chunk, separators=(",", ":"))) <= max_bytes + 1


def test_load_batch_is_the_separate_loads_in_one_round_trip(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any, readings: Any,
        write_readings: Any) -> None:
    sick, well, empty = add_patients(db, 3, T0 - dt.timedelta(days=1))
    for minutes in (20, 10, 0):
        write_readings(db, readings(sick, T0 - dt.timedelta(minutes=minutes), **SICK))
        write_readings(db, readings(well, T0 - dt.timedelta(minutes=minutes), **NORMAL))
    evaluate_after_commit(db, [sick, well, empty], T0, policy=policy)  # an open episode
    ids = [sick, well, empty]
    with db.transaction():
        snapshots, current = store.load_batch(db, ids, T0 + dt.timedelta(minutes=1))
    with db.transaction():
        assert snapshots == store.load_snapshots(db, ids, T0 + dt.timedelta(minutes=1))
        assert current == store.open_episodes(db, ids)
    db.commit()
    # the sick patient's episode, and the never-observed one's (missing is never normal)
    assert set(current) == {sick, empty}
    assert {f.kind.value for f in current[sick].findings} >= {"news2"}
    assert snapshots[sick].latest["pulse"].value == 125


def test_a_pass_announces_its_scored_patients_in_one_notification(
        db: psycopg.Connection[Any], db_url: str, policy: Policy, add_patients: Any,
        readings: Any, write_readings: Any) -> None:
    ids = add_patients(db, 40, T0 - dt.timedelta(days=1))
    for pid in ids:
        write_readings(db, readings(pid, T0, **NORMAL))
    with psycopg.connect(db_url, autocommit=True) as listener:
        channels.listen(listener, channels.EVENTS)
        evaluate_after_commit(db, ids, T0 + dt.timedelta(seconds=5), policy=policy)
        scores = []
        for note in listener.notifies(timeout=2):
            payload = json.loads(note.payload)
            if payload.get("type") == "score":
                scores.append(payload)
                break
    assert scores == [{"type": "score", "patient_ids": sorted(ids)}]


def test_the_episode_cache_returns_what_a_full_load_does_and_follows_every_write(
        db: psycopg.Connection[Any], db_url: str, policy: Policy, add_patients: Any,
        readings: Any, write_readings: Any) -> None:
    """The evaluator's EpisodeCache (issue 14): an episode is decoded again only when its row
    changed — by this evaluator, another process, or a person acknowledging it."""
    sick, other, well = add_patients(db, 3, T0 - dt.timedelta(days=1))
    cache = store.EpisodeCache()
    write_readings(db, [r for pid in (sick, other) for r in readings(pid, T0, **SICK)]
                   + readings(well, T0, **NORMAL))
    ids = [sick, other, well]
    evaluate_after_commit(db, ids, T0, policy=policy, cache=cache)

    def both(at: dt.datetime) -> tuple[dict[int, Any], dict[int, Any]]:
        with db.transaction():
            _, cached = store.load_batch(db, ids, at, cache)
        with db.transaction():
            _, full = store.load_batch(db, ids, at)
        return cached, full

    cached, full = both(T0)
    assert cached == full
    assert set(full) == {sick, other}
    assert (cache.hits, cache.misses) == (0, 2)  # written by the pass: loaded again
    cached, full = both(T0)
    assert cached == full
    assert (cache.hits, cache.misses) == (2, 2)  # unchanged rows: not decoded again
    # A nurse acknowledges one episode on another connection: the cache follows at once.
    with psycopg.connect(db_url) as hub:
        acknowledge(hub, full[sick].id, by="nurse", now=T0 + dt.timedelta(minutes=1))
        hub.commit()
    cached, full = both(T0 + dt.timedelta(minutes=1))
    assert cached[sick].state.value == "acknowledged"
    assert cached == full
    assert (cache.hits, cache.misses) == (3, 3)
    # A pass that rolls back leaves the rows and the entries loaded from them as they were.
    try:
        with db.transaction():
            evaluate_after_commit(db, ids, T0 + dt.timedelta(minutes=40), policy=policy,
                                  cache=cache)
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    cached, full = both(T0 + dt.timedelta(minutes=2))
    assert cached == full
    # A resolved episode leaves the cache; new trouble is a new episode, loaded afresh.
    with psycopg.connect(db_url) as hub:
        resolve(hub, full[other].id, by="nurse", reason="seen", now=T0 + dt.timedelta(minutes=3))
        hub.commit()
    cached, full = both(T0 + dt.timedelta(minutes=3))
    assert set(cached) == set(full) == {sick}
    assert cached == full
    assert len(cache) == 1


def test_recent_readings_come_oldest_first_in_evidence_order_each_once(
        db: psycopg.Connection[Any], add_patients: Any, readings: Any,
        write_readings: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    # Two devices at the same instants, ids that a linguistic collation orders differently
    # from Python (case, punctuation); old readings (the last few of a code) and recent ones.
    for device in ("b-dev", "B_dev", "a-dev"):
        for minutes in (300, 200, 100, 30, 20, 10, 0):
            write_readings(db, readings(pid, T0 - dt.timedelta(minutes=minutes), device=device,
                                        spo2=95 + minutes % 3, pulse=70))
    recent = store.load_recent(db, [pid], T0)[pid]
    db.commit()
    for code, got in recent.items():
        assert list(got) == sorted(set(got)), code
    assert {e.device_id for e in recent["spo2"]} == {"b-dev-1", "B_dev-1", "a-dev-1"}
