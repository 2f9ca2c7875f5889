"""Credentials on the production broker (issue 9, items 3, 4 and 6): `vward broker setup`
makes a working broker, provisioning a device never takes it down (on the running broker
through the control API; on a password file with owner and mode kept, after SIGHUP), service
and staff identities can never become devices, and the gateway's credential rotates.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.contract import Measurement, encode_readings, readings_topic, results_topic
from gateway.provision import (
    mosquitto_password_line,
    mosquitto_password_ok,
    upsert_password_line,
)
from ward.cli import main
from ward.embedded import free_port

# --- 3. provisioning never takes the broker down --------------------------------------------

def test_provisioning_on_the_running_broker_needs_no_reload_and_survives_restart(
        prod_broker: Any, devices: Callable[..., Any], ward: Any, unique: str,
        to_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], mosquitto_ids: tuple[int, int] | None,
        poll: Any) -> None:
    dev = f"pox-{unique}"
    ward.add(dev)
    monkeypatch.setenv("VW_DATABASE_URL", to_url(ward.url))
    admin_env = str(prod_broker.folder / "admin.env")
    assert main(["devices", "provision", dev, "--broker-admin", admin_env]) == 0
    first = capsys.readouterr().out.strip()
    connected = devices(dev, first)
    assert not connected.refused  # at once: no file rewrite, no SIGHUP
    if mosquitto_ids is not None:
        assert prod_broker.process is not None
        # The broker dropped root for its own user: it is that user who rewrites the file.
        status = Path(f"/proc/{prod_broker.process.pid}/status").read_text()
        uid_line = next(ln for ln in status.splitlines() if ln.startswith("Uid:"))
        assert int(uid_line.split()[1]) == mosquitto_ids[0]
    # Re-provisioning rotates: the old secret stops working, the new one works.
    assert main(["devices", "provision", dev, "--broker-admin", admin_env]) == 0
    second = capsys.readouterr().out.strip()
    # The plugin drops a client whose password changed ("disconnected by administrative
    # action"), so a stolen secret stops working on live connections too.
    poll(lambda: connected.dropped, 10,
         "the plugin to drop the connection made with the old secret")
    assert devices(dev, first).refused
    assert not devices(dev, second).refused
    # The plugin saved its file as the broker's user: after a restart the device still gets in.
    prod_broker.stop()
    prod_broker.start()
    assert not devices(dev, second).refused
    assert first not in (prod_broker.folder / "dynamic-security.json").read_text()


def test_password_file_provisioning_keeps_a_broker_running_as_mosquitto_readable(
        broker_folder: Path, start_mosquitto: Callable[[str, int], Any], ward: Any,
        unique: str, to_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], mosquitto_ids: tuple[int, int] | None) -> None:
    """Issue 9.3 for a broker still on a password file: the file keeps its owner and mode,
    so after the documented SIGHUP the broker (user `mosquitto`) reads it and lets in the
    service user that was there before and the new device."""
    ids = mosquitto_ids
    if ids is None:
        pytest.skip("needs root and user mosquitto to run the broker as mosquitto")
    port = free_port()
    passwd = broker_folder / "vw.passwd"
    upsert_password_line(passwd, "svc", mosquitto_password_line("svc", "svc-secret"))
    os.chown(passwd, *ids)
    os.chmod(passwd, 0o600)
    (broker_folder / "legacy.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
        "persistence false\n")
    broker = start_mosquitto("legacy.conf", port)
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


def test_a_new_password_file_made_by_root_is_readable_by_the_broker(
        broker_folder: Path, start_mosquitto: Callable[[str, int], Any], ward: Any,
        unique: str, to_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], mosquitto_ids: tuple[int, int] | None) -> None:
    if mosquitto_ids is None:
        pytest.skip("needs root and user mosquitto to run the broker as mosquitto")
    port = free_port()
    passwd = broker_folder / "new.passwd"
    dev = f"pox-{unique}"
    ward.add(dev)
    monkeypatch.setenv("VW_DATABASE_URL", to_url(ward.url))
    assert main(["devices", "provision", dev, "--password-file", str(passwd)]) == 0
    secret = capsys.readouterr().out.strip()
    (broker_folder / "new.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
        "persistence false\n")
    start_mosquitto("new.conf", port)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=dev)
    client.username_pw_set(dev, secret)
    assert client.connect("127.0.0.1", port) == 0
    assert _connack(client) == 0
    client.disconnect()


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
        prod_broker: Any, devices: Callable[..., Any], ward: Any,
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



# --- 6. one command makes a working broker --------------------------------------------------

def test_broker_setup_makes_a_working_broker_for_a_device_and_the_gateway(
        prod_broker: Any, provision: Any, devices: Callable[..., Any], ward: Any, unique: str,
        start_gateway: Any, poll: Any, capsys: pytest.CaptureFixture[str],
        mosquitto_ids: tuple[int, int] | None) -> None:
    folder = prod_broker.folder
    for name in ("dynamic-security.json", "gateway.env", "admin.env"):
        assert (folder / name).stat().st_mode & 0o077 == 0, name
    if mosquitto_ids is not None:
        assert (folder / "dynamic-security.json").stat().st_uid == mosquitto_ids[0]
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
        prod_broker: Any, devices: Callable[..., Any],
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
    # The admin rotates its own secret the same way; admin.env then holds the one that works.
    admin_env = str(prod_broker.folder / "admin.env")
    assert main(["broker", "rotate", "vw-admin", "--broker-admin", admin_env,
                 "--env-file", admin_env]) == 0
    with prod_broker.admin() as admin:
        assert admin.call([{"command": "getClient", "username": "vw-gateway"}])
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


def test_upsert_replaces_a_users_line_and_keeps_owner_and_mode(
        tmp_path: Path, mosquitto_ids: tuple[int, int] | None) -> None:
    path = tmp_path / "p"
    upsert_password_line(path, "a", mosquitto_password_line("a", "1"))
    st = path.stat()
    if mosquitto_ids is None:
        assert st.st_mode & 0o777 == 0o600  # a new file: owner only
    else:  # made by root: readable by the broker's group too, nobody else
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, mosquitto_ids[1], 0o640)
    path.chmod(0o640)
    upsert_password_line(path, "b", mosquitto_password_line("b", "2"))
    upsert_password_line(path, "a", mosquitto_password_line("a", "3"))
    lines = path.read_text().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["b", "a"]
    assert mosquitto_password_ok(lines[1], "3")
    assert path.stat().st_mode & 0o777 == 0o640


def test_provisioning_reuses_a_devices_orphaned_role_but_not_a_foreign_one(
        prod_broker: Any, provision: Any, devices: Callable[..., Any], ward: Any,
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


def reading(msg_id: str, seconds: int = 0) -> bytes:
    at = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    return encode_readings(msg_id, at, [Measurement("spo2", 95, "%", at)])

