"""Flood benchmark: one device sends many large random messages; memory and database growth.

Usage:
    python benchmarks/bench_flood.py [--messages 1500] [--size 1000000] [--repo PATH]

One broker (the project's config), one throwaway schema of VW_DATABASE_URL (default: the
machine's local PostgreSQL), one `vward gateway` process, one registered device. The device
publishes `--messages` random payloads of `--size` bytes (QoS 1, as fast as the broker takes
them) on its own readings topic: each is refused (`payload_too_large`, or `malformed_json`
under the size limit). Prints the gateway's RSS before, its peak (sampled every 0.1 s and
VmHWM) and after, and what the flood left in the database: rows and payload bytes in
`rejected_messages`, that table's size on disk, and any quarantine. Then one valid reading
from the same device, to show it is still stored.

`--repo` runs the gateway from another checkout (e.g. an export of main, for a before/after
figure); the figures that need the newer schema are then skipped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.contract import Measurement, encode_readings, readings_topic
from ward.db.connect import throwaway_schema
from ward.embedded import free_port, start_broker

REPO = Path(__file__).resolve().parents[1]
# At most this many un-acknowledged messages from the flooding publisher (the broker's limit).
OUTSTANDING = 500


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def received(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vw_gateway_messages_received_total"))


def as_url(conninfo: str) -> str:
    import urllib.parse

    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    query = urllib.parse.urlencode({"options": params.get("options", "")},
                                   quote_via=urllib.parse.quote)
    return (f"postgresql://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
            f"{params.get('port', 5432)}/{params.get('dbname', 'postgres')}?{query}")


def register(db_url: str, device_id: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "WITH p AS (INSERT INTO patients (nhs_number, given_name, family_name, "
            "date_of_birth) VALUES ('9434765919', 'Bench', 'Flood', '1950-01-01') RETURNING id),"
            " d AS (INSERT INTO devices (id, kind) VALUES (%s, 'pulse_oximeter') RETURNING pk) "
            "INSERT INTO device_assignments (device_pk, patient_id, during) "
            "SELECT d.pk, p.id, tstzrange('2020-01-01', NULL) FROM p, d", (device_id,))
        conn.commit()


def flood(url: str, topic: str, n: int, size: int) -> float:
    host, port = url.removeprefix("mqtt://").split(":")
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"flood-{uuid.uuid4().hex[:6]}",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(OUTSTANDING)
    client.max_queued_messages_set(0)
    acked = threading.Semaphore(0)
    client.on_publish = lambda *_a: acked.release()
    client.connect(host, int(port))
    client.loop_start()
    began = time.monotonic()
    outstanding = 0
    for _ in range(n):
        if outstanding >= OUTSTANDING:
            acked.acquire()
            outstanding -= 1
        client.publish(topic, os.urandom(size), qos=1)
        outstanding += 1
    for _ in range(outstanding):
        acked.acquire(timeout=120)
    elapsed = time.monotonic() - began
    client.loop_stop()
    client.disconnect()
    return elapsed


def figures(db_url: str, device_id: str, newer_schema: bool) -> list[str]:
    with psycopg.connect(db_url) as conn:
        rows, kept = conn.execute(
            "SELECT count(*), coalesce(sum(octet_length(payload)), 0) FROM rejected_messages "
            "WHERE device_id = %s", (device_id,)).fetchone() or (0, 0)
        table = conn.execute("SELECT pg_total_relation_size('rejected_messages')").fetchone()
        out = [f"rejected_messages: {rows} rows, {kept / 2**20:.1f} MiB of payloads kept, "
               f"table on disk {(table[0] if table else 0) / 2**20:.1f} MiB"]
        if newer_schema:
            budget = conn.execute(
                "SELECT messages, payload_bytes, suppressed, suppressed_bytes, "
                "quarantined_until FROM dead_letter_budget WHERE device_id = %s",
                (device_id,)).fetchone()
            quarantines = conn.execute(
                "SELECT count(*) FROM device_quarantines WHERE device_id = %s",
                (device_id,)).fetchone()
            if budget:
                out.append(f"device account: {budget[0]} dead letters kept, {budget[2]} "
                           f"suppressed ({budget[3] / 2**20:.1f} MiB not stored), quarantined "
                           f"until {budget[4]}; quarantine records: "
                           f"{quarantines[0] if quarantines else 0}")
    return out


class RssPeak(threading.Thread):
    """Samples a process's RSS every 0.1 s; `peak` is the highest seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = rss_kb(pid)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, rss_kb(self.pid))
            self.done.wait(0.1)


