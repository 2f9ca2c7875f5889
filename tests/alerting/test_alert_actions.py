"""Hub actions and care-plan changes on the real PostgreSQL (caller commits)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from alerting import actions
from alerting.care_plan import Ceiling
from alerting.care_plan_store import (
    load_care_plan,
    set_ceiling_of_care,
    set_prescribed_infusion_rate,
    set_spo2_scale,
    set_threshold,
)
from alerting.errors import AlertingError, AlertNotFound, AlertTransitionError, CarePlanError
from alerting.policy import Policy
from ward.db import channels

T0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def alert_id(raise_news2: Callable[[dt.datetime], int]) -> int:
    return raise_news2(T0)


def test_acknowledge_resolve_write_events_and_notify(db: psycopg.Connection[Any], db_url: str,
                                                     alert_id: int, policy: Policy) -> None:
    with psycopg.connect(db_url, autocommit=True) as listener:
        channels.listen(listener, channels.EVENTS)
        actions.acknowledge(db, alert_id, by="nurse.a", now=T0 + dt.timedelta(minutes=3), policy=policy)
        db.commit()
        # Other events of this schema may arrive too; find ours.
        got = None
        for n in listener.notifies(timeout=2):
            payload = json.loads(n.payload)
            if payload.get("type") == "alert" and payload.get("alert_id") == alert_id:
                got = payload
                break
    assert got is not None
    assert got["state"] == "acknowledged"
    assert (got["kind"], got["severity"]) == ("news2", "high")
    with pytest.raises(AlertTransitionError, match=r"already acknowledged by nurse\.a"):
        actions.acknowledge(db, alert_id, by="nurse.b", now=T0 + dt.timedelta(minutes=4), policy=policy)
    db.rollback()
    actions.resolve(db, alert_id, by="dr.b", reason="seen at home, stable",
                    now=T0 + dt.timedelta(minutes=30), policy=policy)
    db.commit()
    events = db.execute("SELECT event, actor, evidence FROM alert_events WHERE alert_id = %s "
                        "ORDER BY id", (alert_id,)).fetchall()
    assert [(e, a) for e, a, _ in events] == [("raised", "system"), ("acknowledged", "nurse.a"),
                                              ("resolved", "dr.b")]
    assert all(len(ev) == 7 for _, _, ev in events)  # every transition carries its readings


def test_errors_are_alerting_errors_and_value_errors(db: psycopg.Connection[Any], alert_id: int,
                                                     policy: Policy) -> None:
    with pytest.raises(AlertNotFound) as missing:
        actions.acknowledge(db, 999_999, by="n", now=T0, policy=policy)
    assert isinstance(missing.value, AlertingError)
    assert isinstance(missing.value, ValueError)
    db.rollback()
    with pytest.raises(AlertTransitionError, match="cannot be snoozed past"):
        actions.snooze(db, alert_id, by="n", until=T0 + dt.timedelta(hours=1), now=T0, policy=policy)
    db.rollback()
    actions.snooze(db, alert_id, by="n", until=T0 + dt.timedelta(minutes=10), now=T0, policy=policy)
    db.commit()


def test_care_plan_changes_are_validated_and_audited(db: psycopg.Connection[Any], add_patients: Any) -> None:
    (pid,) = add_patients(db, 1, T0)
    with pytest.raises(CarePlanError, match="reason"):
        set_spo2_scale(db, pid, scale=2, target_low=None, target_high=None, by="dr.a", reason="",
                       now=T0)
    set_spo2_scale(db, pid, scale=2, target_low=None, target_high=None, by="dr.a",
                   reason="hypercapnic COPD, ABG 2026-01-11", now=T0)
    set_threshold(db, pid, parameter="pulse", low=45, high=110, by="dr.a", reason="AF", now=T0)
    set_ceiling_of_care(db, pid, ceiling="not_for_conveyance", by="dr.a", reason="ReSPECT form",
                        now=T0)
    set_prescribed_infusion_rate(db, pid, rate_ml_h=10, by="nurse.c", reason="IV ceftriaxone",
                                 now=T0, volume_ml=240, started_at=T0)
    with pytest.raises(CarePlanError, match="unknown threshold parameter"):
        set_threshold(db, pid, parameter="mood", low=1, high=2, by="dr.a", reason="x", now=T0)
    db.commit()
    plan = load_care_plan(db, pid)
    assert (plan.spo2_scale, plan.spo2_target_low, plan.spo2_target_high) == (2, 88.0, 92.0)
    assert plan.spo2_scale_set_by == "dr.a"
    assert plan.spo2_scale_set_at == T0
    assert plan.thresholds["pulse"].reason == "AF"
    assert plan.ceiling_of_care is Ceiling.NOT_FOR_CONVEYANCE
    assert plan.infusion_volume_ml == 240
    assert plan.infusion_pump_type == "elastomeric"
    audit = [r[0] for r in db.execute("SELECT action FROM audit_log WHERE patient_id = %s "
                                      "ORDER BY id", (pid,))]
    assert audit == ["care_plan.set_spo2_scale", "care_plan.set_threshold",
                     "care_plan.set_ceiling_of_care", "care_plan.set_prescribed_infusion_rate"]
