"""`vward replay` on a JSONL file with simulator ground truth (tolerant of extra fields)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from alerting import replay
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



# -- pure replay: sweeps, episodes, split figures --------------------------------------------

def _set(patient: str, at: dt.datetime, **values: float) -> list[replay.ReplayReading]:
    return [replay.ReplayReading(patient, code, at, float(v), f"dev-{patient}")
            for code, v in values.items()]


NORMAL_SET = {"spo2": 97, "pulse": 70, "resp_rate": 16, "temperature": 36.9,
              "systolic_bp": 124, "on_oxygen": 0, "consciousness": 0}
SICK_SET = {**NORMAL_SET, "spo2": 90, "pulse": 125, "resp_rate": 26}


@pytest.mark.parametrize(("sweep_every", "overdue", "escalations"), [
    # Without sweeps nothing happens between the readings at 0 h and 6 h.
    (None, 0, 0),
    # With sweeps, the 4-hourly set is overdue at 4 h 15 min (a technical finding) ...
    (dt.timedelta(minutes=5), 1, 0),
])
def test_replay_sweeps_between_readings(sweep_every: dt.timedelta | None, overdue: int,
                                        escalations: int) -> None:
    from alerting.policy import load_policy, policy_path

    policy = load_policy(policy_path())
    one = {**NORMAL_SET, "pulse": 95}  # NEWS2 1: 4-hourly
    readings = [*_set("calm", T0, **one), *_set("calm", T0 + dt.timedelta(hours=6), **one)]
    report = replay.run(readings, policy.ack_within, policy=policy, sweep_every=sweep_every)
    assert report.per_kind.get("observations_overdue", 0) == overdue
    assert report.escalations == escalations
    assert report.sweeps == (0 if sweep_every is None else 72)  # 6 h every 5 min
    if overdue:
        assert report.sweep_changes["raised"] == 1
        (episode,) = report.episodes
        assert not episode.clinical  # "no data" is not a clinical episode
        assert episode.closed_at == T0 + dt.timedelta(hours=6)  # the set that was due


def test_replay_escalates_unacknowledged_episodes_and_splits_by_ground_truth() -> None:
    from alerting.policy import load_policy, policy_path

    policy = load_policy(policy_path())
    readings = [r for minute in range(0, 120, 10)
                for r in _set("sick", T0 + dt.timedelta(minutes=minute), **SICK_SET)]
    readings += [r for hour in range(0, 3)
                 for r in _set("calm", T0 + dt.timedelta(hours=hour), **NORMAL_SET)]
    truth = [replay.TruthEvent("sick", "deterioration_start", T0 - dt.timedelta(minutes=30)),
             replay.TruthEvent("sick", "news2_crossed_5", T0 + dt.timedelta(minutes=20)),
             replay.TruthEvent("sick", "news2_crossed_7", T0 + dt.timedelta(minutes=40))]
    report = replay.run(readings, policy.ack_within, policy=policy, truth=truth,
                        kits={"sick": "spot", "calm": "spot"})
    assert report.escalations >= 2  # nobody acknowledges in a replay: tier after tier
    (episode,) = [e for e in report.episodes if e.patient == "sick"]
    assert episode.clinical
    assert {"news2", "single_parameter_3", "spo2_below_target"} <= episode.findings
    summary = report.summary()
    groups = summary["groups"]
    assert groups["deteriorated"]["patients"] == 1
    assert groups["not_deteriorated"]["patients"] == 1
    assert groups["not_deteriorated"]["clinical_episodes_per_patient_day"] == 0
    assert groups["deteriorated"]["clinical_episodes_per_patient_day"] > 0
    spot = summary["per_kit"]["spot"]
    assert (spot["caught"], spot["caught_before_7"], spot["crossed_7"]) == (1, 1, 1)
    assert spot["median_lead_7_h"] == pytest.approx(40 / 60)
    assert spot["max_minutes_after_first_set_5"] == 0  # raised on the first set >= 5


def test_replay_counts_an_episode_open_at_onset_as_caught_and_needs_vitals_to_observe() -> None:
    readings = [r for minute in range(0, 120, 10)
                for r in _set("sick", T0 + dt.timedelta(minutes=minute), **SICK_SET)]
    # a pump patient: pump readings after the crossing do not make a deterioration observable
    readings += [*_set("pump", T0, **NORMAL_SET),
                 replay.ReplayReading("pump", "infusion_rate", T0 + dt.timedelta(hours=5), 10.0)]
    truth = [replay.TruthEvent("sick", "deterioration_start", T0 + dt.timedelta(minutes=60)),
             replay.TruthEvent("pump", "deterioration_start", T0 + dt.timedelta(hours=1)),
             replay.TruthEvent("pump", "news2_crossed_5", T0 + dt.timedelta(hours=4))]
    report = replay.run(readings, {}, truth=truth, sweep_every=None)
    sick, pump = report.catches
    assert sick.open_at_onset
    assert sick.first_alert is not None
    assert sick.first_alert.at == T0 + dt.timedelta(minutes=60)
    assert not pump.observable
    assert report.summary()["deteriorations"]["observable"] == 1
