"""What the risk tier costs the alerting runner: `alerting.runner.assess_tiers` on a real ward.

Run as ``python benchmarks/bench_risk_runner.py [--patients N] [--every MINUTES]`` from the
repository root (defaults: 1,000 admitted patients, a stored NEWS2 score every 5 minutes for
4 days — a wearable at the runner's `SCORE_EVERY`, the heaviest case; 1,152 scores each).
Uses a real PostgreSQL (``VW_TEST_DATABASE_URL`` or the machine's at 127.0.0.1:5432) in a
throwaway schema. Calls it for the whole ward, as the sweep does per chunk, until nothing is
due (each call assesses at most ``risk_store.MAX_PER_CALL``), and reports calls and time per
call when: every tier is due (first assessment of the admission), one patient in ten has a new
NEWS2 total (a busy evaluator pass), every tier is stale (``REASSESS`` later); the last call of
each finds nothing due (the due query alone: what most batches and sweeps pay).

Not a test: figures depend on the machine and its load; compare ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ward_setup import NOW, POLICY, add_patients, throwaway_schema

from alerting import risk_store
from alerting.policy import load_policy
from alerting.runner import assess_tiers

STAY = dt.timedelta(days=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--every", type=int, default=5, help="minutes between stored scores")
    args = parser.parse_args()
    policy = load_policy(POLICY)
    with throwaway_schema() as conninfo, psycopg.connect(conninfo) as conn:
        ids = add_patients(conn, args.patients, NOW - STAY)
        # Totals drift 0..6 with the patient and the hour, so tiers differ across the ward.
        conn.execute(
            "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, "
            "complete, spo2_scale, sub_scores, missing, evidence) "
            "SELECT id, t, ((id + extract(hour FROM t)::int / 6) %% 7), "
            "CASE WHEN (id + extract(hour FROM t)::int / 6) %% 7 >= 5 THEN 'medium' "
            "ELSE 'low' END, false, true, 1, '{}', '{}', '[]' "
            "FROM unnest(%s::bigint[]) AS id, generate_series(%s::timestamptz, %s, %s) AS t",
            (ids, NOW - STAY, NOW - dt.timedelta(minutes=1), dt.timedelta(minutes=args.every)))
        conn.execute("ANALYZE")
        conn.commit()
        rows = conn.execute("SELECT count(*) FROM scores").fetchone()
        print(f"{args.patients:,} admitted patients, {rows[0] if rows else 0:,} stored scores "
              f"(one every {args.every} min for {STAY.days} days)")

        def drain(label: str, at: dt.datetime) -> None:
            """Calls (one per sweep chunk, every 15 s) until nothing is due at `at`."""
            times, assessed, episodes = [], 0, 0
            while True:
                start = time.perf_counter()
                with conn.transaction():
                    changes = assess_tiers(conn, ids, at, policy=policy)
                times.append(time.perf_counter() - start)
                done = conn.execute("SELECT count(*) FROM risk_tiers WHERE assessed_at = %s",
                                    (at,)).fetchone()
                episodes += len(changes)
                if done is None or done[0] == assessed:
                    break
                assessed = done[0]
            print(f"{label:38} {len(times):3} calls, per call mean "
                  f"{1000 * sum(times) / len(times):6.0f} ms, max {1000 * max(times):6.0f} ms"
                  f" ({assessed:,} assessed, {episodes:,} episode changes; the last call "
                  f"found nothing due: {1000 * times[-1]:.0f} ms)")

        drain("first assessment of every patient", NOW)
        tenth = ids[::10]
        conn.execute(
            "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, "
            "complete, spo2_scale, sub_scores, missing, evidence) SELECT id, %s, 6, "
            "'medium', false, true, 1, '{}', '{}', '[]' FROM unnest(%s::bigint[]) AS id "
            "ON CONFLICT DO NOTHING", (NOW + dt.timedelta(minutes=2), tenth))
        conn.commit()
        drain("one in ten with a new NEWS2 total", NOW + dt.timedelta(minutes=3))
        drain("every tier stale (REASSESS later)",
              NOW + risk_store.REASSESS + dt.timedelta(minutes=3))


if __name__ == "__main__":
    main()
