"""What every virtual device shares: its clock, its generator, its battery, its link, its faults.

`VirtualDevice` is the base of every kind of device (`simulators.sensors`: pulse oximeter,
wearable oximeter, BP cuff, thermometer, home hub, infusion pump). A kind says only when it
measures (`_schedule_after`) and what (`_readings`); the base turns those readings into messages
on the gateway's wire contract (`gateway.contract` encoders: native JSON or SenML, a per-device
choice) and applies the scenario's faults: battery drain (status messages; a flat device
measures nothing), offline spells followed by store-and-forward bursts, duplicates (the same
bytes twice), clock drift (within and beyond the gateway's 5-minute future tolerance), late and
out-of-order delivery and malformed payloads (`simulators.malformed`). Every fault is written to
ground truth with the message it touched.

Each device draws from its own generator, seeded by (seed, patient, device number): the base
draws its clock, battery, signal and link, then the kind its first measurement. It keeps its
own clock of events: `next_at` is its next event, `step()` performs it and returns the messages
it causes, each with the simulated instant it reaches the broker. Times are epoch seconds
(floats) inside; measurement instants are whole seconds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from gateway.contract import (
    Measurement,
    encode_readings,
    encode_senml,
    encode_status,
    readings_topic,
    senml_msg_id,
    senml_topic,
    status_topic,
)
from simulators import malformed
from simulators.groundtruth import GroundTruth
from simulators.physiology import TrueState, true_state
from simulators.scenario import DeviceType, Faults, WireFormat
from simulators.ward import SimDevice, SimPatient, patient_rng

FUTURE_TOLERANCE_S = 300.0  # the gateway's default VW_GATEWAY_FUTURE_TOLERANCE_S
# A broker publishes a client's will 1.5 × keep-alive after it last heard from it (60 s).
_WILL_DELAY_S = 90.0
# Store-and-forward: a device resends its backlog as fast as its link allows, ~20 messages/s.
_BURST_GAP_S = 0.05
# A device keeps at most this many unsent messages; older ones are dropped (and recorded).
BUFFER_LIMIT = 500
FIRMWARE = "vw-sim 1.4.2"


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message as it reaches the broker at simulated instant `at` (epoch seconds)."""

    at: float
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True, slots=True)
class RunContext:
    start: float  # first simulated instant, epoch seconds
    faults: Faults
    status_interval_s: float
    truth: GroundTruth | None
    seed: int


