"""The production broker for the tests in this folder: the setup `vward broker setup` writes
(TLS, loopback plain listener, dynamic-security plugin) in a fresh folder, certificates made
with openssl, Mosquitto started from it — as its own user `mosquitto` when the tests run as
root (the setup has no `user root`) — and paho clients that record every CONNACK, SUBACK and
PUBACK reason code.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.broker_admin import BrokerAdmin, read_env_file
from gateway.provision import provision_device
from ward.cli import main
from ward.embedded import free_port, wait_for_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
AS_ROOT = os.geteuid() == 0


def _mosquitto_ids() -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam("mosquitto")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


@dataclass
class ProdBroker:
    """A Mosquitto started from a generated setup folder."""

    folder: Path
    tls_port: int
    plain_port: int
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def ca(self) -> Path:
        return self.folder / "certs" / "ca.crt"

    @property
    def tls_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}"

    @property
    def plain_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.plain_port}"

    def start(self, conf: str = "mosquitto.conf") -> None:
        with (self.folder / "broker.log").open("ab") as log:
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.folder / conf)],
                                            stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.plain_port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def reload(self) -> None:
        assert self.process is not None
        self.process.send_signal(1)  # SIGHUP, as documented: rereads password file and ACL

    def log(self) -> str:
        return (self.folder / "broker.log").read_text(errors="replace")

    def admin(self) -> BrokerAdmin:
        return BrokerAdmin.from_env_file(self.folder / "admin.env")

    def gateway_creds(self) -> dict[str, str]:
        env = read_env_file(self.folder / "gateway.env")
        return {"VW_MQTT_USERNAME": env["VW_MQTT_USERNAME"],
                "VW_MQTT_PASSWORD": env["VW_MQTT_PASSWORD"]}


def make_certs(certs: Path) -> None:
    certs.mkdir(exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(certs / "server.key"), "-out", str(certs / "server.crt"),
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True)
    shutil.copy(certs / "server.crt", certs / "ca.crt")
    ids = _mosquitto_ids()
    if AS_ROOT and ids is not None:
        # What the operator does: the key readable by the broker's user, nobody else.
        os.chown(certs / "server.key", 0, ids[1])
        os.chmod(certs / "server.key", 0o640)


@pytest.fixture
def broker_folder() -> Iterator[Path]:
    """A folder user `mosquitto` can traverse (pytest's tmp_path is private to root)."""
    if not Path(MOSQUITTO).exists() or shutil.which("openssl") is None:
        pytest.skip("needs mosquitto and openssl")
    folder = Path(tempfile.mkdtemp(prefix="vw-prod-broker-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def prod_broker(broker_folder: Path) -> Iterator[ProdBroker]:
    """`vward broker setup` into a fresh folder, certificates added, Mosquitto started (as
    user `mosquitto` when the tests run as root: the setup has no `user root`)."""
    tls_port, plain_port = free_port(), free_port()
    assert main(["broker", "setup", "--host", "127.0.0.1", "--out", str(broker_folder),
                 "--data-dir", str(broker_folder / "data"), "--tls-bind", "127.0.0.1",
                 "--tls-port", str(tls_port), "--plain-port", str(plain_port)]) == 0
    make_certs(broker_folder / "certs")
    broker = ProdBroker(broker_folder, tls_port, plain_port)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class Device:
    """One paho client that records CONNACK, SUBACK and PUBACK reason codes."""

    def __init__(self, broker: ProdBroker, username: str, password: str, *,
                 client_id: str | None = None, v5: bool = True) -> None:
        # No automatic reconnection: what the broker refuses or drops must stay visible.
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=username if client_id is None else client_id,
                                  protocol=MQTTProtocolVersion.MQTTv5 if v5 else
                                  MQTTProtocolVersion.MQTTv311, reconnect_on_failure=False)
        self.client.username_pw_set(username, password)
        self.client.tls_set(ca_certs=str(broker.ca), cert_reqs=ssl.CERT_REQUIRED)
        self.disconnects = 0
        self.connack: Any = None
        self.messages: list[tuple[str, bytes]] = []
        self._events: dict[str, threading.Event] = {}
        self._subacks: dict[int, list[int]] = {}
        self._pubacks: dict[int, int] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        connected = self._event("connack")
        self.client.connect("127.0.0.1", broker.tls_port)
        self.client.loop_start()
        assert connected.wait(10), "no CONNACK"

    def _event(self, key: str) -> threading.Event:
        return self._events.setdefault(key, threading.Event())

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        self._event("connack").set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        self.disconnects += 1

    @property
    def dropped(self) -> bool:
        """Did the broker close a connection it had accepted?"""
        return self.disconnects > 0 and not self.refused

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        self._subacks[mid] = [r.value for r in reasons]
        self._event(f"sub{mid}").set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self._pubacks[mid] = reason.value
        self._event(f"pub{mid}").set()

    @property
    def refused(self) -> bool:
        return bool(self.connack.is_failure)

    def subscribe(self, topic: str) -> int:
        """The SUBACK's reason code: 1 = QoS 1 granted; 0x80 refused (3.1.1), 0x87 not
        authorized (MQTT 5)."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        assert self._event(f"sub{mid}").wait(10), f"no SUBACK for {topic}"
        return self._subacks[mid][0]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """The PUBACK's reason code (0 = success; MQTT 3.1.1 has none: always 0)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        assert self._event(f"pub{info.mid}").wait(10), f"no PUBACK for {topic}"
        return self._pubacks[info.mid]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def devices(prod_broker: ProdBroker) -> Iterator[Callable[..., Device]]:
    made: list[Device] = []

    def _make(username: str, password: str, **kwargs: Any) -> Device:
        device = Device(prod_broker, username, password, **kwargs)
        made.append(device)
        return device

    yield _make
    for device in made:
        device.close()


def _provision(ward: Any, broker: ProdBroker, *device_ids: str) -> dict[str, str]:
    secrets: dict[str, str] = {}
    with psycopg.connect(ward.url) as conn, broker.admin() as admin:
        for device_id in device_ids:
            ward_has = conn.execute("SELECT 1 FROM devices WHERE id = %s",
                                    (device_id,)).fetchone()
            assert ward_has, f"register {device_id} first"
            secrets[device_id] = provision_device(conn, device_id, broker=admin)
    return secrets


@pytest.fixture
def provision() -> Callable[..., dict[str, str]]:
    """`provision(ward, prod_broker, *device_ids)` → {device id: secret}, on the running
    broker through its control API (`gateway.provision.provision_device`)."""
    return _provision


@pytest.fixture
def mosquitto_ids() -> tuple[int, int] | None:
    """(uid, gid) of user `mosquitto` when the tests run as root and it exists, else None."""
    return _mosquitto_ids() if AS_ROOT else None


@pytest.fixture
def start_mosquitto(broker_folder: Path) -> Iterator[Callable[[str, int], ProdBroker]]:
    """`start_mosquitto(conf_name, port)`: Mosquitto from another config written into the
    folder (one listener on `port`); stopped at teardown."""
    started: list[ProdBroker] = []

    def _start(conf: str, port: int) -> ProdBroker:
        broker = ProdBroker(broker_folder, port, port)
        broker.start(conf)
        started.append(broker)
        return broker

    yield _start
    for broker in started:
        broker.stop()

