"""Benchmark the gateway's ingest thread without MQTT: decode → plan → `write_batch` (alerting
queue on), per reading: this process's CPU and its PostgreSQL backend's CPU, per stage.

Usage:
    python benchmarks/bench_write_batch.py [--batches 200] [--batch 500] [--rounds 2]
        [--code DIR ...]

Every `--code` tree (an export of another revision: `git archive REV | tar -x -C DIR`) and
this tree run the same load in child processes of their own, interleaved A, B, A, B for
`--rounds` rounds, each in a throwaway schema of the database in VW_DATABASE_URL (the local
PostgreSQL by default) with 1,000 devices registered and assigned. The load is the reference
harness's: one reading a message, device k % 1,000, the codes in rotation, so a batch of
500 touches 500 patients' `latest_readings` rows. Backend CPU is read from
/proc/<backend pid>/stat (same machine; clock ticks, so runs of 100,000 readings and more).
Only figures of one invocation compare (issue 14).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEVICES = 1000
# The reference harness's codes and base values (../shared/bench/common.py CODES).
CODES = (("spo2", "%", 97), ("pulse", "/min", 72), ("resp_rate", "/min", 16),
         ("temperature", "Cel", 36.8), ("systolic_bp", "mm[Hg]", 124))


def _backend_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child(batches: int, size: int) -> dict[str, float]:
    """One run in this process (the tree on sys.path): figures per reading, in µs."""
    import psycopg

    from gateway.contract import Measurement, encode_readings, readings_topic
    from gateway.decode import Limits, decode
    from gateway.directory import DeviceDirectory
    from gateway.pipeline import plan_batch
    from gateway.sink import write_batch
    from ward.db.connect import throwaway_schema
    from ward.db.registry import device_directory
    from ward.db.store import ReadingStore

    base = os.environ.get("VW_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    with throwaway_schema(base, "bwb_") as (_, url), psycopg.connect(url) as conn:
        conn.execute(
            "WITH p AS (INSERT INTO patients (nhs_number, given_name, family_name, "
            "date_of_birth) SELECT (9000000000 + k)::text, 'Bench', 'dev-' || lpad(k::text, "
            "5, '0'), '1950-01-01' FROM generate_series(0, %s - 1) k "
            "RETURNING id AS patient_id, family_name AS device_id), "
            "d AS (INSERT INTO devices (id, kind) SELECT device_id, 'pulse_oximeter' FROM p "
            "RETURNING pk, id) INSERT INTO device_assignments (device_pk, patient_id, during) "
            "SELECT d.pk, p.patient_id, tstzrange('2020-01-01', NULL) FROM p JOIN d "
            "ON d.id = p.device_id", (DEVICES,))
        conn.commit()
        directory = DeviceDirectory()
        directory.replace(device_directory(conn), dt.datetime.now(dt.UTC))
        conn.commit()
        store = ReadingStore()
        if hasattr(store, "prepare_session"):
            store.prepare_session(conn)
        limits = Limits()
        backend = conn.info.backend_pid
        spent = {"decode": 0.0, "plan": 0.0, "write": 0.0, "backend": 0.0, "wall": 0.0}
        for b in range(batches):
            received = dt.datetime.now(dt.UTC)
            messages = []
            for j in range(size):
                k = b * size + j
                code, unit, value = CODES[k % len(CODES)]
                at = start + dt.timedelta(milliseconds=k)
                device = f"dev-{k % DEVICES:05d}"
                messages.append((readings_topic(device), encode_readings(
                    f"m{k}", at, [Measurement(code, value + (k % 7) - 3, unit, at)])))
            wall = time.perf_counter()
            t0 = time.process_time()
            decoded = [(t, p, received, decode(t, p, received, limits)) for t, p in messages]
            t1 = time.process_time()
            plan = plan_batch(decoded, directory.get)
            t2 = time.process_time()
            c0 = _backend_cpu_s(backend)
            write_batch(conn, store, plan, queue_alerting=True)
            t3 = time.process_time()
            spent["wall"] += time.perf_counter() - wall
            spent["backend"] += _backend_cpu_s(backend) - c0
            spent["decode"] += t1 - t0
            spent["plan"] += t2 - t1
            spent["write"] += t3 - t2
        stored = conn.execute("SELECT count(*) FROM readings").fetchone()
        if stored is None or stored[0] != batches * size:
            raise SystemExit(f"stored {stored} of {batches * size}")
    n = batches * size
    return {k: 1e6 * v / n for k, v in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--code", type=Path, action="append", default=[],
                        help="another tree to run the same load from (repeatable)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.child:
        print(json.dumps(child(a.batches, a.batch)))
        return
    trees = [REPO, *(p.resolve() for p in a.code)]
    figures: dict[Path, list[dict[str, float]]] = {t: [] for t in trees}
    print(f"write_batch benchmark: {a.batches} batches of {a.batch} one-reading messages, "
          f"{DEVICES} devices, alerting queue on; µs per reading; rounds {a.rounds}",
          flush=True)
    for round_ in range(a.rounds):
        for tree in trees:
            out = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", "--batches",
                 str(a.batches), "--batch", str(a.batch)],
                check=False, env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree,
                capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{tree}: {out.stderr}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            figures[tree].append(r)
            print(f"[round {round_ + 1}] {tree}: " + ", ".join(
                f"{k} {v:.1f}" for k, v in r.items()), flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    keys = ("decode", "plan", "write", "backend", "wall")
    print("\n| tree | " + " | ".join(f"{k} µs/reading" for k in keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for tree, runs in figures.items():
        print(f"| {tree} | " + " | ".join(
            f"{statistics.median(r[k] for r in runs):.1f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