def utc(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def iso(t: float) -> str:
    return utc(t).isoformat().replace("+00:00", "Z")


class VirtualDevice(ABC):
    """One device of one patient, with its own generator, clock offset, battery and link.

    A kind (a subclass) sets `kind`, may set `drain_pct_h`, draws its first measurement instant
    into `next_measure` once this constructor has run, and implements `_schedule_after` and
    `_readings`."""

    kind: ClassVar[DeviceType]
    # Battery drain, %/hour: a spot-check device lasts months (a wearable sets its own).
    drain_pct_h: ClassVar[float] = 0.05
    # Whether the kind takes part in a full set the patient is asked for (`answer`).
    answers_full_set: ClassVar[bool] = True
    next_measure: float

    def __init__(self, patient: SimPatient, spec: SimDevice, ctx: RunContext, other: str) -> None:
        if spec.type is not self.kind:
            msg = f"{type(self).__name__} simulates {self.kind.value}, not {spec.type.value}"
            raise ValueError(msg)
        self.patient = patient
        self.spec = spec
        self.ctx = ctx
        self.other_device = other  # a neighbour's id, for "payload names another device"
        self.rng = patient_rng(ctx.seed, patient.index, spec.number)
        self.faults = ctx.faults
        self.topic = (senml_topic(spec.device_id) if spec.wire is WireFormat.SENML
                      else readings_topic(spec.device_id))
        self.status_topic = status_topic(spec.device_id)
        self._salt = f"{int(ctx.start)}/{spec.device_id}/"
        self.seq = 0
        self.pending: list[Outbound] = []
        rng, faults = self.rng, self.faults
        # Clock: half the drifting devices stay within the gateway's tolerance, half go beyond.
        self.offset = 0.0
        if rng.random() < faults.clock_drift:
            beyond = rng.random() < 0.5
            self.offset = float(rng.uniform(420.0, 1800.0) if beyond else rng.uniform(30.0, 240.0))
            self._truth("clock_drift", ctx.start, offset_s=round(self.offset, 3),
                        beyond_tolerance=beyond)
        self.drain = self.drain_pct_h
        if rng.random() < faults.battery_drain:
            self.drain = float(rng.uniform(4.0, 8.0))  # a failing cell: flat within a day
        self.battery = float(rng.uniform(60.0, 100.0))
        self.battery_at = ctx.start
        self.flat_until: float | None = None
        self.signal = float(rng.uniform(-95.0, -55.0))
        # Link: offline spells as a Poisson process with `offline_spell` chance per hour.
        self.offline_until: float | None = None
        self.buffer: list[tuple[float, list[Measurement], str]] = []
        # Answers taken while offline, each with its own generator (`answer`).
        self.held: list[tuple[float, list[Measurement], str, np.random.Generator]] = []
        self.next_spell = self._draw_spell(ctx.start)
        self.next_status = ctx.start + float(rng.uniform(0.0, min(ctx.status_interval_s, 600.0)))

    # -- what a kind says ---------------------------------------------------------------------

    @abstractmethod
    def _schedule_after(self, t: float) -> float:
        """The next measurement instant after the one at `t`."""

    @abstractmethod
    def _readings(self, t: float, stamp: dt.datetime) -> list[Measurement]:
        """What the device measures at `t`, stamped `stamp` by its own clock."""

    def _true_state(self, t: float) -> TrueState:
        return true_state(self.patient.profile, utc(t))

    # -- scheduling ---------------------------------------------------------------------------

    @property
    def next_at(self) -> float:
        link = self.offline_until if self.offline_until is not None else self.next_spell
        return min(self.next_measure, self.next_status, link)

    def _draw_spell(self, after: float) -> float:
        rate = self.faults.offline_spell
        if rate <= 0.0:
            return float("inf")
        return after + float(self.rng.exponential(3600.0 / rate))

    # -- events -------------------------------------------------------------------------------

    def step(self) -> list[Outbound]:
        """Perform the next event; return the messages it sends (delivery ≥ the event)."""
        t = self.next_at
        self.pending = []
        if self.offline_until is not None and t == self.offline_until:
            self._reconnect(t)
        elif self.offline_until is None and t == self.next_spell:
            self._disconnect(t)
        elif t == self.next_status:
            self.next_status = t + self.ctx.status_interval_s
            if self.offline_until is None and self._battery(t) > 0.0:
                self._status(t, online=True)
        else:
            self._measure(t)
        return self.pending

    def answer(self, t: float, command_id: str) -> list[Outbound]:
        """The device's part of a full set the patient takes at `t` for command `command_id`
        (`simulators.homehub`): an extra measurement at its own instant, not a regular one.

        Drawn from a generator of its own (seed, patient, device, instant, command), with
        message ids of its own; the regular schedule (slots, their jitter, the next
        measurement), the device's own generator and sequence, its battery and its link are
        only read, never changed, so a run with requests is the run without them plus the
        answers' messages. Battery: the drain is per hour, not per measurement, so an answer
        costs nothing; a flat device does not answer. Faults apply to the answer as to any
        message (late, out of order, malformed, duplicated, with its own draws); offline, it is
        held and sent after the regular backlog when the link returns (`held`, not counted
        against `BUFFER_LIMIT`)."""
        self.pending = []
        if not self.answers_full_set or self._battery_peek(t) <= 0.0:
            return self.pending
        tag = hashlib.blake2b(command_id.encode(), digest_size=8).digest()
        rng = np.random.default_rng([self.ctx.seed, self.patient.index, self.spec.number,
                                     int(t), int.from_bytes(tag, "big")])
        msg_id = hashlib.blake2b(f"{self._salt}request/{command_id}/{int(t)}".encode(),
                                 digest_size=12).hexdigest()
        own = self.rng
        self.rng = rng
        try:
            measurements = self._readings(t, utc(t + self.offset))
            if self.offline_until is not None:
                self.held.append((t, measurements, msg_id, rng))
            else:
                self._deliver(t, measurements, msg_id)
        finally:
            self.rng = own
        return self.pending

    def _truth(self, event: str, at: float, **fields: object) -> None:
        if self.ctx.truth is not None:
            self.ctx.truth.record(event, at, patient_key=self.patient.nhs_number,
                                  patient_label=self.patient.label,
                                  device_id=self.spec.device_id, **fields)

    def _delayed(self, event: str, at: float, msg_id: str, measured: float) -> None:
        """Ground truth of a message delivered at `at`, after it was measured at `measured`."""
        self._truth(event, at, msg_id=msg_id, measured_at=iso(measured),
                    delay_s=round(at - measured, 3))

    def _will(self, t: float) -> None:
        """The broker publishes the device's will (online: false) once keep-alive runs out."""
        self._emit(t + _WILL_DELAY_S, self.status_topic, encode_status(online=False), retain=True)

    def _battery(self, t: float) -> float:
        """Battery % at `t` (0 while flat); a flat device is recharged after 2–8 hours."""
        if self.flat_until is not None:
            if t < self.flat_until:
                return 0.0
            self.flat_until, self.battery, self.battery_at = None, 100.0, t
        level = self.battery - self.drain * (t - self.battery_at) / 3600.0
        if level <= 2.0:
            self.flat_until = t + float(self.rng.uniform(2.0, 8.0)) * 3600.0
            self._truth("battery_flat", t, until=iso(self.flat_until))
            self._will(t)
            return 0.0
        return level

    def _battery_peek(self, t: float) -> float:
        """What `_battery(t)` would say, without its effects (a recharge, going flat)."""
        if self.flat_until is not None:
            return 0.0 if t < self.flat_until else 100.0
        level = self.battery - self.drain * (t - self.battery_at) / 3600.0
        return level if level > 2.0 else 0.0

    def _status(self, t: float, *, online: bool) -> None:
        battery = self._battery(t) if online else None
        payload = encode_status(
            online=online, battery_pct=None if battery is None else round(battery),
            signal_dbm=round(self.signal + float(self.rng.normal(0.0, 3.0))) if online else None,
            firmware=FIRMWARE if online else None,
            sent_at=utc(t + self.offset) if online else None,
        )
        self._emit(t, self.status_topic, payload, retain=True)

    def _disconnect(self, t: float) -> None:
        low, high = self.faults.offline_minutes
        self.offline_until = t + float(self.rng.uniform(low, high)) * 60.0
        self._truth("offline", t, until=iso(self.offline_until))
        self._will(t)

    def _reconnect(self, t: float) -> None:
        self.offline_until = None
        self.next_spell = self._draw_spell(t)
        self._status(t, online=True)
        backlog, self.buffer = self.buffer, []
        for i, (measured, measurements, msg_id) in enumerate(backlog):
            at = t + (i + 1) * _BURST_GAP_S
            self._delayed("store_and_forward", at, msg_id, measured)
            self._send(at, measurements, msg_id)
        held, self.held = self.held, []
        own = self.rng
        try:
            for j, (measured, measurements, msg_id, rng) in enumerate(held):
                self.rng = rng  # an answer's faults come from its own generator
                at = t + (len(backlog) + j + 1) * _BURST_GAP_S
                self._delayed("store_and_forward", at, msg_id, measured)
                self._send(at, measurements, msg_id)
        finally:
            self.rng = own

    # -- measuring ----------------------------------------------------------------------------

    def _measure(self, t: float) -> None:
        self.next_measure = self._schedule_after(t)
        if self._battery(t) <= 0.0:
            return
        measurements = self._readings(t, utc(t + self.offset))
        self.seq += 1
        msg_id = hashlib.blake2b(f"{self._salt}{self.seq}".encode(), digest_size=12).hexdigest()
        if self.offline_until is not None:
            self.buffer.append((t, measurements, msg_id))
            if len(self.buffer) > BUFFER_LIMIT:
                measured, _, lost = self.buffer.pop(0)
                self._truth("dropped", t, msg_id=lost, measured_at=iso(measured),
                            reason="store-and-forward buffer full")
            return
        self._deliver(t, measurements, msg_id)

    def _deliver(self, t: float, measurements: list[Measurement], msg_id: str) -> None:
        """Send a measurement taken at `t` while online: on time, late or out of order."""
        u = self.rng.random(2)
        deliver = t
        if u[0] < self.faults.late:
            deliver = t + float(self.rng.uniform(15.0, 90.0)) * 60.0
            self._delayed("late", deliver, msg_id, t)
        elif u[1] < self.faults.out_of_order:
            deliver = t + float(self.rng.uniform(5.0, 180.0))
            self._delayed("out_of_order", deliver, msg_id, t)
        self._send(deliver, measurements, msg_id)

    # -- sending ------------------------------------------------------------------------------

    def _encode(self, measurements: Sequence[Measurement], msg_id: str, sent: float) -> bytes:
        if self.spec.wire is WireFormat.SENML:
            return encode_senml(self.spec.device_id, measurements)
        return encode_readings(msg_id, utc(sent + self.offset), measurements)

    def _send(self, at: float, measurements: list[Measurement], msg_id: str) -> None:
        payload = self._encode(measurements, msg_id, at)
        if self.spec.wire is WireFormat.SENML:
            msg_id = senml_msg_id(payload)
        u = self.rng.random(2)
        # Stamped by a clock running beyond the gateway's tolerance: expected to be refused.
        future = self.offset > FUTURE_TOLERANCE_S and (
            max(m.measured_at.timestamp() for m in measurements) - at > FUTURE_TOLERANCE_S)
        if u[0] < self.faults.malformed:
            kind = malformed.KINDS[int(self.rng.integers(len(malformed.KINDS)))]
            broken = malformed.break_payload(
                kind, payload, measurements, self.spec.wire, other_device=self.other_device,
                encode=lambda ms: self._encode(ms, msg_id, at))
            payload = broken.payload
            if self.spec.wire is WireFormat.SENML:  # the gateway names it by its new bytes
                msg_id = senml_msg_id(payload)
            self._truth("malformed", at, msg_id=msg_id, kind=kind.value,
                        expected=broken.expected.value,
                        partial=kind in malformed.PARTIAL, future=future)
        if future:
            self._truth("future_timestamp", at, msg_id=msg_id, offset_s=round(self.offset, 3))
        self._emit(at, self.topic, payload)
        if u[1] < self.faults.duplicate:
            again = at + float(self.rng.uniform(1.0, 30.0))
            self._truth("duplicate", again, msg_id=msg_id, first_sent=iso(at))
            self._emit(again, self.topic, payload)

    def _emit(self, at: float, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.pending.append(Outbound(at, topic, payload, 1, retain))
