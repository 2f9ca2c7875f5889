"""The production broker on a real Mosquitto: the setup `vward broker setup` writes (TLS,
loopback plain listener, dynamic-security plugin), started as its own user `mosquitto` when
the tests run as root, with the real gateway behind it.

Each test plays the attacker of issue 9 with one device's credentials: it must not subscribe
beyond its own topics (the broker refuses in the SUBACK), make another device's readings
vanish through the gateway's `$share` group, use another client id (the gateway's), forge
another device's readings, or obtain a service identity's credential; provisioning must never
take the broker down.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pwd
import shutil
import socket
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
from gateway.broker_setup import BrokerPlan, render_config
from gateway.contract import (
    Measurement,
    encode_readings,
    readings_topic,
    results_topic,
    status_topic,
)
from gateway.provision import (
    mosquitto_password_line,
    mosquitto_password_ok,
    provision_device,
    upsert_password_line,
)
from ward.cli import main
from ward.embedded import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
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
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=username if client_id is None else client_id,
                                  protocol=MQTTProtocolVersion.MQTTv5 if v5 else
                                  MQTTProtocolVersion.MQTTv311)
        self.client.username_pw_set(username, password)
        self.client.tls_set(ca_certs=str(broker.ca), cert_reqs=ssl.CERT_REQUIRED)
        self.client.reconnect_delay_set(30, 60)  # a refused client must not retry meanwhile
        self.connack: Any = None
        self.messages: list[tuple[str, bytes]] = []
        self._events: dict[str, threading.Event] = {}
        self._subacks: dict[int, list[int]] = {}
        self._pubacks: dict[int, int] = {}
        self.client.on_connect = self._on_connect
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


def provision(ward: Any, broker: ProdBroker, *device_ids: str) -> dict[str, str]:
    secrets: dict[str, str] = {}
    with psycopg.connect(ward.url) as conn, broker.admin() as admin:
        for device_id in device_ids:
            ward_has = conn.execute("SELECT 1 FROM devices WHERE id = %s",
                                    (device_id,)).fetchone()
            assert ward_has, f"register {device_id} first"
            secrets[device_id] = provision_device(conn, device_id, broker=admin)
    return secrets


def reading(msg_id: str, seconds: int = 0) -> bytes:
    at = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    return encode_readings(msg_id, at, [Measurement("spo2", 95, "%", at)])


# deploy/mosquitto/mosquitto.conf is this plan rendered (the paths of deploy/compose).
COMPOSE_PLAN = BrokerPlan(
    host="broker", config_dir=Path("/mosquitto/config"), data_dir=Path("/mosquitto/data"),
    plugin="/usr/lib/mosquitto_dynamic_security.so",
    dynsec_path=Path("/mosquitto/data/dynamic-security.json"))
NOT_AUTHORIZED_V5 = 0x87
FAILURE_V311 = 0x80


# --- 1. subscriptions ----------------------------------------------------------------------

@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_a_device_may_subscribe_to_its_own_results_and_status_only(
        prod_broker: ProdBroker, devices: Callable[..., Device], ward: Any, unique: str,
        v5: bool) -> None:
    dev_a, dev_b = f"a-{unique}", f"b-{unique}"
    ward.add(dev_a)
    ward.add(dev_b)
    secret = provision(ward, prod_broker, dev_a, dev_b)[dev_a]
    a = devices(dev_a, secret, v5=v5)
    assert not a.refused
    refused = NOT_AUTHORIZED_V5 if v5 else FAILURE_V311
    for topic in ("#", "+/#", "vw/#", "vw/v1/devices/+/readings", "vw/v1/devices/+/results",
                  results_topic(dev_b), status_topic(dev_b), readings_topic(dev_a),
                  "$share/vw-gateway/vw/v1/devices/+/readings",
                  f"$share/vw-gateway/{readings_topic(dev_b)}",
                  f"$share/{dev_a}/{results_topic(dev_a)}", "$SYS/#",
                  "$CONTROL/dynamic-security/v1/response"):
        assert a.subscribe(topic) == refused, topic
    assert a.subscribe(results_topic(dev_a)) == 1
    assert a.subscribe(status_topic(dev_a)) == 1
    # Nor may A connect under another client id, whatever the protocol version.
    assert devices(dev_a, secret, client_id=dev_b, v5=v5).refused
    assert devices(dev_a, secret, client_id="vw-gateway-1", v5=v5).refused


def test_a_device_cannot_make_another_devices_readings_vanish(
        prod_broker: ProdBroker, devices: Callable[..., Device], ward: Any, unique: str,
        start_gateway: Any, poll: Any) -> None:
    """Issue 9.1: A joins the gateway's share group; every one of B's readings is stored."""
    dev_a, dev_b = f"a-{unique}", f"b-{unique}"
    ward.add(dev_a)
    ward.add(dev_b)
    secrets = provision(ward, prod_broker, dev_a, dev_b)
    gw = start_gateway(ward.url, prod_broker.plain_url, group="vw-gateway",
                       **prod_broker.gateway_creds())
    a = devices(dev_a, secrets[dev_a])
    for channel in ("readings", "senml", "status"):
        assert a.subscribe(f"$share/vw-gateway/vw/v1/devices/+/{channel}") == NOT_AUTHORIZED_V5
    b = devices(dev_b, secrets[dev_b])
    for i in range(20):
        assert b.publish(readings_topic(dev_b), reading(f"b-{i}", i)) == 0
    poll(lambda: ward.count("SELECT count(*) FROM readings WHERE device_id = %s", dev_b) == 20,
         20, "all 20 of B's readings")
    assert not a.messages
    assert gw.stop() == 0


# --- 2. client ids -------------------------------------------------------------------------

def test_a_device_cannot_take_the_gateways_session(
        prod_broker: ProdBroker, devices: Callable[..., Device], ward: Any, unique: str,
        start_gateway: Any, poll: Any) -> None:
    """Issue 9.2: with the gateway stopped, A connects with the gateway's client id; the
    broker refuses it, and the readings queued for the gateway's session all arrive."""
    dev_a, dev_b = f"a-{unique}", f"b-{unique}"
    ward.add(dev_a)
    ward.add(dev_b)
    secrets = provision(ward, prod_broker, dev_a, dev_b)
    gw_id = f"vw-gateway-{unique}"
    # A plain subscription: its session survives the gateway's stop (Mosquitto keeps it).
    gw = start_gateway(ward.url, prod_broker.plain_url, client_id=gw_id,
                       VW_MQTT_SHARE_GROUP="", **prod_broker.gateway_creds())
    assert gw.stop() == 0
    b = devices(dev_b, secrets[dev_b])
    for i in range(10):
        assert b.publish(readings_topic(dev_b), reading(f"queued-{i}", i)) == 0
    for client_id in (gw_id, dev_b, f"{dev_a}-2"):
        attacker = devices(dev_a, secrets[dev_a], client_id=client_id)
        assert attacker.refused, client_id
        assert attacker.connack.value == NOT_AUTHORIZED_V5
    # An empty id (the broker would make one up) is refused too.
    assert devices(dev_a, secrets[dev_a], client_id="").refused
    # Nor can a device present the gateway's username with its own secret.
    assert devices("vw-gateway", secrets[dev_a], client_id=gw_id).refused
    gw = start_gateway(ward.url, prod_broker.plain_url, client_id=gw_id,
                       VW_MQTT_SHARE_GROUP="", **prod_broker.gateway_creds())
    poll(lambda: ward.count("SELECT count(*) FROM readings WHERE device_id = %s", dev_b) == 10,
         20, "the 10 readings queued for the gateway")
    assert "session_present=True" in gw.log()
    assert gw.stop() == 0


