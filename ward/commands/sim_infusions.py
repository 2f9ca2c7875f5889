"""IV prescriptions for the simulated ward's infusion pumps (`vward simulate --register`).

A simulated pump (`simulators.pump`) runs a 240 mL elastomeric reservoir at a nominal
10 mL/h (24 h), and the simulated nurse connects a new one at each daily visit. Without an IV
prescription in the care plan the infusion timing rules (`alerting.device_rules`: flow,
finished early, late, stalled) stay off, so the simulator prescribes as the clinician would —
through the store function behind the hub's `PUT /api/patients/N/care-plan/infusion`
(`alerting.care_plan_store.set_prescribed_infusion_rate`: validated, audited, hubs notified) —
and records each new reservoir's start when the simulated nurse connects it, so the rules
judge the reservoir that is running. A prescription a clinician wrote or ended is never
overwritten.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg

from simulators.devices import Outbound, RunContext
from simulators.engine import Engine
from simulators.pump import PRESCRIBED_RATE_ML_H, RESERVOIR_ML
from simulators.scenario import DeviceType, Scenario
from simulators.sensors import InfusionPump
from simulators.ward import SimPatient

PRESCRIBER = "simulator scenario"
# Continuous-infusion OPAT in an elastomeric device: a day's dose of a beta-lactam in the
# reservoir's volume (flucloxacillin 8 g/24 h is a usual adult dose for cellulitis at home).
DRUG = "flucloxacillin 8 g in sodium chloride 0.9 % (continuous infusion)"
PUMP_TYPE = "elastomeric"
DURATION = dt.timedelta(hours=RESERVOIR_ML / PRESCRIBED_RATE_ML_H)
REASON = ("simulated OPAT: community nurse connected a new 240 mL elastomeric reservoir "
          "(24 h at 10 mL/h)")
# Two registrations of one live run (the demo's one-shot step, then the simulator's own)
# start seconds apart, and so do their reservoirs: within this they are the same reservoir.
SAME_RESERVOIR = dt.timedelta(minutes=5)

Conn = psycopg.Connection[Any]


def reservoir_starts(scenario: Scenario, patients: list[SimPatient],
                     first: dt.datetime) -> dict[str, dt.datetime]:
    """Pump device id → when the reservoir running at `first` was connected: the draw the
    engine makes for a run from `first` (a device's draws depend on its seed, not on other
    devices, so building the pumps alone gives the same reservoirs)."""
    ctx = RunContext(first.timestamp(), scenario.faults, scenario.status_interval.total_seconds(),
                     None, scenario.seed)
    starts: dict[str, dt.datetime] = {}
    for sim in patients:
        for spec in sim.devices:
            if spec.type is DeviceType.INFUSION_PUMP:
                infusion = InfusionPump(sim, spec, ctx, "sim-nobody").infusion
                starts[spec.device_id] = dt.datetime.fromtimestamp(infusion.started, dt.UTC)
    return starts


def prescribe(conn: Conn, patient_id: int, started_at: dt.datetime, now: dt.datetime) -> bool:
    """Prescribe the reservoir connected at `started_at`; False when nothing changed (it is
    already prescribed, or the current prescription is a clinician's). The caller commits."""
    from alerting import care_plan_store
    from ward.hub.routers.common import notify

    plan = care_plan_store.load_care_plan(conn, patient_id)
    if plan.infusion_set_by not in (None, PRESCRIBER):
        return False
    if (plan.infusion_set_by == PRESCRIBER and plan.infusion_started_at is not None
            and abs(plan.infusion_started_at - started_at) <= SAME_RESERVOIR
            and plan.prescribed_infusion_rate_ml_h == PRESCRIBED_RATE_ML_H
            and plan.infusion_volume_ml == RESERVOIR_ML):
        return False
    care_plan_store.set_prescribed_infusion_rate(
        conn, patient_id, rate_ml_h=PRESCRIBED_RATE_ML_H, by=PRESCRIBER, reason=REASON, now=now,
        pump_type=PUMP_TYPE, volume_ml=RESERVOIR_ML, started_at=started_at, drug=DRUG,
        duration=DURATION)
    notify(conn, "care_plan", [patient_id])
    return True


def prescribing(messages: Iterator[Outbound], engine: Engine, conninfo: str,
                patient_ids: Mapping[str, int], warn: Any) -> Iterator[Outbound]:
    """`messages`, prescribing each pump's new reservoir as the simulated nurse connects it
    (the first message of the new reservoir). One short connection per new reservoir (one a
    pump a day); a database that is down costs that prescription and a line on `warn`."""
    pumps = {d.topic: d for d in engine.devices if isinstance(d, InfusionPump)}
    known = {topic: d.infusion.started for topic, d in pumps.items()}
    for message in messages:
        device = pumps.get(message.topic)
        if device is not None and device.infusion.started != known.get(message.topic):
            known[message.topic] = device.infusion.started
            started = dt.datetime.fromtimestamp(device.infusion.started, dt.UTC)
            try:
                with psycopg.connect(conninfo) as conn:
                    prescribe(conn, patient_ids[device.patient.nhs_number], started, started)
            except psycopg.Error as exc:
                warn(f"vward simulate: the IV prescription of {device.spec.device_id}'s new "
                     f"reservoir was not recorded: {exc}")
        yield message
