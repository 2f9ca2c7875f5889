"""What a broker SIGKILL costs, and what each broker option carries: prints the figures.

    python benchmarks/bench_broker_kill.py [--messages N] [--rate R]

1. Single-node Mosquitto (the project's config, autosave_interval 30), SIGKILL mid-stream:
   a) the gateway live and keeping up; b) the gateway away (backlog queued for its session).
2. Three-node RabbitMQ 3.10 (quorum-queue MQTT sessions), SIGKILL of the node the gateway
   sits on, mid-stream: acknowledged readings lost, longest PUBACK gap (device failover).
3. Throughput: readings/s stored by one gateway process (ack after commit, alerting off)
   draining a backlog of N messages × 5 readings: through Mosquitto on MQTT 3.1.1 and on
   MQTT 5 (the same gateway, `VW_MQTT_PROTOCOL`), and through the RabbitMQ cluster (3.1.1).

Every figure compares the messages that got a PUBACK (`ward.ackcheck`) with the database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from ward import ackcheck, rabbitcluster
from ward.db import registry
from ward.db.connect import throwaway_schema
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.domain.nhs_number import with_check_digit
from ward.domain.patients import Patient
from ward.embedded import Broker, start_broker

REPO = Path(__file__).resolve().parents[1]
PG = os.environ.get("VW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def nhs_number() -> str:
    while True:  # a random 999-range (test) number; one in eleven has no check digit
        number = with_check_digit(f"999{uuid.uuid4().int % 10**6:06d}")
        if number is not None:
            return number


def register(url: str, prefix: str, n: int) -> list[str]:
    devices = list(ackcheck.iter_devices(prefix, n))
    with psycopg.connect(url) as conn:
        for i, device in enumerate(devices):
            registry.add_device(conn, Device(device, DeviceKind.PULSE_OXIMETER, ""))
            patient = registry.add_patient(conn, Patient(nhs_number(), "Bench", f"P{i}",
                                                         dt.date(1950, 1, 1)))
            if patient.id is None:
                raise RuntimeError("patient not stored")
            registry.assign_device(conn, Assignment(device, patient.id, EPOCH))
        conn.commit()
    return devices


def gateway(db_url: str, mqtt_url: str, client_id: str, *, wait: bool = True,
            protocol: str = "3.1.1") -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "VW_DATABASE_URL": db_url,
           "VW_MQTT_URL": mqtt_url, "VW_MQTT_CLIENT_ID": client_id,
           "VW_MQTT_SHARE_GROUP": "", "VW_MQTT_PROTOCOL": protocol,
           "VW_GATEWAY_ALERTING": "false", "VW_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "ward.cli", "gateway"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if wait:
        time.sleep(3)  # connected and subscribed (the tests wait for the log line instead)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kill_mosquitto(broker: Broker) -> None:
    if broker.process is None:
        raise RuntimeError("broker not running")
    broker.process.kill()
    broker.process.wait()
    broker.start()


def report(name: str, result: ackcheck.Ledger, extra: str = "") -> None:
    pct = 100 * result.lost / max(1, result.acked_readings)
    print(f"{name:<52} acked {result.acked_readings:>7,} stored {result.distinct:>7,} "
          f"lost {result.lost:>7,} ({pct:4.1f} %) dup {result.duplicates}{extra}", flush=True)


def mosquitto_kill(db_url: str, n: int, rate: float, *, gateway_away: bool) -> None:
    broker = start_broker()
    prefix = f"bm{uuid.uuid4().hex[:6]}-"
    devices = register(db_url, prefix, 30)
    gw = gateway(db_url, broker.url, f"bench-{prefix}")
    try:
        if gateway_away:
            stop(gw)
        stream = ackcheck.TrackedStream([broker.url], devices, count=n, per_message=5,
                                        rate=rate).start()
        time.sleep(0.5 * n / rate)
        kill_mosquitto(broker)
        stream.join(120)
        if gateway_away:
            gw = gateway(db_url, broker.url, f"bench-{prefix}")
        ackcheck.wait_stored(db_url, prefix, 5 * n, 30)
        label = "gateway away, backlog" if gateway_away else "gateway live"
        report(f"mosquitto SIGKILL, {label}", ackcheck.ledger(db_url, stream, prefix))
    finally:
        stop(gw)
        broker.stop()


def rabbit_kill(db_url: str, n: int, rate: float, backlog: int) -> None:
    cluster = rabbitcluster.start_cluster(3)
    balancer = rabbitcluster.Balancer([node.mqtt_port for node in cluster.nodes])
    prefix = f"br{uuid.uuid4().hex[:6]}-"
    devices = register(db_url, prefix, 30)
    gws = [gateway(db_url, balancer.url, f"bench-{prefix}{i}") for i in range(2)]
    try:
        stream = ackcheck.TrackedStream([node.url for node in cluster.nodes], devices,
                                        count=n, per_message=5, rate=rate).start()
        time.sleep(0.5 * n / rate)
        victim = next(i for i, node in enumerate(cluster.nodes)
                      if node.mqtt_port == balancer.connections[0])
        killed_at = time.monotonic()
        cluster.kill(victim)
        stream.join(180)
        ackcheck.wait_stored(db_url, prefix, 5 * n, 60)
        gap = ackcheck.gap_s(stream.acked, killed_at)
        report(f"rabbitmq 3 nodes, SIGKILL node {victim + 1} (gateway's)",
               ackcheck.ledger(db_url, stream, prefix), f"  PUBACK gap {gap:.1f} s")
        throughput(db_url, "rabbitmq 3 nodes (live nodes, 1 gateway)",
                   [cluster.nodes[i].url for i in range(3) if i != victim], balancer.url,
                   backlog)
    finally:
        for gw in gws:
            stop(gw)
        balancer.close()
        cluster.stop()


def throughput(db_url: str, name: str, urls: list[str], gateway_url: str, n: int, *,
               protocol: str = "3.1.1") -> None:
    """One gateway drains a backlog of `n` messages queued for its session: readings/s from
    the first stored reading to the last (its start-up is not counted)."""
    prefix = f"bt{uuid.uuid4().hex[:6]}-"
    devices = register(db_url, prefix, 100)
    stop(gateway(db_url, gateway_url, f"bench-{prefix}", protocol=protocol))  # the session
    stream = ackcheck.TrackedStream(urls, devices, count=n, per_message=5, rate=0).start()
    stream.join(180)
    target = 5 * len(stream.acked)
    gw = gateway(db_url, gateway_url, f"bench-{prefix}", wait=False, protocol=protocol)
    first_at, first, count = 0.0, 0, 0
    deadline = time.monotonic() + 180
    while count < target and time.monotonic() < deadline:
        count = ackcheck.stored_count(db_url, prefix)
        if count and not first_at:
            first_at, first = time.monotonic(), count
        time.sleep(0.02)
    elapsed = time.monotonic() - first_at
    stop(gw)
    rate = (count - first) / elapsed if elapsed > 0 else 0.0
    print(f"{'throughput, ' + name:<52} {count:,} readings, {rate:,.0f} readings/s "
          f"({rate / 5:,.0f} msg/s) draining a backlog", flush=True)


def with_schema_db(run: Callable[[str], None]) -> None:
    with throwaway_schema(PG, "bench_") as (schema, _):
        # A URL (the gateway's VW_DATABASE_URL must be one) whose sessions use the schema.
        run(f"{PG}?options=" + urllib.parse.quote(f"-c search_path={schema},public"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=6_000, help="messages per scenario")
    parser.add_argument("--backlog", type=int, default=20_000,
                        help="messages queued for the throughput runs")
    parser.add_argument("--rate", type=float, default=600, help="messages/s offered")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so every broker node and gateway started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def run(url: str) -> None:
        mosquitto_kill(url, args.messages, args.rate, gateway_away=False)
        mosquitto_kill(url, args.messages, args.rate, gateway_away=True)
        broker = start_broker()
        try:
            throughput(url, "mosquitto (1 gateway, MQTT 3.1.1)", [broker.url], broker.url,
                       args.backlog)
            throughput(url, "mosquitto (1 gateway, MQTT 5)", [broker.url], broker.url,
                       args.backlog, protocol="5")
        finally:
            broker.stop()
        if rabbitcluster.available():
            rabbit_kill(url, args.messages, args.rate, args.backlog)
        else:
            print("rabbitmq: not installed (apt-get install rabbitmq-server)")

    with_schema_db(run)


if __name__ == "__main__":
    main()
