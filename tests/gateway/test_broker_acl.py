"""The production broker config (deploy/mosquitto) on a real Mosquitto: TLS, passwords, ACL.

The test renders deploy/mosquitto/mosquitto.conf with throwaway paths (a free loopback port,
a self-signed certificate made with openssl, a password file written by
`provision_device`) and proves a device cannot publish as another device (the gateway never
sees it) nor read another device's results.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest

from gateway.contract import Measurement, encode_readings, readings_topic, results_topic
from gateway.provision import (
    mosquitto_password_line,
    mosquitto_password_ok,
    provision_device,
    upsert_password_line,
)
from ward.embedded import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@dataclass
class SecureBroker:
    port: int
    ca: Path
    passwd: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"


def render_config(folder: Path, port: int, plain_port: int) -> str:
    text = (REPO / "deploy/mosquitto/mosquitto.conf").read_text()
    text = text.replace("/mosquitto/config/certs/", f"{folder}/")
    text = text.replace("/mosquitto/config/", f"{folder}/")
    text = text.replace("/mosquitto/data/", f"{folder}/data/")
    text = re.sub(r"^listener 8883$", f"listener {port} 127.0.0.1", text, flags=re.M)
    text = re.sub(r"^listener 1883$", f"listener {plain_port} 127.0.0.1", text, flags=re.M)
    if os.geteuid() == 0:
        # As root Mosquitto drops to user "mosquitto", who cannot read pytest's private
        # tmp_path; the throwaway broker keeps the test runner's user instead.
        text = "user root\n" + text
    return text


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureBroker]:
    if not Path(MOSQUITTO).exists() or shutil.which("openssl") is None:
        pytest.skip("needs mosquitto and openssl")
    (tmp_path / "data").mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(tmp_path / "server.key"), "-out", str(tmp_path / "server.crt"),
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True)
    shutil.copy(tmp_path / "server.crt", tmp_path / "ca.crt")
    shutil.copy(REPO / "deploy/mosquitto/acl", tmp_path / "acl")
    (tmp_path / "vw.passwd").write_text("")
    port, plain = free_port(), free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(render_config(tmp_path, port, plain))
    with (tmp_path / "broker.log").open("wb") as log:
        process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        yield SecureBroker(port, tmp_path / "ca.crt", tmp_path / "vw.passwd", process)
    finally:
        process.terminate()
        process.wait(10)


def reload(broker: SecureBroker) -> None:
    broker.process.send_signal(1)  # SIGHUP: Mosquitto rereads the password file and ACL


def connect(broker: SecureBroker, username: str, password: str,
            on_message: Any = None, client_id: str | None = None) -> paho.Client:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                         client_id=client_id or f"{username}-test",
                         protocol=paho.MQTTv5)
    client.username_pw_set(username, password)
    client.tls_set(ca_certs=str(broker.ca), cert_reqs=ssl.CERT_REQUIRED)
    connected = threading.Event()
    outcome: list[Any] = []

    def _on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        outcome.append(reason)
        connected.set()

    client.on_connect = _on_connect
    if on_message is not None:
        client.on_message = on_message
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert connected.wait(10)
    if outcome[0].is_failure:
        client.loop_stop()
        raise PermissionError(str(outcome[0]))
    return client


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


def test_upsert_replaces_a_users_line(tmp_path: Path) -> None:
    path = tmp_path / "p"
    upsert_password_line(path, "a", mosquitto_password_line("a", "1"))
    upsert_password_line(path, "b", mosquitto_password_line("b", "2"))
    upsert_password_line(path, "a", mosquitto_password_line("a", "3"))
    lines = path.read_text().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["b", "a"]
    assert mosquitto_password_ok(lines[1], "3")
    assert path.stat().st_mode & 0o777 == 0o600


def test_devices_are_confined_to_their_own_topics(
    secure_broker: SecureBroker, ward: Any, start_gateway: Any, poll: Any, unique: str,
) -> None:
    dev_a, dev_b = f"a-{unique}", f"b-{unique}"
    ward.add(dev_a)
    ward.add(dev_b)
    with psycopg.connect(ward.url) as conn:
        secret_a = provision_device(conn, dev_a, secure_broker.passwd)
        secret_b = provision_device(conn, dev_b, secure_broker.passwd)
        row = conn.execute("SELECT credential_hash FROM devices WHERE id = %s",
                           (dev_a,)).fetchone()
    assert row is not None
    assert row[0].startswith("$argon2")
    assert secret_a not in secure_broker.passwd.read_text()
    gateway_secret = "gw-" + unique
    upsert_password_line(secure_broker.passwd, "vw-gateway",
                         mosquitto_password_line("vw-gateway", gateway_secret))
    reload(secure_broker)

    with pytest.raises(PermissionError):
        connect(secure_broker, dev_a, "wrong-secret")

    gw = start_gateway(ward.url, secure_broker.url, group="vw-gateway",
                       args=("--ca-file", str(secure_broker.ca)),
                       VW_MQTT_USERNAME="vw-gateway", VW_MQTT_PASSWORD=gateway_secret)
    seen_by_a: list[str] = []
    seen_by_b: list[str] = []
    client_a = connect(secure_broker, dev_a, secret_a,
                       lambda _c, _u, m: seen_by_a.append(m.topic))
    client_b = connect(secure_broker, dev_b, secret_b,
                       lambda _c, _u, m: seen_by_b.append(m.topic))
    try:
        # A tries to read B's results and everyone's; it is granted nothing beyond its own.
        client_a.subscribe([(results_topic(dev_b), 1), ("vw/v1/devices/#", 1)])
        client_a.subscribe(results_topic(dev_a), 1)
        client_b.subscribe(results_topic(dev_b), 1)
        m = Measurement("spo2", 95, "%", dt.datetime.now(dt.UTC))
        # A publishes as B (on a second connection): Mosquitto refuses it and drops that
        # connection; the gateway never sees the message.
        forger = connect(secure_broker, dev_a, secret_a, client_id=f"{dev_a}-forger")
        forger.publish(readings_topic(dev_b), encode_readings("forged", m.measured_at, [m]),
                       qos=1)
        poll(lambda: not forger.is_connected(), 10, "the broker to drop the forger")
        forger.loop_stop()
        # B and A publish their own: stored and answered to each alone.
        client_b.publish(readings_topic(dev_b), encode_readings("b-own", m.measured_at, [m]),
                         qos=1).wait_for_publish(10)
        client_a.publish(readings_topic(dev_a), encode_readings("a-own", m.measured_at, [m]),
                         qos=1).wait_for_publish(10)
        poll(lambda: results_topic(dev_b) in seen_by_b and results_topic(dev_a) in seen_by_a,
             20, "both devices' results")
        assert ward.count("SELECT count(*) FROM readings WHERE msg_id = 'forged'") == 0
        assert ward.count("SELECT count(*) FROM rejected_messages WHERE msg_id = 'forged'") == 0
        assert ward.count("SELECT count(*) FROM readings WHERE msg_id IN ('a-own', 'b-own')") == 2
        assert set(seen_by_a) == {results_topic(dev_a)}
        assert set(seen_by_b) == {results_topic(dev_b)}
    finally:
        for client in (client_a, client_b):
            with contextlib.suppress(Exception):
                client.loop_stop()
                client.disconnect()
    assert gw.stop() == 0
    assert gateway_secret not in gw.log()
