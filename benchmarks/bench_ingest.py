"""Benchmark the ingest path end to end: devices → Mosquitto → gateway process(es) → PostgreSQL.

Usage:
    python benchmarks/bench_ingest.py [--devices 200] [--per-message 10] [--publishers 2]
        [--gateways 1] [--duration 20] [--latency-rate 2000] [--latency-duration 15]
        [--naive-duration 15] [--results-qos 1]

Three phases on one broker (the project's config) and one throwaway schema of the database in
VW_DATABASE_URL (default: the machine's local PostgreSQL):

1. throughput: publisher processes offer QoS 1 messages as fast as they can (a paho publisher
   tops out near 6,000 msg/s, so they are fanned out over processes); the sustained rate is
   the slope of committed rows over the run, first fifth excluded (warm-up). The gateway's
   RSS is sampled throughout (flat memory) and its peak (VmHWM) reported.
2. latency: a fixed offered rate (2,000 readings/s by default); publish → commit latency is
   measured to the arrival of the gateway's result message, which is published right after
   the commit (so it slightly overstates publish → commit).
3. the naive bridge (benchmarks/naive_bridge.py: one INSERT and commit per message, auto-ack),
   same load as phase 1, for comparison.

Prints readings/s and messages/s separately (several readings per message are allowed: a
device sends its batch).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from ward.db.connect import create_schema, drop_schema, migrate_url, with_schema
from ward.domain.nhs_number import with_check_digit
from ward.embedded import start_broker

REPO = Path(__file__).resolve().parents[1]
# Publishers keep at most this many un-acknowledged QoS 1 messages (bounded memory, and the
# broker's own inflight limit is 1,000 per client).
OUTSTANDING = 1000


@dataclasses.dataclass(frozen=True)
class Load:
    url: str
    devices: list[str]
    per_message: int
    rate_msgs: float  # 0: as fast as the broker acknowledges
    duration: float
    phase: str
    want_results: bool


def build_message(load: Load, base: dt.datetime, k: int) -> tuple[str, str, bytes]:
    """The k-th message: devices in turn, each with `per_message` new instants."""
    from gateway.contract import Measurement, encode_readings, readings_topic

    device = load.devices[k % len(load.devices)]
    slot = k // len(load.devices)
    first = base + dt.timedelta(milliseconds=slot * load.per_message)
    readings = [Measurement("spo2", 90 + j % 10, "%", first + dt.timedelta(milliseconds=j))
                for j in range(load.per_message)]
    msg_id = f"{device}-{load.phase}-{slot}"
    return readings_topic(device), msg_id, encode_readings(msg_id, first, readings)


def _client() -> Any:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    # Devices publish with MQTT 3.1.1: cheaper in paho than 5, and the contract allows it.
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}",
                         protocol=MQTTProtocolVersion.MQTTv311)
    client.max_inflight_messages_set(OUTSTANDING)
    client.max_queued_messages_set(0)
    return client


def publisher(load: Load, out: Any) -> None:
    import json

    from gateway.contract import results_topic

    lock = threading.Lock()
    acked = [0]
    sent_at: dict[str, float] = {}
    latencies: list[float] = []

    def on_publish(*_a: Any) -> None:
        with lock:
            acked[0] += 1

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        now = time.time()
        msg_id = json.loads(msg.payload).get("msg_id")
        with lock:
            started = sent_at.pop(msg_id, None)
        if started is not None:
            latencies.append(now - started)

    client = _client()
    client.on_publish = on_publish
    client.on_message = on_message
    host, port = load.url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.loop_start()
    if load.want_results:
        client.subscribe([(results_topic(d), 0) for d in load.devices])
        time.sleep(0.5)
    # Each phase writes its own instants, so no phase's readings collide with another's.
    offset = {"tp": 0, "lat": 1, "naive": 2}.get(load.phase, 3)
    base = (dt.datetime.now(dt.UTC).replace(microsecond=0)
            - dt.timedelta(hours=2) + dt.timedelta(minutes=20 * offset))
    began = time.monotonic()
    sent = 0
    interval = 1 / load.rate_msgs if load.rate_msgs else 0.0
    while time.monotonic() - began < load.duration:
        topic, msg_id, payload = build_message(load, base, sent)
        if load.want_results:
            with lock:
                sent_at[msg_id] = time.time()
        client.publish(topic, payload, qos=1)
        sent += 1
        if interval:
            lag = began + sent * interval - time.monotonic()
            if lag > 0:
                time.sleep(lag)
        else:
            while sent - acked[0] > OUTSTANDING:
                time.sleep(0.001)
    deadline = time.monotonic() + 30
    while (acked[0] < sent or (load.want_results and sent_at)) and time.monotonic() < deadline:
        time.sleep(0.05)
    client.loop_stop()
    client.disconnect()
    out.put((sent, acked[0], latencies))


def run_publishers(load: Load, n: int) -> tuple[int, list[float]]:
    """Fan `load` out over `n` processes (each its share of devices and rate)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=publisher, args=(
        dataclasses.replace(load, devices=load.devices[i::n], rate_msgs=load.rate_msgs / n),
        out)) for i in range(n)]
    for p in procs:
        p.start()
    sent, latencies = 0, []
    for _ in procs:
        s, _acked, lat = out.get(timeout=load.duration + 120)
        sent += s
        latencies.extend(lat)
    for p in procs:
        p.join()
    return sent, latencies


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """Samples committed row count and the gateways' RSS once a second."""

    def __init__(self, db_url: str, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.db_url, self.pids = db_url, pids
        self.samples: list[tuple[float, int, int]] = []  # (t, rows, rss_kb total)
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            while not self.stop.is_set():
                row = conn.execute("SELECT count(*) FROM readings").fetchone()
                rss = sum(rss_kb(p) for p in self.pids)
                self.samples.append((time.monotonic(), int(row[0]) if row else 0, rss))
                self.stop.wait(1.0)

    def sustained(self, start: float, end: float) -> float:
        window = [s for s in self.samples if start <= s[0] <= end]
        if len(window) < 2:
            return 0.0
        return (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])


