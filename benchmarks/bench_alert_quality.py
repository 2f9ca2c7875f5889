"""Alert quality: the table of issue 10, over the shipped scenarios and any scenario file.

Run as ``python benchmarks/bench_alert_quality.py [--seeds 1 2 3] [--write DIR] [--json FILE]
[SCENARIO|FILE…]``
from the repository root (default: quiet-ward, noisy-devices, deteriorations and
benchmarks/scenarios/*.yaml; seeds 1 2 3). The ``holdout-*.yaml`` files there are held out:
written for the earlier-warning work and never used to choose a rule or a threshold (report
their figures; do not tune on them).

**In-process and pure**: each scenario's simulator stream (`simulators.engine.Engine`, the
exact bytes a run publishes) is decoded by the gateway's own pure decoder
(`gateway.decode.decode`, with the message's arrival as the gateway's clock, so readings dated
too far ahead are refused as live), deduplicated on the storage key (device, code,
measured-at), and replayed through `alerting.replay.run` — the same artefact filter, baselines,
rules, episodes, sweeps and escalation the live path runs — with the ground truth the run
writes. No broker or database: deterministic and fast. ``--write DIR`` also writes each run's
``readings.jsonl`` and ``truth.jsonl``; ``vward replay DIR/…/readings.jsonl --truth
DIR/…/truth.jsonl`` then prints the same figures (it takes each patient's SpO2 scale from the
ground truth, as this benchmark does).

Rows (goal): clinical episodes per patient-day of patients who did **not** deteriorate on
quiet-ward (≤ 0.5) and noisy-devices (≤ 2); of all patients on deteriorations (≤ 1.5), with
every deterioration caught; continuous-kit deteriorations caught before the true NEWS2 reached
7 (all) and their median lead (≥ 4 h); spot-check kits' worst delay after the first measured
complete NEWS2 ≥ 5 (< 5 min). Not a test: a measurement.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting import replay
from alerting.care_plan import CarePlan
from alerting.policy import load_policy, policy_path
from alerting.replay import ReplayReading, TruthEvent
from gateway.decode import DecodedMessage, Limits, decode
from simulators.engine import Engine
from simulators.groundtruth import GroundTruth
from simulators.scenario import DeviceType, load
from ward.commands.simulate import news2_total

SHIPPED = ("quiet-ward", "noisy-devices", "deteriorations")
OWN = sorted(str(p) for p in (Path(__file__).resolve().parent / "scenarios").glob("*.yaml"))


def _at(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def simulate(name: str, seed: int) -> tuple[list[ReplayReading], list[TruthEvent],
                                            dict[str, CarePlan], dict[str, str], list[dict[str, Any]]]:
    scenario = load(name)
    truth = GroundTruth(keep=True, scorer=news2_total)
    engine = Engine(scenario, seed=seed, truth=truth)
    owner = {d.device_id: p.nhs_number for p in engine.patients for d in p.devices}
    kits = {p.nhs_number: "continuous" if any(d.type is DeviceType.WEARABLE_OXIMETER
                                              for d in p.devices) else "spot"
            for p in engine.patients}
    plans = {p.nhs_number: CarePlan(p.index + 1, spo2_scale=2, spo2_target_low=88.0,
                                    spo2_target_high=92.0)
             for p in engine.patients if p.profile.spo2_scale == 2}
    limits = Limits()
    seen: dict[tuple[str, str, dt.datetime], ReplayReading] = {}
    for message in engine.messages():
        decoded = decode(message.topic, message.payload, _at(message.at), limits)
        if not isinstance(decoded, DecodedMessage) or decoded.device_id not in owner:
            continue
        for r in decoded.readings:
            key = (decoded.device_id, r.code, r.measured_at)
            if key not in seen:
                seen[key] = ReplayReading(owner[decoded.device_id], r.code, r.measured_at,
                                          r.value, decoded.device_id)
    events = truth.events or []
    facts = [TruthEvent(str(e["patient_key"]), str(e["event"]),
                        dt.datetime.fromisoformat(str(e["at"]).replace("Z", "+00:00")), e)
             for e in events if e.get("patient_key") is not None]
    return list(seen.values()), facts, plans, kits, events


def _write(folder: Path, readings: list[ReplayReading], events: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "readings.jsonl").open("w", encoding="utf-8") as out:
        for r in readings:
            out.write(json.dumps({"patient_key": r.patient, "code": r.code,
                                  "measured_at": r.measured_at.isoformat(), "value": r.value,
                                  "device_id": r.device_id}) + "\n")
    with (folder / "truth.jsonl").open("w", encoding="utf-8") as out:
        for e in events:
            out.write(json.dumps(e, default=str) + "\n")


def _one(job: tuple[str, int, Path | None]) -> tuple[str, dict[str, Any]]:
    name, seed, write = job
    started = time.perf_counter()
    policy = load_policy(policy_path())
    readings, truth, plans, kits, events = simulate(name, seed)
    report = replay.run(readings, policy.ack_within, plans=plans, truth=truth, policy=policy,
                        kits=kits)
    summary = report.summary()
    summary["seconds"] = time.perf_counter() - started
    summary["readings"] = len(readings)
    if write:
        _write(write / f"{Path(name).stem}-seed{seed}", readings, events)
    print(f"  {Path(name).stem} seed {seed}: {len(readings):,} readings, "
          f"{summary['patient_days']:.0f} patient-days, {summary['seconds']:.0f} s",
          file=sys.stderr)
    return name, summary


def _fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help="shipped scenario names or files")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--write", type=Path, help="also write readings/truth JSONL here")
    parser.add_argument("--json", type=Path, help="also write every summary as JSON to this file")
    parser.add_argument("--processes", type=int, default=2, help="parallel runs (default 2)")
    args = parser.parse_args()
    names = args.scenarios or [*SHIPPED, *OWN]
    jobs = [(name, seed, args.write) for name in names for seed in args.seeds]
    results: dict[str, list[dict[str, Any]]] = {}
    # Runs are independent and deterministic: spread them over processes.
    with multiprocessing.Pool(args.processes) as pool:
        for name, summary in pool.imap(_one, jobs):
            results.setdefault(name, []).append(summary)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print(f"{'scenario':<22}{'seed':>5}{'quiet/d':>9}{'det/d':>8}{'all/d':>8}{'pages/d':>9}"
          f"{'caught':>8}{'wear<7':>8}{'lead7 h':>9}{'lead5 h':>9}{'spot min':>10}")
    for name, runs in results.items():
        for seed, s in zip(args.seeds, runs, strict=True):
            g = s["groups"]
            d = s["deteriorations"]
            cont = s["per_kit"].get("continuous", {})
            spot = s["per_kit"].get("spot", {})
            print(f"{Path(name).stem:<22}{seed:>5}"
                  f"{g['not_deteriorated']['clinical_episodes_per_patient_day']:>9.2f}"
                  f"{g['deteriorated']['clinical_episodes_per_patient_day']:>8.2f}"
                  f"{g['all']['clinical_episodes_per_patient_day']:>8.2f}"
                  f"{g['all']['pages_per_patient_day']:>9.2f}"
                  f"{d['observable_caught']:>4}/{d['observable']:<3}"
                  f"{cont.get('caught_before_7', 0):>4}/{cont.get('crossed_7', 0):<3}"
                  f"{_fmt(cont.get('median_lead_7_h'), '+.1f'):>9}"
                  f"{_fmt(d['median_lead_5_h'], '+.1f'):>9}"
                  f"{_fmt(spot.get('max_minutes_after_first_set_5'), '+.0f'):>10}")
        quiet = [r["groups"]["not_deteriorated"]["clinical_episodes_per_patient_day"] for r in runs]
        print(f"{'':<22}{'mean':>5}{statistics.fmean(quiet):>9.2f}")
    print("\nquiet/d: clinical episodes per patient-day, patients who did not deteriorate "
          "(goal quiet-ward <= 0.5, noisy-devices <= 2); det/d: patients who did; all/d: all "
          "(goal deteriorations <= 1.5); caught: deteriorations with a clinical signal within "
          "48 h of onset, of those the platform had readings for after the true NEWS2 reached 5 "
          "(goal all); wear<7: continuous kits caught before true NEWS2 7 (goal "
          "all); lead7: their median lead (goal >= 4 h); spot min: spot kits' worst delay after "
          "the first measured complete NEWS2 >= 5 (goal < 5 min; negative = earlier).")


if __name__ == "__main__":
    main()
