"""Full-set requests in a closed loop: how many the platform makes, how many are answered, how
fast, and what they buy — the time from a deterioration's onset to the first *complete*
NEWS2 set showing medium risk (≥ 5), with requests on and off.

Run as ``python benchmarks/bench_requests.py [SCENARIO ...] [--seeds N] [--hours H]`` from the
repository root (default: ``deteriorations``, 3 seeds, the scenario's duration). Pure and
offline: the simulator's stream is decoded by the gateway's decoder, each patient is scored by
the alerting rules after each of their messages (as the gateway's hook does after a commit),
and :func:`alerting.requests.decide` / :func:`~alerting.requests.settle` run exactly as in
``alerting.tasks.follow_up``. A request becomes a ``full_set`` command on the wire contract,
handed to the engine's home hub (``simulators.homehub``), whose answer joins the stream.
Not measured here: the rising-trend trigger (no stored score history offline) and doubtful
readings (the artefact stage is another engineer's).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Importable without installing the package: the repository root holds the packages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting import requests, rules
from alerting.care_plan import CarePlan
from alerting.observations import Latest
from alerting.requests import PastRequest, RequestConfig, Status
from alerting.snapshot import PatientSnapshot
from gateway.contract import (
    Channel,
    CommandKind,
    CommandPayload,
    commands_topic,
    encode_command,
    parse_topic,
)
from gateway.decode import DecodedMessage, Limits, decode_readings
from simulators.engine import Engine
from simulators.scenario import DeviceType, load

MEDIUM = 5
# The command reaches the hub a second after the evaluation (outbox → broker → hub).
DELIVERY = dt.timedelta(seconds=1)
CONFIG = RequestConfig()


@dataclass
class Run:
    requests: int = 0
    wake: int = 0
    stable_requests: int = 0  # for patients who never deteriorate in the run (ground truth)
    by_reason: dict[str, int] = field(default_factory=dict)
    done: int = 0
    missed: int = 0
    answer_minutes: list[float] = field(default_factory=list)
    confirm_hours: list[float] = field(default_factory=list)  # onset → complete NEWS2 ≥ 5
    confirmed: dict[int, dt.datetime] = field(default_factory=dict)
    deteriorating: int = 0
    patient_days: float = 0.0
    end: dt.datetime = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)  # set to the run's end


class Loop:
    """One closed-loop run: the platform's side (scores, requests) over the engine's stream."""

    def __init__(self, name: str, seed: int, hours: float | None, *, ask: bool) -> None:
        scenario = load(name)
        span = dt.timedelta(hours=hours) if hours else scenario.duration or dt.timedelta(days=1)
        self.engine = Engine(scenario, seed=seed, duration=span)
        self.ask = ask
        self.owner: dict[str, int] = {}
        self.hub_of: dict[int, str] = {}
        for p in self.engine.patients:
            for d in p.devices:
                self.owner[d.device_id] = p.index
                if d.type is DeviceType.HOME_HUB:
                    self.hub_of[p.index] = d.device_id
        self.plans = {p.index: CarePlan(p.index, spo2_scale=p.profile.spo2_scale)
                      for p in self.engine.patients}
        self.onset = {p.index: p.profile.onset for p in self.engine.patients
                      if p.profile.onset is not None and p.profile.onset < self.engine.start + span}
        self.latest: dict[int, dict[str, Latest]] = {p.index: {} for p in self.engine.patients}
        self.last: dict[int, PastRequest] = {}
        self.confirmed: dict[int, dt.datetime] = {}
        self.result = Run(deteriorating=len(self.onset),
                          patient_days=len(self.engine.patients) * span / dt.timedelta(days=1),
                          end=self.engine.start + span)

    def run(self) -> Run:
        limits = Limits()
        for message in self.engine.messages():
            device_id, channel = parse_topic(message.topic)
            if channel not in (Channel.READINGS, Channel.SENML) or device_id not in self.owner:
                continue
            now = dt.datetime.fromtimestamp(message.at, dt.UTC)
            decoded = decode_readings(message.topic, message.payload, now, limits)
            if isinstance(decoded, DecodedMessage):
                self._evaluate(self.owner[device_id], device_id, decoded, now)
        self.result.confirm_hours = [(self.confirmed[p] - self.onset[p]).total_seconds() / 3600
                                     for p in self.confirmed]
        self.result.confirmed = dict(self.confirmed)
        return self.result

    def _evaluate(self, pid: int, device_id: str, decoded: DecodedMessage,
                  now: dt.datetime) -> None:
        latest, result = self.latest[pid], self.result
        for r in decoded.readings:
            known = latest.get(r.code)
            if known is None or r.measured_at >= known.measured_at:
                latest[r.code] = Latest(r.code, r.measured_at, r.value, device_id)
        evaluation = rules.evaluate(PatientSnapshot(pid, latest, self.plans[pid]), now)
        score, used = evaluation.score, evaluation.observation_set.used
        onset = self.onset.get(pid)
        if (onset is not None and pid not in self.confirmed and score is not None
                and score.complete and score.total >= MEDIUM and now >= onset):
            self.confirmed[pid] = now
        past = self.last.get(pid)
        if past is not None and past.status is Status.OPEN:
            settled = requests.settle(past, score, used, now)
            if settled is not None:
                missed = settled.status is Status.MISSED
                self.last[pid] = past = PastRequest(past.id, past.requested_at, past.due_at,
                                                    settled.status, past.reason,
                                                    past.misses + 1 if missed else 0)
                if settled.status is Status.DONE:
                    result.done += 1
                    result.answer_minutes.append(
                        (settled.at - past.requested_at).total_seconds() / 60)
                else:
                    result.missed += 1
        if not self.ask:
            return
        decision = requests.decide(score, now, last=past,
                                   last_full_set_at=requests.full_set_at(score, used),
                                   config=CONFIG)
        if decision is None:
            return
        result.requests += 1
        result.stable_requests += pid not in self.onset
        self.last[pid] = PastRequest(result.requests, now, decision.due_at, Status.OPEN,
                                     decision.reason, past.misses if past is not None else 0)
        result.wake += decision.wake
        result.by_reason[decision.reason.value] = result.by_reason.get(decision.reason.value, 0) + 1
        hub = self.hub_of.get(pid)
        if hub is not None:
            command = CommandPayload(command_id=f"task-{result.requests}",
                                     kind=CommandKind.FULL_SET, issued_at=now,
                                     due_at=decision.due_at, reason=decision.reason.value,
                                     detail=decision.detail[:500], wake=decision.wake)
            self.engine.command(commands_topic(hub), encode_command(command), now + DELIVERY)


def run(name: str, seed: int, hours: float | None, *, ask: bool) -> Run:
    return Loop(name, seed, hours, ask=ask).run()


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=["deteriorations"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hours", type=float, default=None)
    args = parser.parse_args()
    print("scenario        seed  requests/pt-day  stable-pt reqs   wake  answered  missed  "
          "median answer min  | onset→complete NEWS2≥5: caught, median h (asking / not asking)"
          "  | earlier when asking: patients, median h")
    for name in args.scenarios:
        base = load(name).seed
        for seed in range(base, base + args.seeds):
            on = run(name, seed, args.hours, ask=True)
            off = run(name, seed, args.hours, ask=False)
            off_end = off.end
            answered = on.done / on.requests if on.requests else 0.0
            # Paired: the two runs differ only by the answers (simulators.devices), so a
            # patient confirmed sooner when asking gained exactly that time (to the end of
            # the run when never confirmed without asking: a lower bound).
            gains = [((off.confirmed.get(p) or off_end) - t).total_seconds() / 3600
                     for p, t in on.confirmed.items()
                     if t < (off.confirmed.get(p) or off_end)]

            print(f"{name:<15} {seed:>4}  {on.requests / on.patient_days:>15.2f}  "
                  f"{on.stable_requests:>15}  {on.wake:>4}  "
                  f"{on.done:>4} ({answered:>4.0%})  {on.missed:>6}  "
                  f"{_median(on.answer_minutes):>17}  | {len(on.confirm_hours)}/{on.deteriorating}"
                  f" {_median(on.confirm_hours)} h / {len(off.confirm_hours)}/{off.deteriorating}"
                  f" {_median(off.confirm_hours)} h  | {len(gains)}, {_median(gains)} h"
                  f"   reasons {on.by_reason}", flush=True)


if __name__ == "__main__":
    main()
