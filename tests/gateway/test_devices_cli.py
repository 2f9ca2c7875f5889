"""`vward devices`: register, assign by NHS number, provision, deactivate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.provision import mosquitto_password_ok
from ward.cli import main
from ward.db import registry
from ward.domain.nhs_number import display
from ward.domain.patients import Patient


def test_devices_lifecycle(ward: Any, to_url: Callable[[str], str],
                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str], unique: str) -> None:
    monkeypatch.setenv("VW_DATABASE_URL", to_url(ward.url))
    with psycopg.connect(ward.url) as conn:
        patient = registry.add_patient(conn, Patient("9434765919", "Ada", "Jones",
                                                     dt.date(1948, 3, 1)))
        conn.commit()
    dev = f"pump-{unique}"
    assert main(["devices", "register", dev, "--kind", "infusion_pump", "--model", "X1"]) == 0
    assert main(["devices", "register", dev, "--kind", "infusion_pump"]) == 1
    assert "already registered" in capsys.readouterr().err
    assert main(["devices", "assign", dev, "--patient", *display("9434765919").split(),
                 "--from", "2026-11-24T09:00:00Z"]) == 0
    assert main(["devices", "assign", dev, "--patient", "9434765919",
                 "--from", "2026-11-24T10:00:00Z"]) == 1
    assert "already assigned" in capsys.readouterr().err
    passwd = tmp_path / "vw.passwd"
    assert main(["devices", "provision", dev, "--password-file", str(passwd)]) == 0
    secret = capsys.readouterr().out.strip()
    assert mosquitto_password_ok(passwd.read_text().strip(), secret)
    assert main(["devices", "provision", f"nope-{unique}"]) == 1
    assert main(["devices", "deactivate", dev]) == 0
    with psycopg.connect(ward.url) as conn:
        row = conn.execute(
            "SELECT d.active, d.credential_hash IS NOT NULL, a.patient_id FROM devices d "
            "JOIN device_assignments a ON a.device_pk = d.pk WHERE d.id = %s",
            (dev,)).fetchone()
    assert row == (False, True, patient.id)


def test_reserved_ids_are_refused_by_register_and_provision(
        ward: Any, to_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VW_DATABASE_URL", to_url(ward.url))
    for reserved in ("vw-gateway", "Vw-Admin", "staff-7"):
        assert main(["devices", "register", reserved, "--kind", "home_hub"]) == 1
        assert "reserved" in capsys.readouterr().err
    ward.add("staff-7")  # as the hub registers it for staff entry
    passwd = tmp_path / "vw.passwd"
    assert main(["devices", "provision", "staff-7", "--password-file", str(passwd)]) == 1
    assert "reserved" in capsys.readouterr().err
    assert not passwd.exists()


def test_provisioning_against_an_unreachable_broker_changes_nothing(
        ward: Any, to_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, capsys: pytest.CaptureFixture[str], unique: str) -> None:
    from ward.embedded import free_port

    monkeypatch.setenv("VW_DATABASE_URL", to_url(ward.url))
    dev = f"pox-{unique}"
    ward.add(dev)
    admin = tmp_path / "admin.env"
    admin.write_text(f"VW_MQTT_URL=mqtt://127.0.0.1:{free_port()}\n"
                     "VW_MQTT_USERNAME=vw-admin\nVW_MQTT_PASSWORD=x\n")
    assert main(["devices", "provision", dev, "--broker-admin", str(admin)]) == 1
    assert "cannot reach the broker" in capsys.readouterr().err
    assert ward.count("SELECT count(*) FROM devices WHERE id = %s AND credential_hash IS NULL",
                      dev) == 1
