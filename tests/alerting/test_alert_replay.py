"""`vward replay` on a JSONL file with simulator ground truth (tolerant of extra fields)."""

from __future__ import annotations

import datetime as dt
import json
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
    assert out["alerts"]["spo2_below_target"] == 1
    assert "news2" in out["alerts"]
    (caught,) = out["deteriorations"]
    assert caught["first_alert"]["kind"] in {"spo2_below_target", "spo2_falling", "news2_rising"}
    assert caught["delay_minutes"] <= 180
    assert caught["lead_over_news2_5_minutes"] > 0
