"""A patient's care plan: SpO2 scale and target, own thresholds, ceiling of care, infusion.

:class:`CarePlan` is the frozen value the rules read. The ``set_*`` functions are the hub's way
to change it: each validates, upserts the ``care_plans`` row and writes one ``audit_log`` row
(who, when, why, old and new values) in the caller's transaction; the caller commits.

Clinical rules enforced here:

* **Scale 2 only by a named clinician with a reason** (RCP NEWS2: for a prescribed target of
  88–92 % in hypercapnic respiratory failure, on a competent decision-maker's instruction,
  recorded with who and when). Its target defaults to 88–92 %.
* Every patient-specific threshold carries its author and reason.
* Ceiling of care (ReSPECT / treatment escalation plan) with author and reason; it changes
  where escalations go, never whether an alert is raised.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import psycopg

from alerting.candidates import Severity
from alerting.errors import CarePlanError

Conn = psycopg.Connection[Any]

#: Scale 2's prescribed target (BTS oxygen guideline, hypercapnic respiratory failure).
SCALE_2_TARGET: Final = (88.0, 92.0)
#: Parameters a patient-specific threshold may name (the catalogue's vital codes that are
#: numeric measurements of the patient, not device state).
THRESHOLD_PARAMETERS: Final = frozenset(
    {"spo2", "pulse", "resp_rate", "temperature", "systolic_bp", "diastolic_bp", "o2_flow"}
)


class Ceiling(enum.StrEnum):
    FULL_ESCALATION = "full_escalation"
    NOT_FOR_CONVEYANCE = "not_for_conveyance"
    PALLIATIVE = "palliative"


@dataclass(frozen=True, slots=True)
class Threshold:
    """A patient-specific alert threshold: outside ``[low, high]`` raises a ``threshold`` alert."""

    parameter: str
    low: float | None
    high: float | None
    by: str
    reason: str
    at: dt.datetime | None = None
    severity: Severity = Severity.LOW_MEDIUM

    def as_json(self) -> dict[str, Any]:
        return {
            "low": self.low, "high": self.high, "by": self.by, "reason": self.reason,
            "at": None if self.at is None else self.at.isoformat(),
            "severity": self.severity.value,
        }

    @classmethod
    def from_json(cls, parameter: str, data: Mapping[str, Any]) -> Threshold:
        at = data.get("at")
        return cls(
            parameter=parameter,
            low=None if data.get("low") is None else float(data["low"]),
            high=None if data.get("high") is None else float(data["high"]),
            by=str(data.get("by", "")),
            reason=str(data.get("reason", "")),
            at=None if at is None else dt.datetime.fromisoformat(str(at)),
            severity=Severity(data.get("severity", Severity.LOW_MEDIUM.value)),
        )


@dataclass(frozen=True, slots=True)
class CarePlan:
    """The current care plan of one patient; the default is Scale 1 and full escalation."""

    patient_id: int
    spo2_scale: int = 1
    spo2_scale_set_by: str | None = None
    spo2_scale_set_at: dt.datetime | None = None
    spo2_scale_reason: str | None = None
    spo2_target_low: float | None = None
    spo2_target_high: float | None = None
    thresholds: Mapping[str, Threshold] = field(default_factory=lambda: MappingProxyType({}))
    ceiling_of_care: Ceiling = Ceiling.FULL_ESCALATION
    ceiling_set_by: str | None = None
    ceiling_set_at: dt.datetime | None = None
    ceiling_reason: str | None = None
    prescribed_infusion_rate_ml_h: float | None = None
    infusion_pump_type: str | None = None
    infusion_volume_ml: float | None = None
    infusion_started_at: dt.datetime | None = None


_COLUMNS: Final = (
    "patient_id", "spo2_scale", "spo2_scale_set_by", "spo2_scale_set_at", "spo2_scale_reason",
    "spo2_target_low", "spo2_target_high", "thresholds", "ceiling_of_care", "ceiling_set_by",
    "ceiling_set_at", "ceiling_reason", "prescribed_infusion_rate_ml_h", "infusion_pump_type",
    "infusion_volume_ml", "infusion_started_at",
)
#: The SELECT list other modules (the runner's bulk load) use with :func:`from_row`.
SELECT_COLUMNS: Final = ", ".join(_COLUMNS)


def from_row(row: tuple[Any, ...]) -> CarePlan:
    """A :class:`CarePlan` from a row of ``SELECT_COLUMNS``."""
    values = dict(zip(_COLUMNS, row, strict=True))
    thresholds = values.pop("thresholds") or {}
    return CarePlan(
        **{**values, "ceiling_of_care": Ceiling(values["ceiling_of_care"])},
        thresholds=MappingProxyType(
            {p: Threshold.from_json(p, t) for p, t in sorted(thresholds.items())}
        ),
    )


def load_care_plan(conn: Conn, patient_id: int) -> CarePlan:
    """The patient's care plan, or the default plan when none was ever written."""
    row = conn.execute(
        f"SELECT {SELECT_COLUMNS} FROM care_plans WHERE patient_id = %s", (patient_id,)
    ).fetchone()
    return CarePlan(patient_id) if row is None else from_row(row)


