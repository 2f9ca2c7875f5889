"""Timer, device and infusion rules: observations overdue, device offline, battery low, pump.

Same contract as :mod:`alerting.rules`: pure functions returning ``Firing``/``Clear`` per kind,
nothing when undecidable.

* **observations_overdue**: fires while any NEWS2 parameter is overdue, as decided per
  parameter by :func:`alerting.due.due` — the same function the ward row calls (band from
  the last complete score, raised by a partial one; what the kit cannot measure named as a
  phone call or visit; Scale 2 with air/oxygen unknown flagged). Severity follows the band:
  missing data on a high-risk patient is itself a high alert.
* **device_offline** / **battery_low** read ``device_status`` of the devices assigned now; a
  device that never reported a status is undecided, not fine. Device facts appear in the
  evidence as pseudo-readings ``device_status.online`` / ``device_status.battery_pct``.
* **infusion_***: pump state and flow from the pump's latest readings (only readings taken
  since the current infusion started count); expected end = start + volume / prescribed rate;
  "early" or "late" means outside ± tolerance × planned duration, with the tolerance of the
  pump type (elastomeric ±15 % by default; see :class:`RuleConfig`). **infusion_stalled**:
  the volume infused is behind the prescription's straight line (start → expected end) by
  more than that tolerance. All switch on with the IV prescription in the care plan.

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from alerting import due as due_rule
from alerting.candidates import Clear, Evidence, Firing, Kind, Outcome, Severity
from alerting.due import DueReport, ParameterDue
from alerting.news2 import News2Score, Parameter, Risk
from alerting.observations import NEWS2_CODES, Latest, evidence_order
from alerting.snapshot import DeviceState, PatientSnapshot, RuleConfig
from ward.domain.vitals import PUMP_STATES

_OVERDUE_SEVERITY: Final = {
    Risk.LOW: Severity.LOW, Risk.LOW_MEDIUM: Severity.LOW_MEDIUM,
    Risk.MEDIUM: Severity.MEDIUM, Risk.HIGH: Severity.HIGH,
}
_LABEL: Final = {
    Parameter.RESP_RATE: "RR", Parameter.SPO2: "SpO2", Parameter.AIR_OR_OXYGEN: "air/oxygen",
    Parameter.SYSTOLIC_BP: "BP", Parameter.PULSE: "pulse",
    Parameter.CONSCIOUSNESS: "consciousness", Parameter.TEMPERATURE: "temperature",
}
#: A stall is judged only after the first half hour (a pump primes and settles), and only
#: when the shortfall also exceeds 5 mL — half an hour at a typical 10 mL/h elastomeric rate —
#: so a pump read just after a reading does not flap the alert.
STALL_AFTER: Final = dt.timedelta(minutes=30)
STALL_MARGIN_ML: Final = 5.0
_PUMP_CODES: Final = ("pump_state", "infusion_rate", "infusion_volume_infused",
                      "infusion_volume_remaining")


def _minutes(delta: dt.timedelta) -> str:
    total = int(delta.total_seconds() // 60)
    hours, minutes = divmod(total, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _names(items: tuple[ParameterDue, ...]) -> str:
    return ", ".join(_LABEL[p.parameter] for p in items)


def overdue_rule(snapshot: PatientSnapshot, current: News2Score | None, now: dt.datetime,
                 config: RuleConfig) -> tuple[Outcome, ...]:
    """Fires while any NEWS2 parameter is overdue (:func:`alerting.due.due` decides)."""
    # `current` is rules.evaluate's score of these very readings at `now`, which is what
    # alerting.due.current_score computes for the hub: passing it only saves scoring twice.
    report = due_report(snapshot, now, config, scored=current)
    if report is None:
        return ()
    overdue = report.overdue(now)
    evidence = tuple(sorted([r.evidence for code, r in snapshot.latest.items()
                             if code in NEWS2_CODES], key=evidence_order))
    if not overdue:
        return (Clear(Kind.OBSERVATIONS_OVERDUE, evidence, observed_at=now),)
    by_kit = tuple(p for p in overdue if not p.hub_task)
    tasks = tuple(p for p in overdue if p.hub_task)
    parts = []
    if by_kit:
        parts.append(f"{_names(by_kit)} overdue")
    for method in ("phone call", "visit"):
        chosen = tuple(p for p in tasks if p.method == method)
        if chosen:
            parts.append(f"{method} due for {_names(chosen)} (not measured by the kit)")
    oxygen = ""
    if report.oxygen_unknown:
        oxygen = (f"; Scale 2 with air/oxygen unknown — NEWS2 could be {report.possible_total}"
                  if report.possible_total is not None else "; Scale 2 with air/oxygen unknown")
    never = [p for p in overdue if p.last_at is None]
    if len(never) == len(report.parameters):
        parts.append("no observations since admission")
    band = ("no complete NEWS2 yet: full set " if report.basis == "never scored"
            else f"NEWS2 {report.total} ({report.basis}) needs ")
    summary = f"Observations overdue: {'; '.join(parts)}; {band}{report.frequency}{oxygen}"
    return (Firing(
        Kind.OBSERVATIONS_OVERDUE, _OVERDUE_SEVERITY[report.risk], summary,
        {"band": report.risk.value, "total": report.total, "basis": report.basis,
         "interval_minutes": report.interval.total_seconds() / 60,
         "oxygen_unknown": report.oxygen_unknown, "possible_total": report.possible_total,
         "due_at": min(p.due_at for p in overdue).isoformat(),
         "never_measured": [p.parameter.value for p in never],
         "parameters": [{"parameter": p.parameter.value, "method": p.method,
                         "last_at": None if p.last_at is None else p.last_at.isoformat(),
                         "due_at": p.due_at.isoformat(), "overdue_at": p.overdue_at.isoformat()}
                        for p in overdue]},
        evidence, partial=report.basis != "complete score"),)


def due_report(snapshot: PatientSnapshot, now: dt.datetime, config: RuleConfig, *,
               scored: News2Score | due_rule.Compute | None = due_rule.COMPUTE
               ) -> DueReport | None:
    """:func:`alerting.due.due` over a rules snapshot (the hub calls it with the same facts)."""
    last = due_rule.last_complete(
        ((p.computed_at, p.total, p.risk, p.complete) for p in snapshot.score_history), now)
    kit = due_rule.kit_codes(((d.device_id, d.kind) for d in snapshot.devices), snapshot.latest)
    return due_rule.due(snapshot.latest, last=last, kit=kit, admitted_at=snapshot.admitted_at,
                        spo2_scale=snapshot.care_plan.spo2_scale, now=now, config=config,
                        scored=scored)


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
        # "Online and heard within offline_after" is a fact checked at `now`, so its evidence
        # is dated `now`: dated at the last status report, every later sweep looked like the
        # same clear fact again, the lifecycle counted it once, and its 10-minute hysteresis
        # in time never elapsed — offline alerts never cleared (issue 11.6).
        out.append(Clear(Kind.DEVICE_OFFLINE,
                         tuple(Evidence(now, "device_status.online", d.device_id, 1.0)
                               for d in known), observed_at=now))
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
    stalled = _stalled_rule(snapshot, state, now, tolerance, details)
    if state == "complete" and state_reading is not None:
        done = state_reading.measured_at
        evidence: tuple[Evidence, ...] = (state_reading.evidence,)
        early = done < expected_end - margin
        late = done > expected_end + margin
        return (
            *stalled,
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
        return (*stalled, Firing(
            Kind.INFUSION_LATE, Severity.LOW,
            f"Infusion not finished {_minutes(now - expected_end)} after the expected end{left}",
            {**details, "pump_state": state}, evidence),)
    if state is not None:
        return (*stalled, Clear(Kind.INFUSION_LATE,
                                () if state_reading is None else (state_reading.evidence,),
                                observed_at=now))
    return stalled


def _stalled_rule(snapshot: PatientSnapshot, state: str | None, now: dt.datetime,
                  tolerance: float, details: dict[str, object]) -> tuple[Outcome, ...]:
    """Behind the prescription: infused volume below the expected straight line by more than
    the pump's tolerance (and :data:`STALL_MARGIN_ML`), while the infusion should be running."""
    plan = snapshot.care_plan
    expected = plan.expected_infused_ml(now)
    started = plan.infusion_started_at
    if expected is None or started is None or state in (None, "complete"):
        return ()
    if now - started < STALL_AFTER:
        return ()
    pump = _pump_readings(snapshot)
    infused = pump.get("infusion_volume_infused")
    if infused is None:
        return ()  # no volume reading since the start: undecided, never clear
    behind = expected - infused.value
    evidence = (infused.evidence,)
    if behind > expected * tolerance + STALL_MARGIN_ML:
        return (Firing(
            Kind.INFUSION_STALLED, Severity.LOW,
            f"Infusion behind schedule: {infused.value:g} mL infused, {expected:.0f} mL "
            f"expected by now ({plan.infusion_drug or 'IV'}; pump {state})",
            {**details, "expected_ml": expected, "infused_ml": infused.value,
             "pump_state": state}, evidence),)
    return (Clear(Kind.INFUSION_STALLED, evidence),)


__all__ = ["device_rules", "infusion_rules", "overdue_rule"]
