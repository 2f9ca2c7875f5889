"""`vward replay` on a JSONL file with simulator ground truth (tolerant of extra fields)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ward.cli import main

T0 = dt.datetime(2026, 2, 1, 8, 0, tzinfo=dt.UTC)


def test_replay_reports_alerts_per_patient_day_and_how_early(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = []
    # Patient "p1" deteriorates from hour 4: SpO2 falls one point an hour, pulse climbs.
    for hour in range(12):
        at = (T0 + dt.timedelta(hours=hour)).isoformat()
        spo2 = 97 - max(0, hour - 4)
        pulse = 72 + 6 * max(0, hour - 4)
        for code, value in (("spo2", spo2), ("pulse", pulse), ("resp_rate", 16),
                            ("temperature", 36.9), ("systolic_bp", 124), ("on_oxygen", 0),
                            ("consciousness", 0)):
            lines.append({"patient_key": "p1", "code": code, "measured_at": at, "value": value,
                          "scenario": "copd"})
    readings = tmp_path / "readings.jsonl"
    readings.write_text("\n".join(json.dumps(x) for x in lines) + "\n{not json\n")
    truth = tmp_path / "truth.jsonl"
    truth.write_text("\n".join(json.dumps(x) for x in (
        {"patient_key": "p1", "event": "deterioration_start", "at": (T0 + dt.timedelta(hours=4)).isoformat(), "why": "sepsis"},
        {"patient_key": "p1", "event": "news2_crossed_5", "at": (T0 + dt.timedelta(hours=9)).isoformat()},
        {"patient_key": "p1", "event": "something_else", "at": T0.isoformat()},
    )))
    status = main(["replay", str(readings), "--truth", str(truth), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 1  # the bad line is reported, the rest replayed
    assert out["findings"]["spo2_below_target"] == 1
    assert "news2" in out["findings"]
    assert out["episodes"] == 1  # one episode holds every finding
    (caught,) = out["catches"]
    assert caught["first_alert"]["kind"] in {"spo2_below_target", "spo2_falling", "trend"}
    assert caught["delay_minutes"] <= 180
    assert caught["lead_over_news2_5_minutes"] > 0


def test_replay_from_the_database_matches_truth_by_nhs_number(
        db_url: str, to_url: Callable[[str], str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Truth written before registration names patients by NHS number only (patient_key);
    stored readings are keyed by patient id. Run-level records are not patient events."""
    import psycopg

    from ward.db.registry import add_patient
    from ward.db.store import ReadingStore
    from ward.domain.patients import Patient
    from ward.domain.readings import Reading

    units = {"spo2": "%", "pulse": "/min", "resp_rate": "/min", "temperature": "Cel",
             "systolic_bp": "mm[Hg]", "on_oxygen": "{air:0,oxygen:1}", "consciousness": "{ACVPU}"}
    with psycopg.connect(db_url) as conn:
        patient = add_patient(conn, Patient("9434765919", "Ada", "L", dt.date(1950, 1, 1)))
        assert patient.id is not None
        readings = []
        for hour in range(12):
            at = T0 + dt.timedelta(hours=hour)
            values = {"spo2": 97 - max(0, hour - 4), "pulse": 72 + 6 * max(0, hour - 4),
                      "resp_rate": 16, "temperature": 36.9, "systolic_bp": 124, "on_oxygen": 0,
                      "consciousness": 0}
            readings += [Reading("hub-1", code, at, value, units[code], patient.id, at)
                         for code, value in values.items()]
        ReadingStore().write(conn, readings)
        conn.commit()
    truth = tmp_path / "truth.jsonl"
    truth.write_text("\n".join(json.dumps(x) for x in (
        {"event": "scenario", "at": T0.isoformat(), "scenario": "test"},
        {"patient_key": "9434765919", "event": "deterioration_start",
         "at": (T0 + dt.timedelta(hours=4)).isoformat()},
        {"event": "summary", "at": T0.isoformat(), "counts": {}},
    )))
    monkeypatch.setenv("VW_DATABASE_URL", to_url(db_url))
    status = main(["replay", "--start", T0.isoformat(),
                   "--end", (T0 + dt.timedelta(days=1)).isoformat(),
                   "--truth", str(truth), "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    (caught,) = json.loads(captured.out)["catches"]
    assert caught["patient"] == str(patient.id)
    assert caught["first_alert"] is not None

