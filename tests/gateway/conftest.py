"""Fixtures for the gateway's integration tests: a ward to publish into, gateway processes,
QoS 1 publishers and a subscriber for results. Real PostgreSQL, real Mosquitto."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from ward.db import registry
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.domain.nhs_number import with_check_digit
from ward.domain.patients import Patient

REPO = Path(__file__).resolve().parents[2]
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def nhs(n: int) -> str:
    for base in range(n * 7, n * 7 + 100):
        number = with_check_digit(f"{900000000 + base % 99999999:09d}")
        if number:
            return number
    raise AssertionError("no NHS number")


@dataclass
class Ward:
    url: str
    patients: dict[str, int] = field(default_factory=dict)  # device id → patient id

    def add(self, device_id: str, *, since: dt.datetime = EPOCH,
            kind: DeviceKind = DeviceKind.PULSE_OXIMETER, assign: bool = True) -> int | None:
        with psycopg.connect(self.url) as conn:
            registry.add_device(conn, Device(device_id, kind))
            patient_id = None
            if assign:
                p = registry.add_patient(conn, Patient(
                    nhs(len(self.patients) + int(uuid.uuid4().int % 1_000_000)), "Test",
                    f"Patient {device_id}", dt.date(1950, 1, 1)))
                assert p.id is not None
                registry.assign_device(conn, Assignment(device_id, p.id, since))
                patient_id = p.id
                self.patients[device_id] = p.id
            conn.commit()
        return patient_id

    def count(self, sql: str, *params: object) -> int:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(sql, params).fetchone()
            return int(row[0]) if row else 0


@pytest.fixture
def ward(db_url: str) -> Ward:
    return Ward(db_url)


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")


def as_url(conninfo: str) -> str:
    """A key=value conninfo (as the `db_url` fixture gives) as a postgresql:// URL."""
    if conninfo.startswith(("postgresql://", "postgres://")):
        return conninfo
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = params.pop("user", "postgres")
    password = params.pop("password", None)
    host = params.pop("host", "127.0.0.1")
    port = params.pop("port", 5432)
    dbname = params.pop("dbname", "postgres")
    auth = f"{user}:{password}@" if password else f"{user}@"
    query = urllib.parse.urlencode({k: str(v) for k, v in params.items()},
                                   quote_via=urllib.parse.quote)
    return f"postgresql://{auth}{host}:{port}/{dbname}" + (f"?{query}" if query else "")


@dataclass
class GatewayProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


GatewayFactory = Callable[..., GatewayProcess]


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start `python -m ward.cli gateway` as a real subprocess; stopped at teardown."""
    started: list[GatewayProcess] = []

    def _start(db_url: str, mqtt_url: str, *, client_id: str | None = None,
               group: str | None = None, args: tuple[str, ...] = (),
               **env: str) -> GatewayProcess:
        client_id = client_id or f"gw-{uuid.uuid4().hex[:8]}"
        log_path = tmp_path / f"{client_id}-{len(started)}.log"
        environ = {
            **os.environ,
            "VW_DATABASE_URL": as_url(db_url),
            "VW_MQTT_URL": mqtt_url,
            "VW_MQTT_CLIENT_ID": client_id,
            "VW_MQTT_SHARE_GROUP": group or f"g{uuid.uuid4().hex[:8]}",
            "VW_GATEWAY_ALERTING": "false",
            "VW_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(REPO),
            **env,
        }
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "ward.cli", "gateway", *args], env=environ, cwd=REPO,
                stdout=out, stderr=subprocess.STDOUT)
        gw = GatewayProcess(process, log_path)
        started.append(gw)
        wait_for(lambda: "gateway running" in gw.log() or process.poll() is not None,
                 20, "the gateway to start")
        assert process.poll() is None, gw.log()
        wait_for(lambda: "mqtt connected" in gw.log() or process.poll() is not None,
                 20, "the gateway to connect")
        return gw

    yield _start
    for gw in started:
        with contextlib.suppress(Exception):
            gw.stop()


def mqtt_client(url: str, client_id: str | None = None, *, v5: bool = True,
                username: str | None = None, password: str | None = None,
                **tls: Any) -> paho.Client:
    host, port = url.removeprefix("mqtt://").removeprefix("mqtts://").split(":")
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or uuid.uuid4().hex,
                         protocol=MQTTProtocolVersion.MQTTv5 if v5 else
                         MQTTProtocolVersion.MQTTv311)
    if username:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set(**tls)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, int(port))
    client.loop_start()
    return client


class Results:
    """Collects messages on results topics (decoded JSON), thread-safe."""

    def __init__(self, url: str, topic_filter: str = "vw/v1/devices/+/results") -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt_client(url)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self._ready.set()
        self.client.subscribe(topic_filter, qos=1)
        assert self._ready.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.items.append((msg.topic, json.loads(msg.payload)))

    def for_msg(self, msg_id: str | None) -> list[dict[str, Any]]:
        with self._lock:
            return [body for _, body in self.items if body.get("msg_id") == msg_id]

    def on(self, topic: str) -> list[dict[str, Any]]:
        with self._lock:
            return [body for t, body in self.items if t == topic]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def results(broker: Any) -> Iterator[Results]:
    collector = Results(broker.url)
    yield collector
    collector.close()


@pytest.fixture
def connect_mqtt() -> Iterator[Callable[..., paho.Client]]:
    """Factory of connected paho clients (network loop running); disconnected at teardown."""
    clients: list[paho.Client] = []

    def _connect(url: str, client_id: str | None = None, **kwargs: Any) -> paho.Client:
        client = mqtt_client(url, client_id, **kwargs)
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        with contextlib.suppress(Exception):
            client.loop_stop()
            client.disconnect()


@pytest.fixture
def poll() -> Callable[..., None]:
    """`poll(predicate, timeout, what)`: wait with a deadline, never a fixed sleep."""
    return wait_for


@pytest.fixture
def to_url() -> Callable[[str], str]:
    """Converts the `db_url` conninfo into a postgresql:// URL (for VW_DATABASE_URL)."""
    return as_url


