"""The message stream of a simulated ward, deterministic to the byte.

`Engine(scenario, seed=…, start=…)` builds the ward and yields every message its devices send,
in order of the simulated instant each reaches the broker: `Outbound(at, topic, payload, qos,
retain)`. The same scenario, seed and start give a byte-identical stream (a test hashes two
runs); ties are broken by device and per-device sequence, never by dict or set order.

Merging: each device knows its next event; a heap of devices gives the next one to step, and a
heap of produced messages (a device may produce messages for later: late delivery, bursts
after an offline spell, duplicates) releases each message once no device can produce an earlier
one — a device never produces a message dated before its own event.

Load runs split the ward by patient (`partition=(k, n)`: patients with index ≡ k mod n), so n
processes together produce exactly the devices of one run.

Ground truth (when given) also gets the ward's description, each deterioration's start and a
sample of every patient's true state every `truth_interval`.

Closed loop: `command(topic, payload, at)` hands the engine a command the platform sent to a
home hub while the stream is being consumed (`vw/v1/devices/{hub}/commands`); the patient
answers a full-set request or not (`simulators.homehub`, deterministic per command), and the
answer's readings join the stream at the instant they are taken: each device of the kit has an
answer event at that instant in the same heap as its regular events, and answers it from a
generator of its own without touching its schedule (`VirtualDevice.answer`). So a run with
commands is the run without them plus the answers' messages, and without commands the stream
is unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
from collections.abc import Iterator

from gateway.contract import Channel, decode_command, parse_topic
from simulators import homehub
from simulators.devices import Outbound, RunContext, VirtualDevice
from simulators.groundtruth import GroundTruth
from simulators.physiology import true_state
from simulators.scenario import Scenario
from simulators.sensors import HomeHub, make_devices
from simulators.ward import SimPatient, build_ward


class Engine:
    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int | None = None,
        start: dt.datetime | None = None,
        duration: dt.timedelta | None = None,
        truth: GroundTruth | None = None,
        partition: tuple[int, int] = (0, 1),
    ) -> None:
        k, n = partition
        if not 0 <= k < n:
            msg = f"partition {k} of {n} does not exist"
            raise ValueError(msg)
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.start = (start or scenario.start).astimezone(dt.UTC)
        span = duration if duration is not None else scenario.duration
        self.end: float | None = None if span is None else (self.start + span).timestamp()
        self.truth = truth
        self.patients: list[SimPatient] = build_ward(scenario, self.seed, self.start)
        self.mine = [p for p in self.patients if p.index % n == k]
        ctx = RunContext(self.start.timestamp(), scenario.faults,
                         scenario.status_interval.total_seconds(), truth, self.seed)
        self._describe()
        self.devices: list[VirtualDevice] = make_devices(
            self.patients, ctx, only={p.index for p in self.mine})
        self.sent = 0
        self._out: list[tuple[float, int, int, Outbound]] = []
        self._serial = 0
        self._emitted = self.start.timestamp()  # the instant of the last message yielded
        self.compliance = homehub.Compliance()
        self.answers: list[tuple[str, str, dt.datetime | None]] = []  # hub, command, answer
        # Home hub id → indices (in `devices`) of every device of that hub's patient.
        by_patient: dict[int, list[int]] = {}
        for i, d in enumerate(self.devices):
            by_patient.setdefault(d.patient.index, []).append(i)
        self._kits = {d.spec.device_id: by_patient[d.patient.index] for d in self.devices
                      if isinstance(d, HomeHub)}
        # Events to perform, (instant, device index, answer number): 0 is the device's next
        # regular event, n > 0 the answer to the command `_asked[n]` (ties: regular first).
        self._due = [(d.next_at, i, 0) for i, d in enumerate(self.devices)]
        heapq.heapify(self._due)
        self._asked: dict[int, str] = {}
        self._answer_serial = 0

    def command(self, topic: str, payload: bytes, at: dt.datetime) -> dt.datetime | None:
        """A command reaching a home hub at `at`; returns when the patient answers (or None)."""
        device_id, channel = parse_topic(topic)
        if channel is not Channel.COMMANDS:
            msg = f"{topic!r} is not a commands topic"
            raise ValueError(msg)
        command = decode_command(payload)
        kit = self._kits.get(device_id)
        if kit is None:
            return None  # not a home hub of this run (or of this partition)
        answered = homehub.answer_at(command, device_id, self.seed, self.compliance)
        if answered is not None and answered.timestamp() < max(at.timestamp(), self._emitted):
            answered = dt.datetime.fromtimestamp(max(at.timestamp(), self._emitted), dt.UTC)
        self.answers.append((device_id, command.command_id, answered))
        if self.truth is not None:
            self.truth.record("full_set_requested", at, device_id=device_id,
                              command_id=command.command_id, wake=command.wake,
                              answered_at=None if answered is None else answered.isoformat())
        if answered is None or (self.end is not None and answered.timestamp() >= self.end):
            return None
        for i in kit:  # every device of the patient's kit (a pump has nothing to add)
            self._answer_serial += 1
            self._asked[self._answer_serial] = command.command_id
            heapq.heappush(self._due, (answered.timestamp(), i, self._answer_serial))
        return answered

    def _describe(self) -> None:
        truth = self.truth
        if truth is None:
            return
        s = self.scenario
        truth.record("scenario", self.start, scenario=s.name, seed=self.seed,
                     patients=s.patients, duration_s=None if self.end is None
                     else self.end - self.start.timestamp())
        for p in self.mine:
            prof = p.profile
            truth.record(
                "patient", self.start, patient_key=p.nhs_number, patient_label=p.label,
                trajectory=p.trajectory.value, pathway=p.pathway.value, source=p.source.value,
                spo2_scale=prof.spo2_scale, home_oxygen=prof.home_oxygen,
                onset=None if prof.onset is None else prof.onset.isoformat(),
                devices=[{"device_id": d.device_id, "type": d.type.value, "wire": d.wire.value}
                         for d in p.devices])

    def _sample_truth(self, at: float, reported: set[int]) -> None:
        truth = self.truth
        assert truth is not None  # noqa: S101 - only called with ground truth
        when = dt.datetime.fromtimestamp(at, dt.UTC)
        for p in self.mine:
            onset = p.profile.onset
            if onset is not None and onset <= when and p.index not in reported:
                reported.add(p.index)
                truth.record("deterioration_start", onset, patient_key=p.nhs_number,
                             patient_label=p.label, trajectory=p.trajectory.value)
            truth.true_vitals(p.nhs_number, p.label, true_state(p.profile, when),
                              p.profile.spo2_scale)

    def _release(self, horizon: float) -> Iterator[Outbound]:
        """Every produced message due by `horizon`, in delivery order."""
        out = self._out
        while out and out[0][0] <= horizon:
            self.sent += 1
            message = heapq.heappop(out)[3]
            self._emitted = message.at
            yield message

    def messages(self) -> Iterator[Outbound]:
        """Every message in delivery order; endless when the run has no duration."""
        devices, due, out = self.devices, self._due, self._out
        truth_step = self.scenario.truth_interval.total_seconds()
        truth_next = self.start.timestamp() if self.truth is not None else float("inf")
        reported: set[int] = set()
        end = self.end if self.end is not None else float("inf")
        while True:
            horizon = min(due[0][0] if due else float("inf"), truth_next, end)
            yield from self._release(horizon)
            if horizon >= end:
                break
            if truth_next <= horizon:
                self._sample_truth(truth_next, reported)
                truth_next += truth_step
                continue
            at, i, n = heapq.heappop(due)
            if n:
                produced = devices[i].answer(at, self._asked.pop(n))
            else:
                produced = devices[i].step()
                heapq.heappush(due, (devices[i].next_at, i, 0))
            for message in produced:
                self._serial += 1
                heapq.heappush(out, (message.at, i, self._serial, message))
        # A finite run ends at `end`; what devices still hold for later (late deliveries,
        # duplicates) is delivered after it, as it would be.
        yield from self._release(float("inf"))
        if self.truth is not None:
            self.truth.summary(end, messages=self.sent)


def stream_digest(messages: Iterator[Outbound]) -> tuple[str, int]:
    """SHA-256 over (at, topic, payload, qos, retain) of every message, and their count."""
    digest = hashlib.sha256()
    count = 0
    for m in messages:
        digest.update(repr(m.at).encode())
        digest.update(b"\0" + m.topic.encode() + b"\0")
        digest.update(len(m.payload).to_bytes(4, "big") + m.payload)
        digest.update(bytes((m.qos, m.retain)))
        count += 1
    return digest.hexdigest(), count