def wait_drained(db_url: str, expected: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    with psycopg.connect(db_url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
            count = int(row[0]) if row else 0
            if count >= expected or time.monotonic() > deadline:
                return count
            time.sleep(0.25)


def register(db_url: str, n: int, prefix: str) -> list[str]:
    ids = [f"{prefix}{i:04d}" for i in range(n)]
    numbers = (x for x in (with_check_digit(f"{900000000 + k:09d}") for k in range(10 * n + 10))
               if x)
    with psycopg.connect(db_url) as conn:
        for device_id, number in zip(ids, numbers, strict=False):
            conn.execute(
                "WITH p AS (INSERT INTO patients (nhs_number, given_name, family_name, "
                "date_of_birth) VALUES (%s, 'Bench', %s, '1950-01-01') RETURNING id), "
                "d AS (INSERT INTO devices (id, kind) VALUES (%s, 'pulse_oximeter') "
                "RETURNING pk) INSERT INTO device_assignments (device_pk, patient_id, during) "
                "SELECT d.pk, p.id, tstzrange('2020-01-01', NULL) FROM p, d",
                (number, device_id, device_id))
        conn.commit()
    return ids


def as_url(conninfo: str) -> str:
    import urllib.parse

    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    query = urllib.parse.urlencode({"options": params.get("options", "")},
                                   quote_via=urllib.parse.quote)
    return (f"postgresql://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
            f"{params.get('port', 5432)}/{params.get('dbname', 'postgres')}?{query}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclasses.dataclass
class Run:
    args: argparse.Namespace
    db_url: str
    broker_url: str
    devices: list[str]
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]]


def phase_throughput(run: Run, pids: list[int]) -> tuple[float, int]:
    args, per = run.args, run.args.per_message
    sampler = Sampler(run.db_url, pids)
    sampler.start()
    t0 = time.monotonic()
    sent, _ = run_publishers(Load(run.broker_url, run.devices, per, 0, args.duration, "tp",
                                  False), args.publishers)
    t1 = time.monotonic()
    stored = wait_drained(run.db_url, sent * per)
    t2 = time.monotonic()
    sampler.stop.set()
    sampler.join()
    warm = t0 + (t1 - t0) / 5
    rate = sampler.sustained(warm, t1)
    print(f"throughput: offered {sent / (t1 - t0):,.0f} msg/s for {t1 - t0:.0f} s; stored "
          f"{stored:,} of {sent * per:,} readings; sustained while offered {rate:,.0f} "
          f"readings/s ({rate / per:,.0f} msg/s); incl. drain {stored / (t2 - t0):,.0f} "
          f"readings/s over {t2 - t0:.0f} s")
    rss = [s[2] for s in sampler.samples if s[0] >= warm]
    if rss:
        third = max(1, len(rss) // 3)
        print(f"gateway RSS (MiB): first third median "
              f"{statistics.median(rss[:third]) / 1024:.1f}, last third median "
              f"{statistics.median(rss[-third:]) / 1024:.1f}, max {max(rss) / 1024:.1f}")
    return rate, sent


def phase_latency(run: Run, before: int) -> None:
    args, per = run.args, run.args.per_message
    sent, latencies = run_publishers(
        Load(run.broker_url, run.devices, per, args.latency_rate / per, args.latency_duration,
             "lat", True), args.publishers)
    wait_drained(run.db_url, before + sent * per)
    print(f"latency at {args.latency_rate:,.0f} readings/s ({args.latency_rate / per:,.0f} "
          f"msg/s): publish→commit(+result) p50 {pct(latencies, 0.5) * 1000:.1f} ms, "
          f"p99 {pct(latencies, 0.99) * 1000:.1f} ms, "
          f"max {max(latencies, default=float('nan')) * 1000:.1f} ms "
          f"({len(latencies):,} of {sent:,} answered)")


def phase_naive(run: Run, gateway_rate: float) -> None:
    args, per = run.args, run.args.per_message
    naive = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks/naive_bridge.py"), run.broker_url,
         as_url(run.db_url), "naive-1"], env=run.env, cwd=REPO, stdout=subprocess.DEVNULL)
    run.procs.append(naive)
    time.sleep(2)
    sampler = Sampler(run.db_url, [naive.pid])
    sampler.start()
    t0 = time.monotonic()
    sent, _ = run_publishers(Load(run.broker_url, run.devices, per, 0, args.naive_duration,
                                  "naive", False), args.publishers)
    t1 = time.monotonic()
    sampler.stop.set()
    sampler.join()
    rate = sampler.sustained(t0 + (t1 - t0) / 5, t1)
    print(f"naive bridge (one INSERT + commit per message, auto-ack): sustained "
          f"{rate:,.0f} readings/s ({rate / per:,.0f} msg/s); offered "
          f"{sent / (t1 - t0):,.0f} msg/s")
    if rate:
        print(f"gateway / naive: {gateway_rate / rate:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--per-message", type=int, default=10)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--gateways", type=int, default=1)
    parser.add_argument("--duration", type=float, default=20.0, help="throughput phase, s")
    parser.add_argument("--latency-rate", type=float, default=2000.0, help="readings/s")
    parser.add_argument("--latency-duration", type=float, default=15.0)
    parser.add_argument("--naive-duration", type=float, default=15.0, help="0: skip")
    parser.add_argument("--results-qos", type=int, default=1, choices=(0, 1))
    args = parser.parse_args()

    base = os.environ.get("VW_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    create_schema(base, schema)
    db_url = with_schema(base, schema)
    broker = start_broker()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        migrate_url(db_url)
        env = {**os.environ, "VW_DATABASE_URL": as_url(db_url), "VW_MQTT_URL": broker.url,
               "VW_MQTT_SHARE_GROUP": "bench", "VW_GATEWAY_ALERTING": "false",
               "VW_GATEWAY_RESULTS_QOS": str(args.results_qos), "VW_LOG_LEVEL": "WARNING",
               "PYTHONPATH": str(REPO)}
        run = Run(args, db_url, broker.url, register(db_url, args.devices, "bd"), env, procs)
        gateways = [subprocess.Popen(
            [sys.executable, "-m", "ward.cli", "gateway", "--client-id", f"bench-gw-{i}"],
            env=env, cwd=REPO) for i in range(args.gateways)]
        procs.extend(gateways)
        time.sleep(3)
        pids = [g.pid for g in gateways]
        print(f"ingest benchmark: {args.devices} devices, {args.per_message} readings/message, "
              f"{args.publishers} publisher processes, {args.gateways} gateway process(es), "
              f"broker {broker.kind}, QoS 1, ack after commit, results QoS {args.results_qos}")
        rate, sent = phase_throughput(run, pids)
        phase_latency(run, wait_drained(db_url, sent * args.per_message))
        peak = sum(rss_kb(p, "VmHWM") for p in pids)
        print(f"gateway peak RSS (VmHWM, all gateway processes): {peak / 1024:.1f} MiB")
        for g in gateways:
            g.terminate()
            g.wait(15)
        if args.naive_duration > 0:
            phase_naive(run, rate)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(15)
        broker.stop()
        drop_schema(base, schema)


if __name__ == "__main__":
    main()
