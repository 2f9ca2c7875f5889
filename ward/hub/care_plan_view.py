"""A care plan's history for the screen: every change, who made it, when and why.

The alerting core (`alerting.care_plan_store.apply`) writes one `audit_log` row per care-plan change, in
the same transaction as the change, with the author, the reason and the old and new values.
That row *is* the history: reading it here (rather than keeping a second table in step)
means a change can never be missing from the history, and any new care-plan decision the
core records (the IV prescription, for one) appears without a change here. Only the text
shown for each kind of change lives in this module (`describe`, pure).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]
# The history a screen shows at once; older changes stay in the audit log (and its viewer).
HISTORY_LIMIT = 200
# `audit_log.action` of care-plan changes: "care_plan.set_spo2_scale", "…set_threshold", …
ACTION_PREFIX = "care_plan."
WHAT = {"set_spo2_scale": "SpO2 scale", "set_threshold": "Threshold",
        "set_ceiling_of_care": "Ceiling of care",
        "set_prescribed_infusion_rate": "IV prescription"}


@dataclass(frozen=True, slots=True)
class Change:
    at: dt.datetime
    by: str
    what: str
    old: str
    new: str
    reason: str


def _spo2(value: Any) -> str:
    if not isinstance(value, Mapping):
        return "—"
    low, high = value.get("target_low"), value.get("target_high")
    target = "" if low is None and high is None else f", target {_num(low)}–{_num(high)} %"
    return f"Scale {value.get('scale')}{target}"


def _num(value: Any) -> str:
    if value is None:
        return "…"
    return f"{float(value):.1f}".rstrip("0").rstrip(".")


def _threshold(value: Any) -> str:
    if not isinstance(value, Mapping):
        return "none"
    return f"{_num(value.get('low'))} to {_num(value.get('high'))}"


def _label(value: Any) -> str:
    return "—" if value is None else str(value).replace("_", " ")


def describe(action: str, detail: Mapping[str, Any]) -> tuple[str, str, str]:
    """(what changed, old value, new value) as a clinician reads them; pure."""
    kind = action.removeprefix(ACTION_PREFIX)
    old, new = detail.get("old"), detail.get("new")
    if kind == "set_spo2_scale":
        return WHAT[kind], _spo2(old), _spo2(new)
    if kind == "set_threshold":
        return (f"Threshold: {_label(detail.get('parameter'))}", _threshold(old),
                _threshold(new))
    if kind == "set_ceiling_of_care":
        return WHAT[kind], _label(old), _label(new)
    if kind == "set_prescribed_infusion_rate":
        def rate(v: Any) -> str:
            r = v.get("rate_ml_h") if isinstance(v, Mapping) else None
            if r is None:
                return "none"
            drug = f"{v['drug']} " if v.get("drug") else ""
            return f"{drug}{_num(r)} mL/h ({_label(v.get('pump_type'))})"
        return WHAT[kind], rate(old), rate(new)
    return WHAT.get(kind, _label(kind)), _label(old), _label(new)


def history(conn: Conn, patient_id: int, *, limit: int = HISTORY_LIMIT) -> list[Change]:
    """The patient's care-plan changes, newest first."""
    rows = conn.execute(
        "SELECT at, actor, action, detail FROM audit_log WHERE patient_id = %s "
        "AND entity = 'care_plan' AND starts_with(action, %s) ORDER BY at DESC, id DESC "
        "LIMIT %s", (patient_id, ACTION_PREFIX, limit)).fetchall()
    out = []
    for at, actor, action, detail in rows:
        what, old, new = describe(str(action), detail or {})
        out.append(Change(at, str(actor), what, old, new, str((detail or {}).get("reason", ""))))
    return out


@dataclass(frozen=True, slots=True)
class PatientHeading:
    id: int
    nhs_number: str
    given_name: str
    family_name: str
    date_of_birth: dt.date


def heading(conn: Conn, patient_id: int) -> PatientHeading | None:
    row = conn.execute("SELECT id, nhs_number, given_name, family_name, date_of_birth "
                       "FROM patients WHERE id = %s", (patient_id,)).fetchone()
    return None if row is None else PatientHeading(*row)
