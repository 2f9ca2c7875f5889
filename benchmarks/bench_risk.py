"""How well the risk tier predicts deterioration, beside NEWS2 alone, on simulated wards.

Run as ``python benchmarks/bench_risk.py [--max-patients N]`` from the repository root.

For every shipped scenario and three seeds (the scenario's seed, +1, +2), each patient's
course is run in-process through the pure functions (no broker, no database): the
simulator's true physiology (`simulators.physiology`), its risk facts and adherence
(`simulators.risk`), device noise on each spot check, `alerting.news2` for every set done,
LACE/HOSPITAL from the facts, and `alerting.risk_tier.assess` every hour. Patients are
followed from 48 h before the scenario's start (step-down: from their discharge) so the 24-72 h
windows are filled before the scenario's deteriorations begin; moments are scored hourly from
24 h before the start to 48 h after it.

* **AUROC**: at each hourly moment where the *true* NEWS2 is below 5, does the predictor rank
  the moments followed by a true NEWS2 >= 5 within 24 h above the others? Predictors: the
  tier's points, and the latest observed NEWS2 total (NEWS2 alone).
* **12 h lead**: of the patients whose true NEWS2 first reached 5 on the ward, the share whose
  tier was already rising/high 12 h before; for NEWS2 alone, the share whose latest observed
  total was >= 5 (the chart's urgent threshold) or >= 3 then.
* **Flag rate**: the share of moments *not* followed by a deterioration that the tier puts in
  rising/high (and NEWS2 >= 3 does): the price of the lead.

Reported with the simulator's prodrome assumption on (deteriorating patients miss more sets
from 6-30 h before onset) and off. The weights are not fitted to any of this.
Not a test: the figures depend on the simulator's assumptions, documented in
`simulators/risk.py`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting import hospital_score, lace, risk_tier
from alerting.news2 import Consciousness, Observations, score
from simulators import risk as simrisk
from simulators.physiology import TrueState, true_state
from simulators.scenario import load, shipped_names
from simulators.ward import SimPatient, build_ward, patient_rng
from ward.domain.patients import Pathway

HOUR = dt.timedelta(hours=1)
HISTORY = dt.timedelta(hours=48)  # followed this long before the scenario's start
FIRST_MOMENT = dt.timedelta(hours=-24)
LAST_MOMENT = dt.timedelta(hours=48)
HORIZON = dt.timedelta(hours=24)  # "deterioration in the next 24 h"
LEAD = dt.timedelta(hours=12)
THRESHOLD = 5  # NEWS2 Chart 2: urgent response
_NOISE_STREAM = 0xB1A5
# Device noise per spot check (1 SD): typical consumer-device repeatability.
_NOISE = {"resp_rate": 1.5, "spo2": 1.0, "systolic_bp": 5.0, "pulse": 3.0, "temperature": 0.15}


def _news2(state: TrueState, scale: int, rng: np.random.Generator | None = None) -> int:
    def noisy(name: str, value: float) -> float:
        return value if rng is None else value + float(rng.normal(0.0, _NOISE[name]))

    return score(Observations(
        resp_rate=max(4.0, noisy("resp_rate", state.resp_rate)),
        spo2=min(100.0, noisy("spo2", state.spo2)), on_oxygen=state.on_oxygen,
        systolic_bp=noisy("systolic_bp", state.systolic_bp), pulse=noisy("pulse", state.pulse),
        consciousness=Consciousness(state.consciousness),
        temperature=noisy("temperature", state.temperature), spo2_scale=scale)).total


@dataclass
class Tally:
    labels: list[int]
    tier_points: list[float]
    dynamic_points: list[float]
    news2: list[float]
    tier_flag: list[bool]
    news2_flag3: list[bool]
    lead_tier: list[bool]
    lead_dynamic: list[bool]
    lead_news2_5: list[bool]
    lead_news2_3: list[bool]

    @classmethod
    def empty(cls) -> Tally:
        return cls([], [], [], [], [], [], [], [], [], [])

    def add(self, other: Tally) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))


def auroc(labels: list[int], values: list[float]) -> float:
    """Mann-Whitney AUROC with mid-ranks for ties."""
    y = np.asarray(labels)
    x = np.asarray(values, dtype=float)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


# The factors measured from the stream; the others (readmission score, pathway) are static
# facts whose link to deterioration is an assumption of the simulator (simulators/risk.py).
_STATIC = frozenset({"readmission", "pathway"})


def _dynamic(a: risk_tier.Assessment) -> int:
    return sum(c.points for c in a.contributions if c.factor not in _STATIC)


def run_patient(patient: SimPatient, seed: int, start: dt.datetime, prodrome: bool,
                tally: Tally) -> None:
    prof = patient.profile
    admit = start - HISTORY
    if patient.pathway is Pathway.STEP_DOWN and prof.discharged_at is not None:
        admit = max(admit, prof.discharged_at)
    sim = simrisk.draw(patient, seed, prodrome=prodrome)
    la = lace.from_factors(sim.factors)
    ho = hospital_score.from_factors(sim.factors)
    per_day = min(24, patient.devices[0].spot_checks_per_day)
    interval = dt.timedelta(hours=24 / per_day)
    offset = dt.timedelta(minutes=(patient.index * 7) % int(interval.total_seconds() // 60))
    noise = patient_rng(seed, patient.index, _NOISE_STREAM)
    end = start + LAST_MOMENT
    scheduled: list[dt.datetime] = []
    scores: list[risk_tier.ScorePoint] = []
    at = admit + offset
    while at <= end:
        scheduled.append(at)
        if simrisk.set_done(sim, patient, seed, at):
            scores.append(risk_tier.ScorePoint(at, _news2(true_state(prof, at),
                                                          prof.spo2_scale, noise)))
        at += interval
    truth_times = [admit + k * HOUR for k in range(int((end + HORIZON - admit) / HOUR) + 1)]
    truth = [_news2(true_state(prof, t), prof.spo2_scale) for t in truth_times]
    crossing: dt.datetime | None = None
    for k in range(1, len(truth)):
        if truth[k] >= THRESHOLD and truth[k - 1] < THRESHOLD and truth[0] < THRESHOLD:
            crossing = truth_times[k]
            break

    def assess(now: dt.datetime) -> risk_tier.Assessment:
        expected = sum(1 for s in scheduled if now - HORIZON < s <= now)
        return risk_tier.assess(risk_tier.RiskInputs(
            scores, expected_sets_24h=expected, lace=la.total if la else None,
            hospital=ho.total if ho else None,
            step_up=patient.pathway is Pathway.STEP_UP), now)

    def latest(now: dt.datetime) -> int:
        seen = [s.total for s in scores if s.at <= now]
        return seen[-1] if seen else 0

    for k, t in enumerate(truth_times):
        if not start + FIRST_MOMENT <= t <= end or truth[k] >= THRESHOLD:
            continue
        ahead = truth[k + 1:k + 1 + int(HORIZON / HOUR)]
        label = int(any(v >= THRESHOLD for v in ahead))
        a = assess(t)
        n2 = latest(t)
        tally.labels.append(label)
        tally.tier_points.append(float(a.points))
        tally.dynamic_points.append(float(_dynamic(a)))
        tally.news2.append(float(n2))
        if not label:
            tally.tier_flag.append(a.tier is not risk_tier.Tier.LOW)
            tally.news2_flag3.append(n2 >= 3)
    if crossing is not None and crossing - LEAD >= admit + HORIZON:
        before = crossing - LEAD
        lead = assess(before)
        tally.lead_tier.append(lead.tier is not risk_tier.Tier.LOW)
        tally.lead_dynamic.append(risk_tier.tier_of(_dynamic(lead)) is not risk_tier.Tier.LOW)
        tally.lead_news2_5.append(latest(before) >= THRESHOLD)
        tally.lead_news2_3.append(latest(before) >= 3)


def _share(flags: list[bool]) -> str:
    return f"{100 * sum(flags) / len(flags):5.1f} % ({sum(flags)}/{len(flags)})" if flags else "  n/a"


def _line(name: str, seed: str, tally: Tally) -> None:
    print(f"{name:15} {seed:>6} {len(tally.labels):>8} {sum(tally.labels):>5} "
          f"{auroc(tally.labels, tally.tier_points):>10.3f} "
          f"{auroc(tally.labels, tally.news2):>11.3f}  {_share(tally.lead_tier):>22}"
          f"  {_share(tally.lead_news2_5):>22}  {_share(tally.lead_news2_3):>22}  "
          f"{_share(tally.tier_flag):>22}  {_share(tally.news2_flag3):>22}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-patients", type=int, default=60,
                        help="patients per scenario and seed (the first N of the ward)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    print(f"risk tier vs NEWS2 alone; up to {args.max_patients} patients per scenario/seed; "
          "moments hourly, true NEWS2 < 5 at the moment")
    for prodrome in (True, False):
        print(f"\n== simulator prodrome (missed sets before onset): {'on' if prodrome else 'off'}")
        print(f"{'scenario':15} {'seed':>6} {'moments':>8} {'pos':>5} {'AUROC tier':>10} "
              f"{'AUROC NEWS2':>11}  {'tier r/h 12h before':>22}  {'NEWS2>=5 12h before':>22}  "
              f"{'NEWS2>=3 12h before':>22}  {'tier flag rate (neg)':>22}  "
              f"{'NEWS2>=3 flag rate':>22}")
        pooled = Tally.empty()
        for name in shipped_names():
            scenario = load(name)
            for seed in (scenario.seed, scenario.seed + 1, scenario.seed + 2):
                tally = Tally.empty()
                for patient in build_ward(scenario, seed, scenario.start)[:args.max_patients]:
                    run_patient(patient, seed, scenario.start, prodrome, tally)
                pooled.add(tally)
                _line(name, str(seed), tally)
        _line("all (pooled)", "", pooled)
        print(f"{'':22} dynamic factors only (no readmission score, no pathway): AUROC "
              f"{auroc(pooled.labels, pooled.dynamic_points):.3f}, rising/high 12 h before "
              f"{_share(pooled.lead_dynamic).strip()}")
    print(f"\n{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
