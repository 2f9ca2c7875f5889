"""Names and units on screen: the catalogue's display names and units people write, never
UCUM codes or identifiers turned into title case."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from ward.domain.vitals import (
    CATALOGUE,
    DISPLAY_UNITS,
    VitalCode,
    display_name,
    display_text,
    display_unit,
)
from ward.hub.auth import Role

T0 = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)  # the `clock` fixture's start


@pytest.mark.parametrize(("unit", "shown"), [
    ("Cel", "°C"), ("mm[Hg]", "mmHg"), ("/min", "/min"), ("%", "%"), ("L/min", "L/min"),
    ("mL/h", "mL/h"), ("mL", "mL"), ("[degF]", "°F"), ("{ACVPU}", ""), ("{state}", ""),
    ("", ""), (None, ""), ("furlong", "furlong"),
])
def test_display_unit(unit: str | None, shown: str) -> None:
    assert display_unit(unit) == shown


def test_every_catalogue_unit_has_a_display_form() -> None:
    for spec in CATALOGUE.values():
        assert spec.unit in DISPLAY_UNITS or spec.unit.startswith("{"), spec.unit
        assert "[" not in display_unit(spec.unit)


@pytest.mark.parametrize(("code", "shown"), [
    ("spo2", "SpO2"), ("resp_rate", "Respiration rate"), ("systolic_bp", "Systolic BP"),
    ("air_or_oxygen", "Air or oxygen"), ("temperature", "Temperature"),
    ("consciousness", "Consciousness (ACVPU)"), ("not_a_vital", "not a vital"),
])
def test_display_name(code: str, shown: str) -> None:
    assert display_name(code) == shown


def test_patient_page_shows_names_and_units_people_write(
        app_client: TestClient, staff: Any, admit: Callable[..., int],
        db: psycopg.Connection[Any]) -> None:
    pid = admit()
    for code, value, unit in (("spo2", 93, "%"), ("resp_rate", 22, "/min"),
                              ("systolic_bp", 104, "mm[Hg]"), ("temperature", 38.4, "Cel"),
                              ("pulse", 112, "/min"), ("on_oxygen", 0, "{air:0,oxygen:1}")):
        db.execute(
            "INSERT INTO latest_readings (patient_id, code, measured_at, value, unit, device_id)"
            " VALUES (%s, %s, %s, %s, %s, 'dev-1')",
            (pid, code, T0 - dt.timedelta(minutes=5), value, unit))
    db.commit()
    html = app_client.get(f"/patients/{pid}", headers=staff(Role.HUB_NURSE).headers).text
    for raw in ("mm[Hg]", "Spo2", "Resp Rate", "Systolic Bp", "Air Or Oxygen", "Cel<",
                "Temperature Cel", "{air:0,oxygen:1}", "resp rate", "air or oxygen"):
        assert raw not in html, raw
    for shown in ("SpO2", "Respiration rate", "Systolic BP", "Air or oxygen", "38.4 °C",
                  "104 mmHg", "22 /min", "Temperature <tspan class=\"muted\">°C"):
        assert shown in html, shown
    assert CATALOGUE[VitalCode.SPO2].display in html


@pytest.mark.parametrize(("text", "shown"), [
    ("Single parameter scored 3: resp_rate, spo2, pulse",
     "Single parameter scored 3: Respiration rate, SpO2, pulse"),
    ("SpO2 89 % below target", "SpO2 89 % below target"),
    ("on air_or_oxygen, o2_flow 2", "on Air or oxygen, Oxygen flow 2"),
    ("pump_state occluded", "Pump state occluded"),
    ("xresp_rate stays", "xresp_rate stays"),
])
def test_display_text_names_codes_in_alert_summaries(text: str, shown: str) -> None:
    assert display_text(text) == shown
