"""Alerting throughput: scalar and vectorised NEWS2, full rule evaluation, and batch-to-alerts.

Run as ``python benchmarks/bench_alerting.py [PATIENTS]`` from the repository root (default
1,000 patients). The last figure uses a real PostgreSQL (``VW_TEST_DATABASE_URL`` or the
machine's at 127.0.0.1:5432, in a throwaway schema): it commits one batch of readings for
every patient through the reading store, then times ``evaluate_after_commit`` until the
alerts, events, scores and outbox rows are stored and committed. Not a test: figures depend
on the machine.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_news2 import as_observations, random_arrays
from ward_setup import NOW, POLICY, add_patients, throwaway_schema

from alerting import rules
from alerting.care_plan import CarePlan
from alerting.news2 import score
from alerting.news2_vector import score_arrays
from alerting.observations import Latest
from alerting.policy import load_policy
from alerting.runner import evaluate_after_commit
from alerting.snapshot import PatientSnapshot
from ward.db.store import ReadingStore
from ward.domain.readings import Reading
from ward.domain.vitals import spec_for


def rate(label: str, n: int, seconds: float, unit: str) -> None:
    print(f"{label:<34}{n:>11,} in {seconds:7.3f} s = {n / seconds:>13,.0f} {unit}/s")


def vitals(rng: np.random.Generator) -> dict[str, float]:
    return {"spo2": float(rng.integers(86, 100)), "pulse": float(rng.integers(45, 140)),
            "resp_rate": float(rng.integers(8, 30)), "temperature": round(float(rng.uniform(35, 40)), 1),
            "systolic_bp": float(rng.integers(85, 200)), "on_oxygen": float(rng.random() < 0.2),
            "consciousness": float(rng.random() < 0.05)}


def main() -> None:
    patients = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rng = np.random.default_rng(2017)
    arrays = random_arrays(2_000_000, rng)
    observations = as_observations(arrays, 50_000)
    start = time.perf_counter()
    for obs in observations:
        score(obs)
    rate("scalar NEWS2", len(observations), time.perf_counter() - start, "scores")
    score_arrays(random_arrays(1000, rng))
    start = time.perf_counter()
    score_arrays(arrays)
    rate("vectorised NEWS2", 2_000_000, time.perf_counter() - start, "scores")

    snapshots = [PatientSnapshot(i, {c: Latest(c, NOW, v, "d") for c, v in vitals(rng).items()},
                                 CarePlan(i)) for i in range(1, 20_001)]
    start = time.perf_counter()
    for s in snapshots:
        rules.evaluate(s, NOW)
    rate("all rules per patient (pure)", len(snapshots), time.perf_counter() - start, "patients")

    policy = load_policy(POLICY)
    with throwaway_schema() as conninfo:
        with psycopg.connect(conninfo) as conn:
            ids = add_patients(conn, patients)
            batch = [Reading(f"dev-{pid}", code, NOW, value, spec_for(code).unit, pid, NOW)
                     for pid in ids for code, value in vitals(rng).items()]
            ReadingStore().write(conn, batch)
            conn.commit()
            start = time.perf_counter()
            changes = evaluate_after_commit(conn, ids, NOW, policy=policy)
            first = time.perf_counter() - start
            later = NOW + dt.timedelta(minutes=1)
            batch2 = [Reading(r.device_id, r.code, later, r.value, r.unit, r.patient_id, later) for r in batch]
            ReadingStore().write(conn, batch2)
            conn.commit()
            start = time.perf_counter()
            updates = evaluate_after_commit(conn, ids, later, policy=policy)
            second = time.perf_counter() - start
            alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()
            outbox = conn.execute("SELECT count(*) FROM notification_outbox").fetchone()
        print(f"batch of {patients:,} patients ({len(batch):,} readings) -> alerts stored: "
              f"{first * 1000:.0f} ms ({len(changes):,} alert changes; {alerts[0] if alerts else 0:,} "
              f"alerts, {outbox[0] if outbox else 0:,} outbox rows)")
        print(f"next batch, same patients (alerts updated): {second * 1000:.0f} ms "
              f"({len(updates):,} alert changes)")


if __name__ == "__main__":
    main()