def migrate(repo: Path, db_url: str) -> None:
    """The schema of `repo`'s own migrations (a before/after run needs the older one)."""
    env = {**os.environ, "VW_DATABASE_URL": as_url(db_url), "VW_LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(repo)}
    subprocess.run([sys.executable, "-m", "ward.cli", "migrate"], check=True, cwd=repo, env=env,
                   stdout=subprocess.DEVNULL)


def start_gateway(repo: Path, db_url: str, broker_url: str,
                  metrics_port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VW_DATABASE_URL": as_url(db_url), "VW_MQTT_URL": broker_url,
           "VW_MQTT_SHARE_GROUP": "flood", "VW_GATEWAY_ALERTING": "false",
           "VW_METRICS_PORT": str(metrics_port), "VW_LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(repo)}
    gateway = subprocess.Popen([sys.executable, "-m", "ward.cli", "gateway",
                                "--client-id", "flood-gw"], env=env, cwd=repo)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            received(metrics_port)
            break
        except OSError:
            time.sleep(0.2)
    time.sleep(2)  # subscribed, directory loaded
    return gateway


def valid_reading_stored(broker_url: str, db_url: str, device_id: str) -> bool:
    now = dt.datetime.now(dt.UTC)
    client: Any = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    host, port = broker_url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.loop_start()
    client.publish(readings_topic(device_id), encode_readings(
        "after-flood", now, [Measurement("spo2", 96, "%", now)]), qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT count(*) FROM readings WHERE device_id = %s",
                               (device_id,)).fetchone()
        if row and row[0]:
            return True
        time.sleep(0.2)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--size", type=int, default=1_000_000, help="bytes per message "
                        "(the broker's max_packet_size is 1 MiB)")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout to run the gateway from")
    args = parser.parse_args()
    repo = args.repo.resolve()
    base = os.environ.get("VW_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    # Migrated by `repo`'s own `vward migrate` (a before/after run needs the older schema).
    with throwaway_schema(base, "flood_", migrated=False) as (_, db_url):
        broker = start_broker()
        device_id = "flood-0001"
        metrics_port = free_port()
        gateway: subprocess.Popen[bytes] | None = None
        try:
            migrate(repo, db_url)
            register(db_url, device_id)
            gateway = start_gateway(repo, db_url, broker.url, metrics_port)
            before = rss_kb(gateway.pid)
            sampler = RssPeak(gateway.pid)
            sampler.start()
            print(f"flood benchmark: {args.messages} random messages of {args.size:,} bytes from "
                  f"one device, QoS 1, one gateway ({'this checkout' if repo == REPO else repo})")
            seconds = flood(broker.url, readings_topic(device_id), args.messages, args.size)
            deadline = time.monotonic() + 300
            while received(metrics_port) < args.messages and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1)
            sampler.done.set()
            sampler.join()
            print(f"published in {seconds:.1f} s; gateway received {received(metrics_port):.0f}")
            print(f"gateway RSS: before {before / 1024:.1f} MiB, peak sampled "
                  f"{sampler.peak / 1024:.1f} MiB (VmHWM {rss_kb(gateway.pid, 'VmHWM') / 1024:.1f} "
                  f"MiB), after {rss_kb(gateway.pid) / 1024:.1f} MiB")
            for line in figures(db_url, device_id, (repo / "gateway" / "dead_letters.py").exists()):
                print(line)
            stored = valid_reading_stored(broker.url, db_url, device_id)
            print(f"a valid reading from the same device after the flood: "
                  f"{'stored' if stored else 'NOT stored'}")
        finally:
            if gateway is not None and gateway.poll() is None:
                gateway.terminate()
                gateway.wait(15)
            broker.stop()


if __name__ == "__main__":
    main()
