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