class Stream:
    """Publishes `total` readings at QoS 1 from `devices`, `per_message` per message, in a
    background thread, with a persistent publisher session that survives a broker restart."""

    def __init__(self, url: str, devices: list[str], *, total: int, per_message: int = 10,
                 rate_msgs: float = 0.0) -> None:
        self.url = url
        self.devices = devices
        self.total = total
        self.per_message = per_message
        self.rate_msgs = rate_msgs
        self.acked = 0
        self.sent = 0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="stream", daemon=True)
        self.error: BaseException | None = None

    def messages(self) -> Iterator[tuple[str, bytes]]:
        from gateway.contract import Measurement, encode_readings, readings_topic

        start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=6)
        n_messages = self.total // self.per_message
        for k in range(n_messages):
            device = self.devices[k % len(self.devices)]
            slot = k // len(self.devices)
            first = start + dt.timedelta(seconds=slot * self.per_message)
            readings = [Measurement("spo2", 90 + (j % 10), "%", first + dt.timedelta(seconds=j))
                        for j in range(self.per_message)]
            yield readings_topic(device), encode_readings(f"{device}-{slot}", first, readings)

    def _on_publish(self, *_args: Any) -> None:
        with self._lock:
            self.acked += 1

    def _run(self) -> None:
        try:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            host, port = self.url.removeprefix("mqtt://").split(":")
            client = paho.Client(CallbackAPIVersion.VERSION2,
                                 client_id=f"stream-{uuid.uuid4().hex[:8]}",
                                 protocol=MQTTProtocolVersion.MQTTv5)
            client.max_inflight_messages_set(500)
            client.max_queued_messages_set(0)
            client.reconnect_delay_set(1, 2)
            client.on_publish = self._on_publish
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            client.connect(host, int(port), clean_start=False, properties=props)
            client.loop_start()
            interval = 1 / self.rate_msgs if self.rate_msgs else 0.0
            began = time.monotonic()
            for i, (topic, payload) in enumerate(self.messages()):
                client.publish(topic, payload, qos=1)
                self.sent += 1
                if interval:
                    lag = began + i * interval - time.monotonic()
                    if lag > 0:
                        time.sleep(lag)
            deadline = time.monotonic() + 120
            while self.acked < self.sent and time.monotonic() < deadline:
                time.sleep(0.05)
            client.loop_stop()
            client.disconnect()
        except BaseException as exc:  # surfaced by join()
            self.error = exc
        finally:
            self._done.set()

    def start(self) -> Stream:
        self.thread.start()
        return self

    def join(self, timeout: float = 120) -> None:
        assert self._done.wait(timeout), "publisher did not finish"
        if self.error is not None:
            raise self.error
        assert self.acked >= self.sent == self.total // self.per_message


@pytest.fixture
def stream() -> type[Stream]:
    return Stream


def metric(port: int, name: str) -> float:
    """Sum of a metric's samples from a gateway's /metrics endpoint."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key = line.split(" ", 1)[0].split("{", 1)[0]
            if key == name:
                total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def read_metric() -> Callable[[int, str], float]:
    return metric
