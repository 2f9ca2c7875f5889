"""The kinds of home device, one class each: when each measures and what it reads.

Every kind is a `simulators.devices.VirtualDevice` (which owns the clock, the generator, the
battery, the link, the faults and the encoding); a kind adds its schedule and its readings:

* `PulseOximeter`, `BpCuff`, `Thermometer`, `HomeHub` — spot checks (`SpotCheckDevice`): the
  kit's `spot_checks_per_day` spread 08:00–20:00 Europe/London (more than 12 a day: round the
  clock), each jittered by up to 20 minutes.
* `WearableOximeter` — SpO2 and pulse every `interval_s`, on a battery that lasts ~10 days.
* `InfusionPump` — an elastomeric pump's flow monitor (`simulators.pump`): a report every
  15 minutes and at every change of state; the daily nurse visit connects a new reservoir.

Measurement noise scales with the scenario's `faults.noise`; oximeters also have motion
artefacts (`faults.artefact`). `make_devices` builds every patient's kit from these classes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from gateway.contract import Measurement
from simulators import pump
from simulators.devices import RunContext, VirtualDevice, iso, utc
from simulators.physiology import LONDON
from simulators.scenario import DeviceType
from simulators.ward import SimDevice, SimPatient

_SPOT_FIRST_HOUR, _SPOT_LAST_HOUR = 8.0, 20.0  # patients take spot checks while awake
_PUMP_REPORT_S = 900.0  # a running pump reports every 15 minutes (and on every state change)


def spot_times(day: dt.date, per_day: int) -> list[float]:
    """Nominal spot-check instants of a local day: spread 08:00–20:00 (or the whole day)."""
    if per_day == 1:
        hours = [9.0]
    elif per_day <= 12:
        step = (_SPOT_LAST_HOUR - _SPOT_FIRST_HOUR) / (per_day - 1)
        hours = [_SPOT_FIRST_HOUR + k * step for k in range(per_day)]
    else:
        hours = [k * 24.0 / per_day for k in range(per_day)]
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=LONDON)
    return [(midnight + dt.timedelta(hours=h)).timestamp() for h in hours]


class SpotCheckDevice(VirtualDevice):
    """A device the patient picks up a few times a day (`spot_times`, jittered per check)."""

    def __init__(self, patient: SimPatient, spec: SimDevice, ctx: RunContext, other: str) -> None:
        super().__init__(patient, spec, ctx, other)
        self._slots: list[float] = []
        self._slot_day = utc(ctx.start).astimezone(LONDON).date() - dt.timedelta(days=1)
        self.next_measure = self._schedule_after(ctx.start)

    def _schedule_after(self, t: float) -> float:
        while True:
            while self._slots:
                slot = self._slots.pop(0)
                if slot > t:
                    return slot
            self._slot_day += dt.timedelta(days=1)
            per_day = self.spec.spot_checks_per_day
            jitter = min(1200.0, 12 * 3600.0 / per_day / 3)
            self._slots = [float(int(s + self.rng.uniform(-jitter, jitter)))
                           for s in spot_times(self._slot_day, per_day)]


class Oximeter(VirtualDevice):
    """SpO2 and pulse; a motion artefact reads SpO2 4–12 points low."""

    def _readings(self, t: float, stamp: dt.datetime) -> list[Measurement]:
        state, rng, noise = self._true_state(t), self.rng, self.faults.noise
        spo2 = state.spo2 + float(rng.normal(0.0, 0.8 * noise))
        if rng.random() < self.faults.artefact:
            spo2 -= float(rng.uniform(4.0, 12.0))
            self._truth("artefact", t, code="spo2")
        return [Measurement("spo2", min(100, round(spo2)), "%", stamp),
                Measurement("pulse", round(state.pulse + float(rng.normal(0.0, 2.0 * noise))),
                            "/min", stamp)]


class PulseOximeter(SpotCheckDevice, Oximeter):
    """A finger-clip oximeter used at spot checks."""

    kind = DeviceType.PULSE_OXIMETER


class WearableOximeter(Oximeter):
    """A worn oximeter: a measurement every `interval_s` (whole seconds)."""

    kind = DeviceType.WEARABLE_OXIMETER
    drain_pct_h = 0.4  # ~10 days on a charge

    def __init__(self, patient: SimPatient, spec: SimDevice, ctx: RunContext, other: str) -> None:
        super().__init__(patient, spec, ctx, other)
        self.next_measure = float(int(ctx.start + self.rng.uniform(0.0, spec.interval_s)))

    def _schedule_after(self, t: float) -> float:
        return t + self.spec.interval_s


class BpCuff(SpotCheckDevice):
    """An upper-arm cuff: systolic and diastolic pressure and pulse."""

    kind = DeviceType.BP_CUFF

    def _readings(self, t: float, stamp: dt.datetime) -> list[Measurement]:
        state, rng, noise = self._true_state(t), self.rng, self.faults.noise
        return [
            Measurement("systolic_bp",
                        round(state.systolic_bp + float(rng.normal(0.0, 4.0 * noise))),
                        "mm[Hg]", stamp),
            Measurement("diastolic_bp",
                        round(state.diastolic_bp + float(rng.normal(0.0, 3.0 * noise))),
                        "mm[Hg]", stamp),
            Measurement("pulse", round(state.pulse + float(rng.normal(0.0, 2.0 * noise))),
                        "/min", stamp),
        ]


class Thermometer(SpotCheckDevice):
    """A thermometer reading to 0.1 °C."""

    kind = DeviceType.THERMOMETER

    def _readings(self, t: float, stamp: dt.datetime) -> list[Measurement]:
        noise = self.faults.noise
        value = round(self._true_state(t).temperature + float(self.rng.normal(0.0, 0.12 * noise)),
                      1)
        return [Measurement("temperature", value, "Cel", stamp)]


class HomeHub(SpotCheckDevice):
    """The home hub app: what a carer counts or answers (respiration rate, new confusion,
    air or oxygen and its flow). It also takes the platform's full-set requests (the engine
    asks every device of the hub's patient for its `answer`)."""

    kind = DeviceType.HOME_HUB

    def _readings(self, t: float, stamp: dt.datetime) -> list[Measurement]:
        state, noise = self._true_state(t), self.faults.noise
        readings = [
            Measurement("resp_rate",
                        max(4, round(state.resp_rate + float(self.rng.normal(0.0, 1.0 * noise)))),
                        "/min", stamp),
            Measurement("consciousness", state.consciousness, "{ACVPU}", stamp),
            Measurement("on_oxygen", "oxygen" if state.on_oxygen else "air",
                        "{air:0,oxygen:1}", stamp),
        ]
        if state.on_oxygen:
            readings.append(Measurement("o2_flow", state.o2_flow, "L/min", stamp))
        return readings


