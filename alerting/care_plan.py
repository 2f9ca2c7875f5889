"""A patient's care plan: SpO2 scale and target, own thresholds, ceiling of care, IV infusion.

:class:`CarePlan` is the frozen value the rules read. Changing it is decided here as pure
functions (``*_change``): each validates the request against the current plan and returns a
:class:`PlanChange` — the columns to set and the audit detail (who, when, why, old and new
values). :mod:`alerting.care_plan_store` applies a change with psycopg in the caller's
transaction. This module must never do I/O, read a clock, or log (import-linter holds it).

Clinical rules enforced here:

* **Scale 2 only by a named clinician with a reason** (RCP NEWS2: for a prescribed target of
  88–92 % in hypercapnic respiratory failure, on a competent decision-maker's instruction,
  recorded with who and when). Its target defaults to 88–92 %.
* Every patient-specific threshold carries its author and reason.
* Ceiling of care (ReSPECT / treatment escalation plan) with author and reason; it changes
  where escalations go, never whether an alert is raised.
* **IV prescription** (drug, volume, rate *or* duration, start): expected end = start +
  volume / rate; expected volume infused at any instant is the straight line between them
  (an elastomeric pump's reservoir empties at a near-constant rate, VIRTUAL_WARD.md). It is
  what switches the pump's early / late / stalled rules on.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from alerting.candidates import Severity
from alerting.errors import CarePlanError

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
    infusion_drug: str | None = None
    infusion_set_by: str | None = None
    infusion_set_at: dt.datetime | None = None
    infusion_reason: str | None = None

    @property
    def infusion_expected_end(self) -> dt.datetime | None:
        """Start + volume / prescribed rate, when all three are known."""
        rate, volume, start = (self.prescribed_infusion_rate_ml_h, self.infusion_volume_ml,
                               self.infusion_started_at)
        if rate is None or volume is None or start is None:
            return None
        return start + dt.timedelta(hours=volume / rate)

    def expected_infused_ml(self, now: dt.datetime) -> float | None:
        """Volume the prescription expects infused by ``now`` (0 before start, capped)."""
        rate, volume, start = (self.prescribed_infusion_rate_ml_h, self.infusion_volume_ml,
                               self.infusion_started_at)
        if rate is None or volume is None or start is None:
            return None
        hours = max(0.0, (now - start).total_seconds() / 3600)
        return min(volume, rate * hours)


COLUMNS: Final = (
    "patient_id", "spo2_scale", "spo2_scale_set_by", "spo2_scale_set_at", "spo2_scale_reason",
    "spo2_target_low", "spo2_target_high", "thresholds", "ceiling_of_care", "ceiling_set_by",
    "ceiling_set_at", "ceiling_reason", "prescribed_infusion_rate_ml_h", "infusion_pump_type",
    "infusion_volume_ml", "infusion_started_at", "infusion_drug", "infusion_set_by",
    "infusion_set_at", "infusion_reason",
)
#: The SELECT list other modules (the runner's bulk load) use with :func:`from_row`.
SELECT_COLUMNS: Final = ", ".join(COLUMNS)


def from_row(row: tuple[Any, ...]) -> CarePlan:
    """A :class:`CarePlan` from a row of ``SELECT_COLUMNS``."""
    values = dict(zip(COLUMNS, row, strict=True))
    thresholds = values.pop("thresholds") or {}
    return CarePlan(
        **{**values, "ceiling_of_care": Ceiling(values["ceiling_of_care"])},
        thresholds=MappingProxyType(
            {p: Threshold.from_json(p, t) for p, t in sorted(thresholds.items())}
        ),
    )


@dataclass(frozen=True, slots=True)
class PlanChange:
    """A validated change: ``care_plans`` columns to set, and the ``audit_log`` row's action
    and detail."""

    patient_id: int
    action: str
    columns: Mapping[str, Any]
    by: str
    at: dt.datetime
    detail: Mapping[str, Any]


def _require(by: str, reason: str, what: str) -> None:
    if not by or not by.strip():
        raise CarePlanError(f"{what}: 'by' (who made the decision) is required")
    if not reason or not reason.strip():
        raise CarePlanError(f"{what}: 'reason' is required")


def _aware(now: dt.datetime, name: str = "now") -> None:
    if now.tzinfo is None:
        raise CarePlanError(f"{name} must be timezone-aware, got {now!r}")


def spo2_scale_change(before: CarePlan, *, scale: int, target_low: float | None,
                      target_high: float | None, by: str, reason: str, now: dt.datetime
                      ) -> PlanChange:
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
    return PlanChange(before.patient_id, "care_plan.set_spo2_scale", {
        "spo2_scale": scale, "spo2_scale_set_by": by, "spo2_scale_set_at": now,
        "spo2_scale_reason": reason, "spo2_target_low": target_low,
        "spo2_target_high": target_high,
    }, by, now, {
        "reason": reason,
        "old": {"scale": before.spo2_scale, "target_low": before.spo2_target_low,
                "target_high": before.spo2_target_high},
        "new": {"scale": scale, "target_low": target_low, "target_high": target_high},
    })


def threshold_change(before: CarePlan, *, parameter: str, low: float | None,
                     high: float | None, by: str, reason: str, now: dt.datetime,
                     severity: Severity = Severity.LOW_MEDIUM) -> PlanChange:
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
    thresholds = {p: t.as_json() for p, t in before.thresholds.items()}
    old = thresholds.get(parameter)
    new: dict[str, Any] | None
    if low is None and high is None:
        thresholds.pop(parameter, None)
        new = None
    else:
        new = Threshold(parameter, low, high, by, reason, now, Severity(severity)).as_json()
        thresholds[parameter] = new
    return PlanChange(before.patient_id, "care_plan.set_threshold", {"thresholds": thresholds},
                      by, now, {"parameter": parameter, "reason": reason, "old": old,
                                "new": new})


def ceiling_change(before: CarePlan, *, ceiling: Ceiling | str, by: str, reason: str,
                   now: dt.datetime) -> PlanChange:
    """Record a ceiling-of-care / ReSPECT decision; it changes where escalations go."""
    _aware(now)
    _require(by, reason, "set_ceiling_of_care")
    try:
        chosen = Ceiling(ceiling)
    except ValueError as exc:
        raise CarePlanError(
            f"unknown ceiling of care {ceiling!r}; use one of {[c.value for c in Ceiling]}"
        ) from exc
    return PlanChange(before.patient_id, "care_plan.set_ceiling_of_care", {
        "ceiling_of_care": chosen.value, "ceiling_set_by": by, "ceiling_set_at": now,
        "ceiling_reason": reason,
    }, by, now, {"reason": reason, "old": before.ceiling_of_care.value, "new": chosen.value})


def infusion_change(before: CarePlan, *, rate_ml_h: float | None, by: str, reason: str,
                    now: dt.datetime, pump_type: str | None = "elastomeric",
                    volume_ml: float | None = None, started_at: dt.datetime | None = None,
                    drug: str | None = None, duration: dt.timedelta | None = None
                    ) -> PlanChange:
    """The current IV prescription (drug, volume, rate or duration, start, pump type).

    Give the rate, or the duration with the volume (rate = volume / duration), not both
    unless they agree within 1 %. ``rate_ml_h`` and ``duration`` both None ends it.
    """
    _aware(now)
    _require(by, reason, "set_prescribed_infusion_rate")
    if duration is not None:
        if duration <= dt.timedelta(0):
            raise CarePlanError(f"duration must be positive, got {duration!r}")
        if volume_ml is None:
            raise CarePlanError("duration needs volume_ml (rate = volume / duration)")
        derived = volume_ml / (duration.total_seconds() / 3600)
        if rate_ml_h is not None and abs(rate_ml_h - derived) > 0.01 * derived:
            raise CarePlanError(f"rate_ml_h {rate_ml_h} disagrees with volume / duration "
                                f"= {derived:.3g} mL/h; give one of them")
        rate_ml_h = derived
    for name, value in (("rate_ml_h", rate_ml_h), ("volume_ml", volume_ml)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise CarePlanError(f"{name} must be a positive number, got {value!r}")
    if started_at is not None:
        _aware(started_at, "started_at")
    if rate_ml_h is None:
        pump_type, volume_ml, started_at, drug = None, None, None, None
    end = None
    if rate_ml_h is not None and volume_ml is not None and started_at is not None:
        end = started_at + dt.timedelta(hours=volume_ml / rate_ml_h)
    return PlanChange(before.patient_id, "care_plan.set_prescribed_infusion_rate", {
        "prescribed_infusion_rate_ml_h": rate_ml_h, "infusion_pump_type": pump_type,
        "infusion_volume_ml": volume_ml, "infusion_started_at": started_at,
        "infusion_drug": drug, "infusion_set_by": by, "infusion_set_at": now,
        "infusion_reason": reason,
    }, by, now, {
        "reason": reason,
        "old": {"rate_ml_h": before.prescribed_infusion_rate_ml_h,
                "pump_type": before.infusion_pump_type, "drug": before.infusion_drug,
                "volume_ml": before.infusion_volume_ml},
        "new": {"rate_ml_h": rate_ml_h, "pump_type": pump_type, "volume_ml": volume_ml,
                "drug": drug,
                "started_at": None if started_at is None else started_at.isoformat(),
                "expected_end": None if end is None else end.isoformat()},
    })