def _require(by: str, reason: str, what: str) -> None:
    if not by or not by.strip():
        raise CarePlanError(f"{what}: 'by' (who made the decision) is required")
    if not reason or not reason.strip():
        raise CarePlanError(f"{what}: 'reason' is required")


def _aware(now: dt.datetime) -> None:
    if now.tzinfo is None:
        raise CarePlanError(f"now must be timezone-aware, got {now!r}")


def _audit(conn: Conn, patient_id: int, *, by: str, action: str, now: dt.datetime,
           detail: Mapping[str, Any]) -> None:
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, entity, entity_id, patient_id, detail) "
        "VALUES (%s, %s, %s, 'care_plan', %s, %s, %s::jsonb)",
        (now, by, action, str(patient_id), patient_id, json.dumps(detail, default=str)),
    )


def _upsert(conn: Conn, patient_id: int, assignments: Mapping[str, Any], now: dt.datetime) -> None:
    if conn.execute("SELECT 1 FROM patients WHERE id = %s", (patient_id,)).fetchone() is None:
        raise CarePlanError(f"patient {patient_id} does not exist")
    conn.execute(
        "INSERT INTO care_plans (patient_id) VALUES (%s) ON CONFLICT (patient_id) DO NOTHING",
        (patient_id,),
    )
    sets = ", ".join(f"{name} = %s" for name in assignments)
    conn.execute(
        f"UPDATE care_plans SET {sets}, updated_at = %s WHERE patient_id = %s",
        (*assignments.values(), now, patient_id),
    )


def set_spo2_scale(conn: Conn, patient_id: int, *, scale: int, target_low: float | None,
                   target_high: float | None, by: str, reason: str, now: dt.datetime) -> None:
    """Set the SpO2 scale and target range. Scale 2 needs who and why (and defaults 88–92 %)."""
    _aware(now)
    _require(by, reason, "set_spo2_scale")
    if scale not in (1, 2) or isinstance(scale, bool):
        raise CarePlanError(f"scale must be 1 or 2, got {scale!r}")
    if scale == 2 and target_low is None and target_high is None:
        target_low, target_high = SCALE_2_TARGET
    for name, value in (("target_low", target_low), ("target_high", target_high)):
        if value is not None and not (math.isfinite(value) and 50 <= value <= 100):
            raise CarePlanError(f"{name} must be an SpO2 % between 50 and 100, got {value!r}")
    if target_low is not None and target_high is not None and target_low > target_high:
        raise CarePlanError(f"target_low {target_low} is above target_high {target_high}")
    before = load_care_plan(conn, patient_id)
    _upsert(conn, patient_id, {
        "spo2_scale": scale, "spo2_scale_set_by": by, "spo2_scale_set_at": now,
        "spo2_scale_reason": reason, "spo2_target_low": target_low,
        "spo2_target_high": target_high,
    }, now)
    _audit(conn, patient_id, by=by, action="care_plan.set_spo2_scale", now=now, detail={
        "reason": reason,
        "old": {"scale": before.spo2_scale, "target_low": before.spo2_target_low,
                "target_high": before.spo2_target_high},
        "new": {"scale": scale, "target_low": target_low, "target_high": target_high},
    })