class InfusionPump(VirtualDevice):
    """An elastomeric pump's flow monitor: volume infused and remaining, rate and state. It was
    connected up to 6 hours before the run; the nurse's daily visit brings a new reservoir."""

    kind = DeviceType.INFUSION_PUMP
    answers_full_set = False  # a full set is the patient's vital signs: nothing to add

    def __init__(self, patient: SimPatient, spec: SimDevice, ctx: RunContext, other: str) -> None:
        super().__init__(patient, spec, ctx, other)
        rng = self.rng
        self.infusion = pump.draw_infusion(ctx.start - float(rng.uniform(0, 6 * 3600)), rng)
        self.remaining = pump.advance(self.infusion, pump.RESERVOIR_ML, self.infusion.started,
                                      ctx.start)
        self.pump_at = ctx.start
        self.next_measure = ctx.start + float(rng.uniform(0.0, _PUMP_REPORT_S))

    def _schedule_after(self, t: float) -> float:
        upcoming = [e for e in pump.events(self.infusion) if e > t]
        return min([t + _PUMP_REPORT_S, *upcoming])

    def _readings(self, t: float, stamp: dt.datetime) -> list[Measurement]:
        self.remaining = pump.advance(self.infusion, self.remaining, self.pump_at, t)
        self.pump_at = t
        if t >= self.infusion.ends_by:  # the nurse's visit: a new reservoir
            if self.remaining > 0.0:
                self._truth("infusion_incomplete", t, remaining_ml=round(self.remaining, 1))
            self.infusion = pump.draw_infusion(t, self.rng)
            self.remaining = pump.RESERVOIR_ML
            self._truth("infusion_start", t, flow_factor=round(self.infusion.factor, 3),
                        occluded=[iso(x) for x in self.infusion.occluded]
                        if self.infusion.occluded else None,
                        disconnected_at=iso(self.infusion.disconnected_at)
                        if self.infusion.disconnected_at is not None else None)
        rate, state = pump.flow(self.infusion, self.remaining, t)
        return [
            Measurement("infusion_volume_infused", round(pump.RESERVOIR_ML - self.remaining, 1),
                        "mL", stamp),
            Measurement("infusion_volume_remaining", round(self.remaining, 1), "mL", stamp),
            Measurement("infusion_rate", round(rate, 2), "mL/h", stamp),
            Measurement("pump_state", state, "{state}", stamp),
        ]


KINDS: dict[DeviceType, type[VirtualDevice]] = {
    cls.kind: cls for cls in (PulseOximeter, WearableOximeter, BpCuff, Thermometer, HomeHub,
                              InfusionPump)
}


def make_device(patient: SimPatient, spec: SimDevice, ctx: RunContext,
                other: str = "sim-nobody") -> VirtualDevice:
    """The device `spec` of `patient`, as its kind's class."""
    return KINDS[spec.type](patient, spec, ctx, other)


def make_devices(patients: Sequence[SimPatient], ctx: RunContext,
                 only: set[int] | None = None) -> list[VirtualDevice]:
    """Every device of `patients` (or of those whose index is in `only`)."""
    devices: list[VirtualDevice] = []
    for i, patient in enumerate(patients):
        if only is not None and patient.index not in only:
            continue
        neighbour = patients[(i + 1) % len(patients)]
        for spec in patient.devices:
            other = neighbour.devices[0].device_id if neighbour is not patient else "sim-nobody"
            devices.append(make_device(patient, spec, ctx, other))
    return devices
