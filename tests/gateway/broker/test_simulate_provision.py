"""`vward simulate --broker-admin admin.env` on the production broker (dynamic security):
the scenario's devices are registered and provisioned as `vward devices provision` does it
(one code path: `gateway.provision.provision_device`), then publish as themselves, and the
real gateway behind the broker stores what they send. `--password-file` still writes a
Mosquitto password file for a broker without the plugin.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from gateway import dynsec
from simulators.engine import Engine
from simulators.scenario import load
from ward.cli import main

START = "2026-01-05T08:00:00Z"
DURATION = "1h"


def _scenario(folder: Path, name: str) -> Path:
    """A small clean ward (no faults: every message is a device's own, on its own topic)."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "seed": 11, "patients": 3,
        "trajectories": {"stable": 2, "sepsis": 1},
        "kits": [{"name": "k", "share": 1,
                  "devices": ["wearable_oximeter", "bp_cuff", "thermometer", "home_hub"]}],
        "infusion_pumps": 1, "senml": 0.3,
        "faults": {"battery_drain": 0, "offline_spell": 0, "duplicate": 0, "clock_drift": 0,
                   "late": 0, "malformed": 0},
    }))
    return path


def _publishing_devices(scenario_file: Path) -> set[str]:
    """The devices that send readings in the run (`--start`, `--duration`), from the same
    deterministic stream the command publishes."""
    scenario = load(str(scenario_file))
    engine = Engine(scenario, start=dt.datetime.fromisoformat(START.replace("Z", "+00:00")),
                    duration=dt.timedelta(hours=1))
    return {m.topic.split("/")[3] for m in engine.messages()
            if m.topic.endswith(("/readings", "/senml"))}


def test_simulate_provisions_its_devices_on_the_running_broker_and_publishes_as_them(
        prod_broker: Any, ward: Any, unique: str, start_gateway: Any, poll: Any,
        to_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], broker_folder: Path) -> None:
    scenario_file = _scenario(broker_folder, f"s{unique}")
    expected = _publishing_devices(scenario_file)
    assert expected
    gw = start_gateway(ward.url, prod_broker.plain_url, group="vw-gateway",
                       **prod_broker.gateway_creds())
    monkeypatch.setenv("VW_DATABASE_URL", to_url(ward.url))
    # No VW_MQTT_URL: the devices publish to the broker of admin.env (its loopback listener).
    monkeypatch.delenv("VW_MQTT_URL", raising=False)
    capsys.readouterr()
    assert main(["simulate", str(scenario_file), "--start", START, "--duration", DURATION,
                 "--broker-admin", str(prod_broker.folder / "admin.env")]) == 0
    err = capsys.readouterr().err
    with psycopg.connect(ward.url) as conn:
        devices = [r[0] for r in conn.execute(
            "SELECT id FROM devices WHERE credential_hash IS NOT NULL ORDER BY id")]
        assert conn.execute("SELECT count(*) FROM devices WHERE credential_hash IS NULL"
                            ).fetchone() == (0,)
    assert len(devices) == 3 * 4 + 1
    assert f"provisioned {len(devices)} device(s) on the broker" in err
    # Every device is its own client on the broker, bound to its own id and role.
    with prod_broker.admin() as admin:
        answers = admin.call([dynsec.get_client(d) for d in devices])
    for device_id, answer in zip(devices, answers, strict=True):
        assert dynsec.is_device_client(answer["data"]["client"], device_id), answer
    # Every message was acknowledged, and the gateway stored what every device sent.
    published = err.split("simulate: ", 1)[1].split(" message(s) published, ")
    sent, acked = int(published[0].replace(",", "")), int(published[1].split()[0].replace(",", ""))
    assert sent == acked > 0, err

    def stored() -> set[str]:
        with psycopg.connect(ward.url) as conn:
            return {r[0] for r in conn.execute(
                "SELECT DISTINCT device_id FROM readings")}

    poll(lambda: stored() >= expected, 30, "the gateway to store every device's readings")
    assert ward.count("SELECT count(*) FROM rejected_messages") == 0
    assert gw.stop() == 0
    log = prod_broker.log()
    assert "not authori" not in log.lower(), log


def test_simulate_password_file_provisioning_still_writes_mosquitto_lines(
        ward: Any, unique: str, tmp_path: Path, to_url: Callable[[str], str],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    scenario_file = _scenario(tmp_path, f"s{unique}")
    passwd = tmp_path / "vw.passwd"
    monkeypatch.setenv("VW_DATABASE_URL", to_url(ward.url))
    assert main(["simulate", str(scenario_file), "--start", START, "--register-only",
                 "--password-file", str(passwd)]) == 0
    assert "provisioned 13 device(s) in" in capsys.readouterr().err
    lines = dict(line.split(":", 1) for line in passwd.read_text().splitlines())
    with psycopg.connect(ward.url) as conn:
        ids = {r[0] for r in conn.execute(
            "SELECT id FROM devices WHERE credential_hash IS NOT NULL")}
    assert set(lines) == ids
    assert len(ids) == 13
    assert all(hashed.startswith("$7$101$") for hashed in lines.values())
    # The old spelling still works (scripts written for it), and re-keys every device.
    assert main(["simulate", str(scenario_file), "--start", START, "--register-only",
                 "--provision", str(passwd)]) == 0
    after = dict(line.split(":", 1) for line in passwd.read_text().splitlines())
    assert set(after) == set(lines)
    assert all(after[i] != lines[i] for i in lines)
