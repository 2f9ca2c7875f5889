"""What one evaluated patient costs the alert evaluator in steady state (issue 14).

Usage:
    python benchmarks/bench_evaluator.py [--patients 300] [--passes 20] [--history 60]
        [--hash] [--code CHECKOUT_OR_REVISION ...]

What `vward alerting`'s evaluator does under load, in this process: a ward of admitted
patients, each wearing one device, with `--history` minutes of one-a-minute readings of five
codes behind it (a wearable's hour: what the snapshot's recent window and the SpO2 history
hold); then `--passes` passes, each committing one new reading per patient (the codes in
rotation, as `bench_latency.py`'s load devices; a few patients' systolic drops to 85 now and
then, raising and escalating episodes) and evaluating every patient with
`alerting.runner.evaluate_after_commit` and one `alerting.store.EpisodeCache` kept across
passes, as `alerting.worker` runs it. The clock is simulated (one second a pass), so every
checkout sees the same data.

Printed per checkout: the evaluator's CPU (this process's user + system time around the
evaluation calls only, the first pass — a cold cache — excluded) per patient evaluated, the
wall time per pass, this process's RSS before the first and after the last pass and the median
RSS of the first → last third of passes, and the readings the series cache holds after the
first and the last pass (it keeps every reading of a filtered code until it leaves its
window: this is what `vward alerting`'s child grows by during an ingest run). With
`--code` repeated, each checkout runs in its own child process (`PYTHONPATH` = that
checkout), one after the other, so the figures of one invocation compare; a `--code` that
is not a directory is a git revision of this repository, exported (``git archive``) to a
temporary directory for the run. Not a test: figures depend on the machine.

With ``--hash``, each checkout also prints one SHA-256 of everything its evaluator decided:
the changes every pass returned, every ``NOTIFY vw_events`` payload sent (in order), and, after
the last pass, every row of the tables the evaluator writes (scores, alerts, alert_findings,
alert_events, notification_outbox, tasks, observation_tasks, patient_baselines), each table
ordered by its rows' JSON text. The patient ids are then fixed (the same for every checkout),
so two checkouts that decide the same print the same hash.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
START = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)
CODES = (("spo2", "%", 97.0), ("pulse", "/min", 72.0), ("resp_rate", "/min", 16.0),
         ("temperature", "Cel", 36.8), ("systolic_bp", "mm[Hg]", 124.0))
#: The tables the evaluator writes, hashed by `--hash`.
WRITTEN = ("scores", "alerts", "alert_findings", "alert_events", "notification_outbox", "tasks",
           "observation_tasks", "patient_baselines")
#: The first patient id with `--hash` (otherwise random, as every schema's ids used to share
#: one advisory-lock key space: see alerting.store.PATIENT_LOCK_SCOPE).
HASH_FIRST_ID = 10_000_000
# Systolic 85 scores 3: raises (or escalates) the patient's episode; normal again a pass later.
TRIGGER_EVERY = 7  # passes; a different tenth of the patients each time


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def setup(conn: Any, n: int, history_min: int, *, fixed_ids: bool = False) -> list[int]:
    since = START - dt.timedelta(days=1)
    conn.execute("SELECT setval(pg_get_serial_sequence('patients', 'id'), %s)",
                 (HASH_FIRST_ID if fixed_ids else 10_000_000 + uuid.uuid4().int % 1_000_000_000,))
    ids = [r[0] for r in conn.execute(
        "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth) "
        "SELECT lpad((9000000000 + g)::text, 10, '0'), 'B', 'ev-' || g, '1950-01-01' "
        "FROM generate_series(1, %s) g RETURNING id", (n,))]
    conn.execute(
        "INSERT INTO admissions (patient_id, pathway, source, status, referred_at, decided_at, "
        "admitted_at) SELECT id, 'step_up', 'gp', 'admitted', %s, %s, %s "
        "FROM unnest(%s::bigint[]) AS id", (since, since, since, ids))
    conn.execute("INSERT INTO devices (id, kind) SELECT family_name, 'home_hub' FROM patients")
    conn.execute("INSERT INTO device_assignments (device_pk, patient_id, during) "
                 "SELECT d.pk, p.id, tstzrange(%s, NULL) FROM patients p "
                 "JOIN devices d ON d.id = p.family_name", (since,))
    for month in {(START - dt.timedelta(minutes=history_min)).replace(day=1), START.replace(day=1)}:
        conn.execute("SELECT vw_ensure_reading_partition(%s)", (month,))
    # One reading a minute of each code for the last `history_min` minutes.
    conn.execute(
        "INSERT INTO readings (device_id, code, measured_at, value, unit, patient_id, "
        "received_at) SELECT 'ev-' || (p.id - %s + 1), c.code, %s - m * interval '1 minute', "
        "c.base + (m %% 3) - 1, c.unit, p.id, %s - m * interval '1 minute' "
        "FROM unnest(%s::bigint[]) AS p(id), generate_series(1, %s) AS m, "
        "unnest(%s::text[], %s::text[], %s::float8[]) AS c(code, unit, base)",
        (ids[0], START, START, ids, history_min, [c for c, _, _ in CODES],
         [u for _, u, _ in CODES], [b for _, _, b in CODES]))
    conn.execute(
        "INSERT INTO latest_readings (patient_id, code, measured_at, value, unit, device_id) "
        "SELECT DISTINCT ON (patient_id, code) patient_id, code, measured_at, value, unit, "
        "device_id FROM readings WHERE patient_id = ANY(%s) "
        "ORDER BY patient_id, code, measured_at DESC", (ids,))
    conn.execute("ANALYZE")
    return ids


class Decided:
    """`--hash`: one SHA-256 of every pass's changes, every NOTIFY heard (this session's own,
    delivered at commit), and at the end every row of the :data:`WRITTEN` tables."""

    def __init__(self, conn: Any) -> None:
        self.digest = hashlib.sha256()
        self.notifications = self.rows = 0
        row = conn.execute("SELECT vw_channel('vw_events')").fetchone()
        conn.execute(f'LISTEN "{row[0]}"')
        conn.commit()
        conn.add_notify_handler(self._heard)

    def _heard(self, n: Any) -> None:
        self.digest.update(b"N" + n.payload.encode() + b"\n")
        self.notifications += 1

    def passed(self, conn: Any, changed: list[Any]) -> None:
        conn.execute("SELECT 1")  # take in the pass's notifications
        conn.commit()
        self.digest.update(repr(changed).encode())

    def stored(self, conn: Any) -> None:
        for table in WRITTEN:
            self.digest.update(f"T{table}\n".encode())
            for (row,) in conn.execute(
                    f"SELECT to_jsonb(t)::text AS j FROM {table} t ORDER BY j"):
                self.digest.update(row.encode() + b"\n")
                self.rows += 1


def child(a: argparse.Namespace) -> None:
    import psycopg

    from alerting import runner, store
    from alerting.policy import load_policy
    from ward.db import connect
    from ward.db.store import ReadingStore
    from ward.domain.readings import Reading

    url = os.environ.get("VW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    policy = load_policy(Path(os.environ["PYTHONPATH"]) / "deploy/escalation/default.yaml")
    with connect.throwaway_schema(url, "bench_ev_") as schema, \
            psycopg.connect(schema.conninfo) as conn:
        ids = setup(conn, a.patients, a.history, fixed_ids=a.hash)
        conn.commit()
        try:  # as the evaluator process sets its collector (a checkout without it: defaults)
            from ward import gcpolicy
            gcpolicy.tune_for_service()
        except ImportError:
            pass
        decided = Decided(conn) if a.hash else None
        cache = store.EpisodeCache()
        readings = ReadingStore()
        cpu = 0.0
        wall: list[float] = []
        changes = 0
        rss_start = rss_mib()
        rss: list[float] = []  # after each pass
        for k in range(a.passes):
            now = START + dt.timedelta(seconds=k + 1)
            readings.write(conn, pass_readings(Reading, ids, k, now))
            conn.commit()
            t0, c0 = time.perf_counter(), time.process_time()
            changed = runner.evaluate_after_commit(conn, ids, now, policy=policy, cache=cache)
            c1, t1 = time.process_time(), time.perf_counter()
            changes += len(changed)
            if decided is not None:
                decided.passed(conn, changed)
            if k:  # the first pass fills the cache: not steady state
                cpu += c1 - c0
                wall.append(t1 - t0)
            rss.append(rss_mib())
            if k == 0:
                held_first = held_readings(cache)
        rss_end = rss_mib()
        third = max(1, len(rss) // 3)
        series = getattr(cache, "series", None)  # a checkout without the readings cache
        held = "" if series is None else (
            f"; readings windows: {series.incremental:,} brought up to date, "
            f"{series.loaded:,} loaded whole, {series.reloaded:,} reloaded after a check; "
            f"readings held {held_first:,} → {held_readings(cache):,}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if decided is not None:
            decided.stored(conn)
    n = a.patients * (a.passes - 1)
    print(f"  {n:,} patient evaluations in {a.passes - 1} passes of {a.patients}: "
          f"CPU {1000 * cpu / n:.3f} ms per patient; wall {1000 * sum(wall) / len(wall):.0f} ms "
          f"per pass (min {1000 * min(wall):.0f}); {changes:,} alert changes; "
          f"RSS {rss_start:.0f} → {rss_end:.0f} MiB (peak {peak:.0f}; median of the first "
          f"third of passes {statistics.median(rss[:third]):.0f} → last third "
          f"{statistics.median(rss[-third:]):.0f}){held}", flush=True)
    if decided is not None:
        print(f"  hash of what the evaluator decided ({decided.notifications:,} notifications, "
              f"{decided.rows:,} rows written): {decided.digest.hexdigest()}", flush=True)


def pass_readings(reading: Any, ids: list[int], k: int, now: dt.datetime) -> list[Any]:
    """Pass `k`'s new reading per patient (`reading`: ward.domain.readings.Reading)."""
    batch = []
    for i, pid in enumerate(ids):
        code, unit, base = CODES[(k + i) % len(CODES)]
        value = base + (k % 3) - 1
        if code == "systolic_bp" and k % TRIGGER_EVERY == 0 and i % 10 == k % 10:
            value = 85.0
        batch.append(reading(f"ev-{i + 1}", code, now, value, unit, pid, now))
    return batch


