"""The ward row and the overdue alert decide "due" with one function, from the same facts.

Real PostgreSQL: readings stored, scores and alerts written by the alerting runner, then the
hub's ward view (`ward.hub.wardview.load`) and the rule's snapshot (`alerting.store`) are each
loaded the way production loads them, and asked what is due at several later instants.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from alerting import device_rules, rules, runner, store
from alerting.candidates import Firing, Kind
from alerting.care_plan_store import set_spo2_scale
from alerting.snapshot import RuleConfig
from ward.db import registry
from ward.db.store import ReadingStore
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.domain.readings import Reading
from ward.domain.vitals import spec_for
from ward.hub import wardview

Conn = psycopg.Connection[Any]
T0 = dt.datetime(2025, 6, 2, 8, 0, tzinfo=dt.UTC)
FULL = {"spo2": 97, "pulse": 70, "resp_rate": 16, "temperature": 36.8, "systolic_bp": 125,
        "on_oxygen": 0, "consciousness": 0}


def _device(conn: Conn, pid: int, device_id: str, kind: DeviceKind) -> None:
    registry.add_device(conn, Device(device_id, kind))
    registry.assign_device(conn, Assignment(device_id, pid, T0 - dt.timedelta(days=1)))


def _store(conn: Conn, pid: int, device: str, at: dt.datetime, **values: float) -> None:
    ReadingStore().write(conn, [Reading(device, c, at, float(v), spec_for(c).unit, pid, at)
                                for c, v in values.items()])
    conn.commit()


@pytest.fixture
def patients(db: Conn, add_patients: Any) -> dict[str, int]:
    ids = add_patients(db, 5, T0 - dt.timedelta(hours=2))
    names = dict(zip(["full", "wearable", "scale2", "older", "silent"], ids, strict=True))
    for name, pid in names.items():
        _device(db, pid, f"ox-{pid}", DeviceKind.PULSE_OXIMETER)
        if name != "wearable":
            _device(db, pid, f"bp-{pid}", DeviceKind.BP_CUFF)
            _device(db, pid, f"th-{pid}", DeviceKind.THERMOMETER)
            _device(db, pid, f"hub-{pid}", DeviceKind.HOME_HUB)
    db.commit()
    set_spo2_scale(db, names["scale2"], scale=2, target_low=None, target_high=None, by="dr.a",
                   reason="type 2 respiratory failure", now=T0 - dt.timedelta(hours=2))
    db.commit()
    f, w, s, o = names["full"], names["wearable"], names["scale2"], names["older"]
    # A sick full set (pulse 115, RR 22: medium), scored by the runner.
    _store(db, f, f"ox-{f}", T0 - dt.timedelta(minutes=30), **{**FULL, "pulse": 115,
                                                                 "resp_rate": 22})
    _store(db, w, f"ox-{w}", T0 - dt.timedelta(minutes=1), spo2=95, pulse=88)
    # Scale 2: oxygen said 13 h ago, everything else fresh.
    _store(db, s, f"hub-{s}", T0 - dt.timedelta(hours=13), on_oxygen=1)
    _store(db, s, f"ox-{s}", T0 - dt.timedelta(minutes=5),
           **{k: v for k, v in FULL.items() if k != "on_oxygen"})
    # A complete set 3 h ago (NEWS2 1), then only the oximeter.
    _store(db, o, f"ox-{o}", T0 - dt.timedelta(hours=3), **{**FULL, "pulse": 95})
    runner.evaluate_after_commit(db, [o], T0 - dt.timedelta(hours=3))
    _store(db, o, f"ox-{o}", T0 - dt.timedelta(minutes=2), spo2=96, pulse=96)
    runner.evaluate_after_commit(db, list(names.values()), T0)
    return names


@pytest.mark.parametrize("later", [dt.timedelta(0), dt.timedelta(minutes=50),
                                   dt.timedelta(hours=1, minutes=20), dt.timedelta(hours=5)])
def test_ward_row_and_overdue_alert_agree(db: Conn, patients: dict[str, int],
                                          later: dt.timedelta) -> None:
    now = T0 + later
    rows = {r.patient_id: r for r in wardview.load(db, now=now, beds=10).rows}
    snapshots = store.load_snapshots(db, list(patients.values()), now)
    for name, pid in patients.items():
        rule_report = device_rules.due_report(snapshots[pid], now, RuleConfig())
        row = rows[pid]
        assert row.due == rule_report, name
        alert = rules.evaluate(snapshots[pid], now).by_kind().get(Kind.OBSERVATIONS_OVERDUE)
        assert wardview.as_of(row, now).overdue == isinstance(alert, Firing), name
    db.rollback()


def test_the_cases_the_issue_names(db: Conn, patients: dict[str, int]) -> None:
    now = T0 + dt.timedelta(hours=5)
    rows = {r.patient_id: r for r in wardview.load(db, now=now, beds=10).rows}
    wearable = rows[patients["wearable"]].due
    assert wearable is not None
    overdue = {p.parameter.value: p.method for p in wearable.overdue(now)}
    assert overdue["resp_rate"] == "phone call"
    assert overdue["systolic_bp"] == "visit"
    scale2 = rows[patients["scale2"]]
    assert scale2.due is not None
    assert scale2.due.oxygen_unknown
    assert scale2.score is not None
    assert scale2.score.oxygen_unknown
    db.rollback()
