"""Timer, device and infusion rules: observations overdue, device offline, battery low, pump.

Same contract as :mod:`alerting.rules`: pure functions returning ``Firing``/``Clear`` per kind,
nothing when undecidable.

* **observations_overdue**: the newest NEWS2 reading is older than the Chart 4 interval for
  the patient's current band (a complete current score; else the higher of the partial
  current score and the last stored one; a patient never scored is treated as low risk, 4 h,
  counted from admission) plus a grace period.
  "Continuous" (NEWS2 ≥ 7) uses :attr:`RuleConfig.continuous_gap`. Severity follows the band:
  missing data on a high-risk patient is itself a high alert.
* **device_offline** / **battery_low** read ``device_status`` of the devices assigned now; a
  device that never reported a status is undecided, not fine. Device facts appear in the
  evidence as pseudo-readings ``device_status.online`` / ``device_status.battery_pct``.
* **infusion_***: pump state and flow from the pump's latest readings (only readings taken
  since the current infusion started count); expected end = start + volume / prescribed rate;
  "early" or "late" means outside ± tolerance × planned duration, with the tolerance of the
  pump type (elastomeric ±15 % by default; see :class:`RuleConfig`).

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from alerting.candidates import Clear, Evidence, Firing, Kind, Outcome, Severity
from alerting.news2 import News2Score, Risk, monitoring_for
from alerting.observations import NEWS2_CODES, Latest
from alerting.snapshot import DeviceState, PatientSnapshot, RuleConfig
from ward.domain.vitals import PUMP_STATES

_OVERDUE_SEVERITY: Final = {
    Risk.LOW: Severity.LOW, Risk.LOW_MEDIUM: Severity.LOW_MEDIUM,
    Risk.MEDIUM: Severity.MEDIUM, Risk.HIGH: Severity.HIGH,
}
_RISK_RANK: Final = {Risk.LOW: 0, Risk.LOW_MEDIUM: 1, Risk.MEDIUM: 2, Risk.HIGH: 3}
_PUMP_CODES: Final = ("pump_state", "infusion_rate", "infusion_volume_infused",
                      "infusion_volume_remaining")


def _minutes(delta: dt.timedelta) -> str:
    total = int(delta.total_seconds() // 60)
    hours, minutes = divmod(total, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def overdue_rule(snapshot: PatientSnapshot, current: News2Score | None, now: dt.datetime,
                 config: RuleConfig) -> tuple[Outcome, ...]:
    readings = [r for code, r in snapshot.latest.items() if code in {c.value for c in NEWS2_CODES}]
    newest = max(readings, key=lambda r: r.measured_at, default=None)
    # The band: a complete current score decides; a partial one (a lower bound) may only
    # raise the band of the last stored score, never lower it.
    candidates: list[tuple[int, Risk]] = []
    if current is not None:
        candidates.append((current.total, current.risk))
    if snapshot.score_history and (current is None or not current.complete):
        candidates.append((snapshot.score_history[-1].total, snapshot.score_history[-1].risk))
    if not candidates:
        candidates.append((1, Risk.LOW))  # never scored: the low band's 4-hourly end
    total, risk = max(candidates, key=lambda c: (_RISK_RANK[c[1]], c[0]))
    interval = monitoring_for(total, risk).interval or config.continuous_gap
    since = newest.measured_at if newest is not None else snapshot.admitted_at
    if since is None:
        return ()
    due = since + interval + config.overdue_grace
    evidence = () if newest is None else (newest.evidence,)
    if now > due:
        what = "no observations since admission" if newest is None else (
            f"last observation {_minutes(now - since)} ago")
        frequency = monitoring_for(total, risk).frequency
        return (Firing(Kind.OBSERVATIONS_OVERDUE, _OVERDUE_SEVERITY[risk],
                       f"Observations overdue: {what}; NEWS2 {total} needs {frequency}",
                       {"last_observed_at": None if newest is None else since.isoformat(),
                        "due_at": due.isoformat(), "band": risk.value, "total": total,
                        "interval_minutes": interval.total_seconds() / 60},
                       evidence),)
    return (Clear(Kind.OBSERVATIONS_OVERDUE, evidence, observed_at=now),)


def _status_evidence(device: DeviceState, now: dt.datetime) -> tuple[Evidence, ...]:
    at = device.reported_at or now
    out = []
    if device.online is not None:
        out.append(Evidence(at, "device_status.online", device.device_id, float(device.online)))
    if device.battery_pct is not None:
        out.append(Evidence(at, "device_status.battery_pct", device.device_id, device.battery_pct))
    return tuple(out)


def device_rules(snapshot: PatientSnapshot, now: dt.datetime,
                 config: RuleConfig) -> tuple[Outcome, ...]:
    known = [d for d in snapshot.devices if d.online is not None]
    out: list[Outcome] = []
    offline = [d for d in known if not d.online or (
        d.reported_at is not None and now - d.reported_at > config.offline_after)]
    if offline:
        names = ", ".join(f"{d.kind} {d.device_id}" for d in offline)
        out.append(Firing(
            Kind.DEVICE_OFFLINE, Severity.LOW, f"Device offline: {names}",
            {"devices": [{"device_id": d.device_id, "kind": d.kind,
                          "last_report": None if d.reported_at is None else d.reported_at.isoformat()}
                         for d in offline]},
            tuple(e for d in offline for e in _status_evidence(d, now))))
    elif known:
        out.append(Clear(Kind.DEVICE_OFFLINE, tuple(e for d in known for e in _status_evidence(d, now)),
                         observed_at=now))
    batteries = [d for d in snapshot.devices if d.battery_pct is not None]
    low = [d for d in batteries if d.battery_pct is not None and d.battery_pct <= config.battery_low_pct]
    if low:
        names = ", ".join(f"{d.device_id} {d.battery_pct:g} %" for d in low)
        out.append(Firing(Kind.BATTERY_LOW, Severity.LOW, f"Battery low: {names}",
                          {"devices": [{"device_id": d.device_id, "battery_pct": d.battery_pct}
                                       for d in low]},
                          tuple(e for d in low for e in _status_evidence(d, now))))
    elif batteries and all((d.battery_pct or 0.0) > config.battery_clear_pct for d in batteries):
        out.append(Clear(Kind.BATTERY_LOW,
                         tuple(e for d in batteries for e in _status_evidence(d, now)),
                         observed_at=now))
    return tuple(out)


def _pump_readings(snapshot: PatientSnapshot) -> dict[str, Latest]:
    started = snapshot.care_plan.infusion_started_at
    return {code: r for code in _PUMP_CODES if (r := snapshot.latest.get(code)) is not None
            and (started is None or r.measured_at >= started)}


def infusion_rules(snapshot: PatientSnapshot, now: dt.datetime,
                   config: RuleConfig) -> tuple[Outcome, ...]:
    plan = snapshot.care_plan
    pump = _pump_readings(snapshot)
    state_reading = pump.get("pump_state")
    state: str | None = None
    if state_reading is not None:
        terminal = PUMP_STATES[int(state_reading.value)] == "complete"
        if terminal or now - state_reading.measured_at <= config.pump_staleness:
            state = PUMP_STATES[int(state_reading.value)]
    out: list[Outcome] = []
    if state is not None and state_reading is not None:
        evidence = (state_reading.evidence,)
        for kind, bad, severity, text in (
            (Kind.INFUSION_OCCLUDED, "occluded", Severity.LOW_MEDIUM, "Infusion pump occluded"),
            (Kind.INFUSION_DISCONNECTED, "disconnected", Severity.MEDIUM,
             "Infusion pump disconnected"),
        ):
            if state == bad:
                out.append(Firing(kind, severity, text, {"pump_state": state,
                                                         "device_id": state_reading.device_id},
                                  evidence))
            else:
                out.append(Clear(kind, evidence))
    rate = plan.prescribed_infusion_rate_ml_h
    tolerance = config.pump_tolerance.get(plan.infusion_pump_type or "", config.default_tolerance)
    flow = pump.get("infusion_rate")
    if rate is not None and state is not None:
        if state == "running" and flow is not None and now - flow.measured_at <= config.pump_staleness:
            deviation = (flow.value - rate) / rate
            evidence = tuple(sorted((flow.evidence, *(() if state_reading is None else (state_reading.evidence,)))))
            if abs(deviation) > tolerance:
                out.append(Firing(
                    Kind.INFUSION_FLOW, Severity.LOW,
                    f"Infusion flow {flow.value:g} mL/h is {deviation:+.0%} of the prescribed "
                    f"{rate:g} mL/h (tolerance ±{tolerance:.0%} for {plan.infusion_pump_type or 'this pump'})",
                    {"rate_ml_h": flow.value, "prescribed_ml_h": rate, "deviation": deviation,
                     "tolerance": tolerance, "pump_type": plan.infusion_pump_type}, evidence))
            else:
                out.append(Clear(Kind.INFUSION_FLOW, evidence))
        elif state != "running":
            out.append(Clear(Kind.INFUSION_FLOW, () if state_reading is None else (state_reading.evidence,)))
    out.extend(_timing_rules(snapshot, state, state_reading, now, tolerance))
    return tuple(out)


def _timing_rules(snapshot: PatientSnapshot, state: str | None, state_reading: Latest | None,
                  now: dt.datetime, tolerance: float) -> tuple[Outcome, ...]:
    plan = snapshot.care_plan
    rate, volume, started = (plan.prescribed_infusion_rate_ml_h, plan.infusion_volume_ml,
                             plan.infusion_started_at)
    if rate is None or volume is None or started is None:
        return ()
    planned = dt.timedelta(hours=volume / rate)
    expected_end = started + planned
    margin = planned * tolerance
    details = {"started_at": started.isoformat(), "expected_end": expected_end.isoformat(),
               "planned_minutes": planned.total_seconds() / 60, "tolerance": tolerance}
    remaining = snapshot.latest.get("infusion_volume_remaining")
    if state == "complete" and state_reading is not None:
        done = state_reading.measured_at
        evidence: tuple[Evidence, ...] = (state_reading.evidence,)
        early = done < expected_end - margin
        late = done > expected_end + margin
        return (
            Firing(Kind.INFUSION_FINISHED_EARLY, Severity.LOW,
                   f"Infusion finished early: {_minutes(expected_end - done)} before the expected end",
                   {**details, "finished_at": done.isoformat()}, evidence)
            if early else Clear(Kind.INFUSION_FINISHED_EARLY, evidence),
            Firing(Kind.INFUSION_LATE, Severity.LOW,
                   f"Infusion finished late: {_minutes(done - expected_end)} after the expected end",
                   {**details, "finished_at": done.isoformat()}, evidence)
            if late else Clear(Kind.INFUSION_LATE, evidence),
        )
    if now > expected_end + margin:
        evidence = tuple(sorted(r.evidence for r in (state_reading, remaining) if r is not None))
        left = "" if remaining is None else f"; {remaining.value:g} mL remaining"
        return (Firing(Kind.INFUSION_LATE, Severity.LOW,
                       f"Infusion not finished {_minutes(now - expected_end)} after the expected end{left}",
                       {**details, "pump_state": state}, evidence),)
    if state is not None:
        return (Clear(Kind.INFUSION_LATE, () if state_reading is None else (state_reading.evidence,),
                      observed_at=now),)
    return ()


__all__ = ["device_rules", "infusion_rules", "overdue_rule"]
