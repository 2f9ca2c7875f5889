"""A row rebuilt from new latest readings alone (`wardview.refresh_latest`, the ward cache's
readings-only path) is exactly the row a full rebuild gives for the same state: the NEWS2
score, its band and partial marking, stale and missing values, what is due and overdue, and
how long the row may be cached (real PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from ward.db import registry
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.hub import events, wardview
from ward.hub.queries.ward import row_json
from ward.hub.wardcache import WardCache

Conn = psycopg.Connection[Any]
T0 = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=3)  # the refresh: before any T0 reading goes stale
FULL_SET = (("resp_rate", 16), ("spo2", 97), ("on_oxygen", 0), ("systolic_bp", 124),
            ("pulse", 72), ("consciousness", 0), ("temperature", 36.8))


def set_latest(conn: Conn, pid: int, code: str, value: float, at: dt.datetime) -> None:
    conn.execute(
        "INSERT INTO latest_readings (patient_id, code, measured_at, value, unit, device_id) "
        "VALUES (%s, %s, %s, %s, '', 'dev-x') ON CONFLICT (patient_id, code) DO UPDATE "
        "SET measured_at = EXCLUDED.measured_at, value = EXCLUDED.value", (pid, code, at, value))


def _nothing(conn: Conn, pid: int) -> None:
    """Never observed: no score, overdue."""


def _complete(conn: Conn, pid: int) -> None:
    for code, value in FULL_SET:
        set_latest(conn, pid, code, value, T0 - dt.timedelta(minutes=10))


def _complete_but_stale(conn: Conn, pid: int) -> None:
    """Every value older than its staleness window: must never read as a normal score."""
    for code, value in FULL_SET:
        set_latest(conn, pid, code, value, T0 - dt.timedelta(hours=13))


def _stored_score_and_alert(conn: Conn, pid: int) -> None:
    _complete(conn, pid)
    conn.execute(
        "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, complete, "
        "spo2_scale, sub_scores) VALUES (%s, %s, 7, 'high', true, true, 1, '{}')",
        (pid, T0 - dt.timedelta(minutes=9)))
    conn.execute(
        "INSERT INTO alerts (patient_id, kind, severity, state, summary, raised_at, updated_at) "
        "VALUES (%s, 'news2_high', 'high', 'raised', 'NEWS2 7', %s, %s)", (pid, T0, T0))


def _device(conn: Conn, pid: int) -> None:
    _complete(conn, pid)
    device = f"dev-{pid}"
    registry.add_device(conn, Device(device, DeviceKind.PULSE_OXIMETER, "x"))
    registry.assign_device(conn, Assignment(device, pid, T0 - dt.timedelta(hours=1)))
    conn.execute(
        "INSERT INTO device_status (device_id, online, battery_pct, reported_at, updated_at) "
        "VALUES (%s, true, 12, %s, now())", (device, T0 - dt.timedelta(minutes=1)))


def _one_new_normal(conn: Conn, pid: int) -> None:
    set_latest(conn, pid, "pulse", 74, T1 - dt.timedelta(seconds=5))


def _one_new_red(conn: Conn, pid: int) -> None:
    set_latest(conn, pid, "systolic_bp", 85, T1 - dt.timedelta(seconds=5))


def _two_new(conn: Conn, pid: int) -> None:
    set_latest(conn, pid, "resp_rate", 26, T1 - dt.timedelta(seconds=7))
    set_latest(conn, pid, "spo2", 91, T1 - dt.timedelta(seconds=7))


def _late_old_reading(conn: Conn, pid: int) -> None:
    """A reading measured long ago, arriving now (stale on arrival)."""
    set_latest(conn, pid, "temperature", 39.5, T0 - dt.timedelta(hours=5))


BEFORE = [_nothing, _complete, _complete_but_stale, _stored_score_and_alert, _device]
AFTER = [_one_new_normal, _one_new_red, _two_new, _late_old_reading]


@pytest.mark.parametrize("after", AFTER, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("before", BEFORE, ids=lambda f: f.__name__.strip("_"))
def test_refresh_from_latest_readings_equals_the_full_rebuild(
        db: Conn, admit: Callable[..., int], before: Callable[[Conn, int], None],
        after: Callable[[Conn, int], None]) -> None:
    pid = admit()
    before(db, pid)
    db.commit()
    [old] = wardview.load(db, now=T0, beds=10, patient_ids=[pid]).rows
    after(db, pid)
    db.commit()
    [cheap] = wardview.refresh_latest(db, [old], now=T1)
    [full] = wardview.load(db, now=T1, beds=10, patient_ids=[pid]).rows
    assert cheap == full
    assert row_json(cheap, T1) == row_json(full, T1)
    assert cheap != old, "the new readings changed the row"


def test_a_refresh_keeps_unchanged_readings_and_takes_every_changed_one(
        db: Conn, admit: Callable[..., int]) -> None:
    """`refresh_latest` reuses a reading equal to the row's own (instant, value, device) and
    builds the others anew: a value corrected at the same instant, or the same instant from
    another device, is a change."""
    pid = admit()
    _complete(db, pid)
    db.commit()
    [old] = wardview.load(db, now=T0, beds=10, patient_ids=[pid]).rows
    at = old.latest["spo2"].measured_at
    set_latest(db, pid, "spo2", 93, at)  # same instant, another value
    db.execute("UPDATE latest_readings SET device_id = 'dev-y' WHERE patient_id = %s "
               "AND code = 'temperature'", (pid,))  # same instant and value, another device
    _one_new_normal(db, pid)
    db.commit()
    [cheap] = wardview.refresh_latest(db, [old], now=T1)
    [full] = wardview.load(db, now=T1, beds=10, patient_ids=[pid]).rows
    assert cheap == full
    assert cheap.latest["spo2"].value == 93
    assert cheap.latest["temperature"].device_id == "dev-y"
    assert cheap.latest["pulse"].measured_at == T1 - dt.timedelta(seconds=5)
    changed = {"spo2", "temperature", "pulse"}
    assert all(cheap.latest[c] is old.latest[c] for c in old.latest if c not in changed)
    assert not any(cheap.latest[c] is old.latest[c] for c in changed)


def test_stale_and_missing_values_never_look_normal_on_the_cheap_path(
        db: Conn, admit: Callable[..., int]) -> None:
    pid = admit()
    _complete_but_stale(db, pid)
    db.commit()
    [old] = wardview.load(db, now=T0, beds=10, patient_ids=[pid]).rows
    _one_new_normal(db, pid)  # one fresh pulse beside six stale values
    db.commit()
    [row] = wardview.refresh_latest(db, [old], now=T1)
    out = row_json(row, T1)
    assert out["latest"]["spo2"]["stale"]
    assert not out["latest"]["pulse"]["stale"]
    assert out["score"] is not None
    assert not out["score"]["complete"]
    assert "spo2" in out["score"]["missing"]
    assert out["risk"] != "low", "a partial score is never shown green"


def _cache(db: Conn) -> WardCache:
    cache = WardCache(lambda: True)
    cache.reload(db, now=T0, beds=10)
    return cache


def test_the_cache_takes_the_readings_only_path_and_matches_a_full_load(
        db: Conn, admit: Callable[..., int]) -> None:
    pids = [admit(), admit(given="Brian")]
    for pid in pids:
        _stored_score_and_alert(db, pid)
    db.commit()
    cache = _cache(db)
    for pid in pids:
        _one_new_red(db, pid)
    db.commit()
    cache.on_event(events.WardEvent("readings", tuple(pids)))
    recomputed = cache.recomputed
    snap = cache.snapshot(db, now=T1, beds=10)
    assert cache.refreshed == 2
    assert cache.recomputed == recomputed
    full = wardview.load(db, now=T1, beds=10)
    assert [e.row for e in snap.entries] == full.rows


@pytest.mark.parametrize("kind", ["score", "alert", "care_plan", "device_status", "admission"])
def test_any_other_event_rebuilds_in_full(db: Conn, admit: Callable[..., int],
                                          kind: str) -> None:
    pid = admit()
    _complete(db, pid)
    db.commit()
    cache = _cache(db)
    cache.on_event(events.WardEvent("readings", (pid,)))
    cache.on_event(events.WardEvent(kind, (pid,)))
    db.execute(
        "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, complete, "
        "spo2_scale, sub_scores) VALUES (%s, %s, 7, 'high', true, true, 1, '{}')",
        (pid, T0 + dt.timedelta(minutes=1)))
    db.commit()
    recomputed = cache.recomputed
    [entry] = cache.snapshot(db, now=T1, beds=10, patient_ids=[pid]).entries
    assert cache.refreshed == 0
    assert cache.recomputed == recomputed + 1
    assert entry.row == wardview.load(db, now=T1, beds=10, patient_ids=[pid]).rows[0]


def test_a_fact_change_before_a_cheap_refresh_is_not_lost(
        db: Conn, admit: Callable[..., int]) -> None:
    """readings, then a score event, then readings again: the score's rebuild still runs
    (the cheap path compares with when the facts were read, not with the last rebuild)."""
    pid = admit()
    _complete(db, pid)
    db.commit()
    cache = _cache(db)
    cache.on_event(events.WardEvent("readings", (pid,)))
    cache.snapshot(db, now=T0 + dt.timedelta(minutes=1), beds=10)
    assert cache.refreshed == 1
    db.execute(
        "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, complete, "
        "spo2_scale, sub_scores) VALUES (%s, %s, 7, 'high', true, true, 1, '{}')",
        (pid, T0 + dt.timedelta(minutes=1)))
    db.commit()
    cache.on_event(events.WardEvent("score", (pid,)))
    cache.on_event(events.WardEvent("readings", (pid,)))
    [entry] = cache.snapshot(db, now=T1, beds=10, patient_ids=[pid]).entries
    assert entry.row == wardview.load(db, now=T1, beds=10, patient_ids=[pid]).rows[0]
    assert cache.refreshed == 1, "the second change was rebuilt in full"