def held_readings(cache: Any) -> int:
    """Readings the evaluator's series cache holds between passes (0 without one): each new
    reading of a filtered code stays until it leaves its window (1 h; SpO2 6 h), so this and
    the RSS grow with the windows before they level off."""
    by_patient = getattr(getattr(cache, "series", None), "_by_patient", {})
    return sum(len(entry.ats) for codes in by_patient.values() for entry in codes.values())


def checkout(code: str, tmp: Path) -> Path:
    """`code` as a directory: itself, or a git revision of this repository exported there."""
    path = Path(code)
    if path.is_dir():
        return path.resolve()
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{code}^{{commit}}"],
                         check=True, capture_output=True, text=True).stdout.strip()
    out = tmp / sha[:12]
    if not out.is_dir():
        archive = tmp / f"{sha}.tar"
        subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), sha], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")
    print(f"  ({code} = {sha}, exported to {out})", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--history", type=int, default=60,
                        help="minutes of one-a-minute readings of each code before the run")
    parser.add_argument("--code", action="append",
                        help="a checkout (directory) or a git revision to measure (repeat to "
                        "compare them in one invocation; default: this checkout)")
    parser.add_argument("--hash", action="store_true",
                        help="print a hash of everything the evaluator decided (fixed ids)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.child:
        child(a)
        return 0
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_ev_") as tmp:
        for code in a.code or [str(REPO)]:
            print(f"--- code under test: {code}", flush=True)
            path = checkout(code, Path(tmp))
            args = [sys.executable, __file__, "--child", "--patients", str(a.patients),
                    "--passes", str(a.passes), "--history", str(a.history),
                    *(["--hash"] if a.hash else [])]
            subprocess.run(args, env={**os.environ, "PYTHONPATH": str(path)}, check=True)
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