def set_threshold(conn: Conn, patient_id: int, *, parameter: str, low: float | None,
                  high: float | None, by: str, reason: str, now: dt.datetime,
                  severity: Severity = Severity.LOW_MEDIUM) -> None:
    """Set (or, with ``low`` and ``high`` both None, remove) a patient-specific threshold."""
    _aware(now)
    _require(by, reason, "set_threshold")
    if parameter not in THRESHOLD_PARAMETERS:
        raise CarePlanError(
            f"unknown threshold parameter {parameter!r}; use one of {sorted(THRESHOLD_PARAMETERS)}"
        )
    for name, value in (("low", low), ("high", high)):
        if value is not None and not math.isfinite(value):
            raise CarePlanError(f"{name} must be finite, got {value!r}")
    if low is not None and high is not None and low >= high:
        raise CarePlanError(f"low {low} must be below high {high}")
    before = load_care_plan(conn, patient_id)
    thresholds = {p: t.as_json() for p, t in before.thresholds.items()}
    old = thresholds.get(parameter)
    if low is None and high is None:
        thresholds.pop(parameter, None)
        new = None
    else:
        new = Threshold(parameter, low, high, by, reason, now, Severity(severity)).as_json()
        thresholds[parameter] = new
    _upsert(conn, patient_id, {"thresholds": json.dumps(thresholds)}, now)
    _audit(conn, patient_id, by=by, action="care_plan.set_threshold", now=now, detail={
        "parameter": parameter, "reason": reason, "old": old, "new": new,
    })


def set_ceiling_of_care(conn: Conn, patient_id: int, *, ceiling: Ceiling | str, by: str,
                        reason: str, now: dt.datetime) -> None:
    """Record a ceiling-of-care / ReSPECT decision; it changes where escalations go."""
    _aware(now)
    _require(by, reason, "set_ceiling_of_care")
    try:
        chosen = Ceiling(ceiling)
    except ValueError as exc:
        raise CarePlanError(
            f"unknown ceiling of care {ceiling!r}; use one of {[c.value for c in Ceiling]}"
        ) from exc
    before = load_care_plan(conn, patient_id)
    _upsert(conn, patient_id, {"ceiling_of_care": chosen.value, "ceiling_set_by": by,
                               "ceiling_set_at": now, "ceiling_reason": reason}, now)
    _audit(conn, patient_id, by=by, action="care_plan.set_ceiling_of_care", now=now, detail={
        "reason": reason, "old": before.ceiling_of_care.value, "new": chosen.value,
    })


def set_prescribed_infusion_rate(conn: Conn, patient_id: int, *, rate_ml_h: float | None,
                                 by: str, reason: str, now: dt.datetime,
                                 pump_type: str | None = "elastomeric",
                                 volume_ml: float | None = None,
                                 started_at: dt.datetime | None = None) -> None:
    """Record the current infusion (rate, pump type, volume, start); ``None`` rate ends it."""
    _aware(now)
    _require(by, reason, "set_prescribed_infusion_rate")
    for name, value in (("rate_ml_h", rate_ml_h), ("volume_ml", volume_ml)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise CarePlanError(f"{name} must be a positive number, got {value!r}")
    if started_at is not None and started_at.tzinfo is None:
        raise CarePlanError(f"started_at must be timezone-aware, got {started_at!r}")
    if rate_ml_h is None:
        pump_type, volume_ml, started_at = None, None, None
    before = load_care_plan(conn, patient_id)
    _upsert(conn, patient_id, {
        "prescribed_infusion_rate_ml_h": rate_ml_h, "infusion_pump_type": pump_type,
        "infusion_volume_ml": volume_ml, "infusion_started_at": started_at,
        "infusion_set_by": by, "infusion_set_at": now, "infusion_reason": reason,
    }, now)
    _audit(conn, patient_id, by=by, action="care_plan.set_prescribed_infusion_rate", now=now,
           detail={
               "reason": reason,
               "old": {"rate_ml_h": before.prescribed_infusion_rate_ml_h,
                       "pump_type": before.infusion_pump_type},
               "new": {"rate_ml_h": rate_ml_h, "pump_type": pump_type, "volume_ml": volume_ml,
                       "started_at": None if started_at is None else started_at.isoformat()},
           })