# --- 3. provisioning never takes the broker down --------------------------------------------

def test_provisioning_on_the_running_broker_needs_no_reload_and_survives_restart(
        prod_broker: ProdBroker, devices: Callable[..., Device], ward: Any, unique: str,
        to_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    dev = f"pox-{unique}"
    ward.add(dev)
    monkeypatch.setenv("VW_DATABASE_URL", to_url(ward.url))
    admin_env = str(prod_broker.folder / "admin.env")
    assert main(["devices", "provision", dev, "--broker-admin", admin_env]) == 0
    first = capsys.readouterr().out.strip()
    assert not devices(dev, first).refused  # at once: no file rewrite, no SIGHUP
    if AS_ROOT and _mosquitto_ids() is not None:
        assert prod_broker.process is not None
        # The broker dropped root for its own user: it is that user who rewrites the file.
        status = Path(f"/proc/{prod_broker.process.pid}/status").read_text()
        uid_line = next(ln for ln in status.splitlines() if ln.startswith("Uid:"))
        assert int(uid_line.split()[1]) == _mosquitto_ids()[0]  # type: ignore[index]
    # Re-provisioning rotates: the old secret stops working, the new one works.
    assert main(["devices", "provision", dev, "--broker-admin", admin_env]) == 0
    second = capsys.readouterr().out.strip()
    assert devices(dev, first).refused
    assert not devices(dev, second).refused
    # The plugin saved its file as the broker's user: after a restart the device still gets in.
    prod_broker.stop()
    prod_broker.start()
    assert not devices(dev, second).refused
    assert first not in (prod_broker.folder / "dynamic-security.json").read_text()


def test_password_file_provisioning_keeps_a_broker_running_as_mosquitto_readable(
        broker_folder: Path, ward: Any, unique: str, to_url: Callable[[str], str],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 9.3 for a broker still on a password file: the file keeps its owner and mode,
    so after the documented SIGHUP the broker (user `mosquitto`) reads it and lets in the
    service user that was there before and the new device."""
    ids = _mosquitto_ids()
    if not AS_ROOT or ids is None:
        pytest.skip("needs root and user mosquitto to run the broker as mosquitto")
    port = free_port()
    passwd = broker_folder / "vw.passwd"
    upsert_password_line(passwd, "svc", mosquitto_password_line("svc", "svc-secret"))
    os.chown(passwd, *ids)
    os.chmod(passwd, 0o600)
    (broker_folder / "legacy.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
        "persistence false\n")
    broker = ProdBroker(broker_folder, port, port)
    broker.start("legacy.conf")
    try:
        dev = f"pox-{unique}"
        ward.add(dev)
        monkeypatch.setenv("VW_DATABASE_URL", to_url(ward.url))
        assert main(["devices", "provision", dev, "--password-file", str(passwd)]) == 0
        secret = capsys.readouterr().out.strip()
        st = passwd.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (*ids, 0o600)
        broker.reload()

        def refused(user: str, password: str) -> bool:
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=user)
            client.username_pw_set(user, password)
            try:
                return client.connect("127.0.0.1", port) != 0 or _connack(client) != 0
            finally:
                client.disconnect()

        assert not refused("svc", "svc-secret")
        assert not refused(dev, secret)
        assert refused(dev, "wrong")
        assert "Error" not in broker.log()
    finally:
        broker.stop()


def _connack(client: paho.Client) -> int:
    got: list[int] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: got.append(reason.value)
    for _ in range(50):
        client.loop(0.1)
        if got:
            return got[0]
    return -1


# --- 4. reserved identities -----------------------------------------------------------------

def test_service_and_staff_identities_cannot_become_devices(
        prod_broker: ProdBroker, devices: Callable[..., Device], ward: Any,
        to_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VW_DATABASE_URL", to_url(ward.url))
    for reserved in ("vw-gateway", "VW-Gateway", "vw-gateway-1", "vw-admin", "staff-3"):
        assert main(["devices", "register", reserved, "--kind", "pulse_oximeter"]) == 1
        assert "reserved" in capsys.readouterr().err
    # The hub registers staff-3 itself (staff entry); it still never gets a broker credential.
    ward.add("staff-3")
    admin_env = str(prod_broker.folder / "admin.env")
    assert main(["devices", "provision", "staff-3", "--broker-admin", admin_env]) == 1
    assert "reserved" in capsys.readouterr().err
    with prod_broker.admin() as admin:
        found = admin.call([{"command": "getClient", "username": "staff-3"}],
                           tolerate=frozenset({"Client not found"}))
    assert "error" in found[0]
    # The gateway's credential is untouched: it still connects with the secret it was made with.
    creds = prod_broker.gateway_creds()
    assert not devices(creds["VW_MQTT_USERNAME"], creds["VW_MQTT_PASSWORD"],
                       client_id="vw-gateway-check").refused


# --- 5. listeners and cross-device publishes ------------------------------------------------

def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent for UDP connect
        except OSError:
            return None
        address: str = sock.getsockname()[0]
    return None if address.startswith("127.") else address


def test_the_plain_listener_serves_loopback_only(prod_broker: ProdBroker) -> None:
    conf = (prod_broker.folder / "mosquitto.conf").read_text()
    assert f"listener {prod_broker.plain_port} 127.0.0.1\n" in conf
    shipped = (REPO / "deploy/mosquitto/mosquitto.conf").read_text()
    assert "\nlistener 1883 127.0.0.1\n" in shipped
    assert shipped == render_config(COMPOSE_PLAN), "regenerate deploy/mosquitto/mosquitto.conf"
    outside = _outside_address()
    if outside is None:
        pytest.skip("this machine has no non-loopback address to try")
    with pytest.raises((ConnectionRefusedError, TimeoutError)), \
            socket.create_connection((outside, prod_broker.plain_port), 2):
        pass
    with socket.create_connection(("127.0.0.1", prod_broker.plain_port), 2):
        pass


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_a_cross_device_publish_is_dropped_and_answered_per_protocol(
        prod_broker: ProdBroker, devices: Callable[..., Device], ward: Any, unique: str,
        start_gateway: Any, poll: Any, v5: bool) -> None:
    """What docs/mqtt.md says, measured: MQTT 5 gets PUBACK 0x87 (not authorized), MQTT
    3.1.1 a plain PUBACK (the protocol has no reason code); then Mosquitto 2.0.11 closes the
    connection (with `max_queued_messages 0` its bad-publish path always reports "quota
    exceeded"); the gateway never sees the forged message."""
    dev_a, dev_b = f"a-{unique}", f"b-{unique}"
    ward.add(dev_a)
    ward.add(dev_b)
    secrets = provision(ward, prod_broker, dev_a, dev_b)
    gw = start_gateway(ward.url, prod_broker.plain_url, **prod_broker.gateway_creds())
    forger = devices(dev_a, secrets[dev_a], v5=v5)
    assert forger.publish(readings_topic(dev_b), reading("forged")) == (
        NOT_AUTHORIZED_V5 if v5 else 0)
    poll(lambda: not forger.client.is_connected(), 10, "the broker to close the forger")
    forger.close()
    a = devices(dev_a, secrets[dev_a], v5=v5)
    assert a.subscribe(results_topic(dev_a)) == 1
    assert a.publish(readings_topic(dev_a), reading("own")) == 0
    poll(lambda: any(json.loads(p).get("msg_id") == "own" for _, p in a.messages), 20,
         "A's own result")
    assert ward.count("SELECT count(*) FROM readings WHERE msg_id = 'forged'") == 0
    assert ward.count("SELECT count(*) FROM rejected_messages WHERE msg_id = 'forged'") == 0
    assert ward.count("SELECT count(*) FROM readings WHERE msg_id = 'own'") == 1
    assert "Denied PUBLISH" not in gw.log()
    assert gw.stop() == 0


# --- 6. one command makes a working broker --------------------------------------------------

def test_broker_setup_makes_a_working_broker_for_a_device_and_the_gateway(
        prod_broker: ProdBroker, devices: Callable[..., Device], ward: Any, unique: str,
        start_gateway: Any, poll: Any, capsys: pytest.CaptureFixture[str]) -> None:
    folder = prod_broker.folder
    for name in ("dynamic-security.json", "gateway.env", "admin.env"):
        assert (folder / name).stat().st_mode & 0o077 == 0, name
    ids = _mosquitto_ids()
    if AS_ROOT and ids is not None:
        assert (folder / "dynamic-security.json").stat().st_uid == ids[0]
    # A second run never overwrites the secrets in use.
    assert main(["broker", "setup", "--host", "127.0.0.1", "--out", str(folder)]) == 1
    assert "never overwritten" in capsys.readouterr().err
    dev = f"pox-{unique}"
    ward.add(dev)
    secret = provision(ward, prod_broker, dev)[dev]
    gw = start_gateway(ward.url, prod_broker.plain_url, group="vw-gateway",
                       **prod_broker.gateway_creds())
    device = devices(dev, secret)
    assert device.subscribe(results_topic(dev)) == 1
    assert device.publish(readings_topic(dev), reading("through-setup")) == 0
    poll(lambda: device.messages, 20, "the device's result")
    result = json.loads(device.messages[0][1])
    assert (result["msg_id"], result["status"]) == ("through-setup", "accepted")
    assert ward.count("SELECT count(*) FROM readings WHERE msg_id = 'through-setup'") == 1
    assert gw.stop() == 0
    assert prod_broker.gateway_creds()["VW_MQTT_PASSWORD"] not in gw.log()


def test_the_gateway_credential_rotates(
        prod_broker: ProdBroker, devices: Callable[..., Device],
        capsys: pytest.CaptureFixture[str]) -> None:
    old = prod_broker.gateway_creds()["VW_MQTT_PASSWORD"]
    assert main(["broker", "rotate", "vw-gateway",
                 "--broker-admin", str(prod_broker.folder / "admin.env"),
                 "--env-file", str(prod_broker.folder / "gateway.env")]) == 0
    new = prod_broker.gateway_creds()["VW_MQTT_PASSWORD"]
    assert new != old
    assert (prod_broker.folder / "gateway.env").stat().st_mode & 0o777 == 0o600
    assert devices("vw-gateway", old, client_id="vw-gateway-old").refused
    assert not devices("vw-gateway", new, client_id="vw-gateway-new").refused
    capsys.readouterr()


def test_mosquitto_passwd_lines_verify_with_ours(tmp_path: Path) -> None:
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd not installed")
    path = tmp_path / "p"
    path.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(path), "dev", "hello"], check=True)
    line = path.read_text().strip()
    assert mosquitto_password_ok(line, "hello")
    assert not mosquitto_password_ok(line, "hullo")
    ours = mosquitto_password_line("dev", "hello", salt=b"0123456789ab")
    assert mosquitto_password_ok(ours, "hello")


def test_upsert_replaces_a_users_line_and_keeps_owner_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "p"
    upsert_password_line(path, "a", mosquitto_password_line("a", "1"))
    assert path.stat().st_mode & 0o777 == 0o600  # a new file: owner only
    path.chmod(0o640)
    upsert_password_line(path, "b", mosquitto_password_line("b", "2"))
    upsert_password_line(path, "a", mosquitto_password_line("a", "3"))
    lines = path.read_text().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["b", "a"]
    assert mosquitto_password_ok(lines[1], "3")
    assert path.stat().st_mode & 0o777 == 0o640


def test_provisioning_reuses_a_devices_orphaned_role_but_not_a_foreign_one(
        prod_broker: ProdBroker, devices: Callable[..., Device], ward: Any,
        unique: str) -> None:
    from gateway import dynsec
    from gateway.provision import ProvisionError

    orphan, foreign = f"orphan-{unique}", f"foreign-{unique}"
    ward.add(orphan)
    ward.add(foreign)
    with prod_broker.admin() as admin:
        # A run that died between createRole and createClient leaves the role behind.
        admin.call([dynsec.create_device(orphan, "x")[0]])
        admin.call([{"command": "createRole", "rolename": dynsec.device_role(foreign),
                     "acls": [{"acltype": "subscribePattern", "topic": "#", "allow": True}]}])
    secret = provision(ward, prod_broker, orphan)[orphan]
    assert not devices(orphan, secret).refused
    with pytest.raises(ProvisionError, match="other ACLs"):
        provision(ward, prod_broker, foreign)
