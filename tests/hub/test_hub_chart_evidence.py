"""The findings' evidence on the patient page (issue 10, items 1 and 3), on a real database.

Findings are made by the real alerting core (`alerting.runner.evaluate_after_commit`) from
readings stored through the real `ReadingStore`: a patient's first hours teach the trend
method their baseline, a drift raises an amber trend finding, a deterioration adds the NEWS2,
single-parameter and SpO2 findings to the same episode, and normal readings clear them all.
The patient record API must return, per finding, when it was active and every reading it
cited, and the trend's baseline band as the method computes it; the patient page must draw
them, with times in Europe/London (the clock is in British Summer Time, an hour from UTC).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import psycopg
import pytest

from alerting import trend
from alerting.runner import evaluate_after_commit
from ward.db.store import ReadingStore
from ward.domain.readings import Reading
from ward.domain.vitals import spec_for
from ward.hub.auth import Role

Conn = psycopg.Connection[Any]
NORMAL = {"spo2": 97, "pulse": 63, "resp_rate": 15, "temperature": 36.7, "systolic_bp": 125,
          "on_oxygen": 0, "consciousness": 0}
# 18:00 UTC is 19:00 in London in July: a time shown in UTC would be caught.
NOW = dt.datetime(2025, 7, 10, 18, 0, tzinfo=dt.UTC)


def store(db: Conn, pid: int, at: dt.datetime, **values: float) -> None:
    ReadingStore().write(db, [Reading(f"kit-{pid}", c, at, float(v), spec_for(c).unit, pid, at)
                              for c, v in values.items()])
    db.commit()


def make_trace(db: Conn, pid: int, now: dt.datetime) -> dict[str, dt.datetime]:
    """Baseline hours, a drift, a deterioration, recovery; returns the key instants."""
    first = now - dt.timedelta(hours=12)
    for hour in range(7):  # pulse 62-64: this patient's normal, learned by hour 6
        at = first + dt.timedelta(hours=hour)
        store(db, pid, at, **{**NORMAL, "pulse": 62 + hour % 3})
        assert evaluate_after_commit(db, [pid], at) == []
    drift = now - dt.timedelta(hours=4)  # pulse 90, temperature 37.9: NEWS2 0, far from own
    store(db, pid, drift, **{**NORMAL, "pulse": 90, "temperature": 37.9})
    (change,) = evaluate_after_commit(db, [pid], drift)
    assert (change.kind, change.severity) == ("trend", "low")
    severe = now - dt.timedelta(hours=3)
    store(db, pid, severe, **{**NORMAL, "spo2": 90, "pulse": 125, "resp_rate": 26})
    evaluate_after_commit(db, [pid], severe)
    for at in (now - dt.timedelta(hours=2), now - dt.timedelta(hours=1)):
        store(db, pid, at, **NORMAL)
        evaluate_after_commit(db, [pid], at)
    return {"first": first, "drift": drift, "severe": severe,
            "cleared": now - dt.timedelta(hours=1)}


def values_of(finding: dict[str, Any], code: str) -> list[float]:
    return [r["value"] for r in finding["readings"] if r["code"] == code]


def test_the_record_returns_each_findings_readings_spans_and_the_trend_baseline(
        app_client: Any, staff: Any, admit: Any, db: Conn, clock: Any) -> None:
    clock.now = NOW
    pid = admit(at=NOW - dt.timedelta(days=2))
    t = make_trace(db, pid, NOW)
    h = staff(Role.HUB_NURSE).headers
    response = app_client.get(f"/api/patients/{pid}/record", headers=h, params={"hours": 24})
    assert response.status_code == 200, response.text
    evidence = response.json()["evidence"]
    by_kind = {f["kind"]: f for f in evidence["findings"]}
    # (SpO2 97 -> 90 may also raise "SpO2 falling": every finding is checked below)
    assert set(by_kind) >= {"trend", "news2", "single_parameter_3", "spo2_below_target"}
    (episode,) = {f["episode_id"] for f in by_kind.values()}  # one episode holds them all

    drift = by_kind["trend"]
    assert drift["severity"] == "low"
    assert [(dt.datetime.fromisoformat(s["start"]), dt.datetime.fromisoformat(s["end"]),
             s["end_reason"]) for s in drift["spans"]] == [(t["drift"], t["cleared"], "cleared")]
    assert not drift["active"]
    # the reading that raised it and the one that kept it firing are both cited
    assert {90.0, 125.0} <= set(values_of(drift, "pulse"))
    assert 37.9 in values_of(drift, "temperature")
    assert any(dt.datetime.fromisoformat(r["measured_at"]) == t["drift"]
               for r in drift["readings"])
    # every other finding traces to the readings that caused it
    assert 90.0 in values_of(by_kind["spo2_below_target"], "spo2")
    assert set(by_kind["spo2_below_target"]["codes"]) == {"spo2"}
    assert 26.0 in values_of(by_kind["news2"], "resp_rate")
    assert 125.0 in values_of(by_kind["news2"], "pulse")
    for f in by_kind.values():
        if f["kind"] == "risk_tier":
            # a tier rise is an assessment (its factors are its evidence: the tier's
            # explanation on the patient page), not a judgement of some readings
            continue
        assert f["readings"], f"{f['kind']} cites no reading"
        ((start, end),) = [(dt.datetime.fromisoformat(s["start"]),
                            dt.datetime.fromisoformat(s["end"])) for s in f["spans"]]
        assert start <= min(dt.datetime.fromisoformat(r["measured_at"]) for r in f["readings"]
                            if dt.datetime.fromisoformat(r["measured_at"]) >= start) <= end

    # the band the method considers normal for this patient: learned mean, floored SD
    pulse = evidence["baselines"]["pulse"]
    learned = db.execute("SELECT mean, sd, n, from_at, to_at FROM patient_baselines "
                         "WHERE patient_id = %s AND code = 'pulse'", (pid,)).fetchone()
    db.commit()
    assert learned is not None
    mean, sd, n, from_at, to_at = learned
    sd_used = max(sd, trend.SD_FLOOR["pulse"])
    assert pulse["mean"] == pytest.approx(mean, abs=0.01)
    assert pulse["sd_used"] == pytest.approx(sd_used, abs=0.01)
    assert pulse["low"] == pytest.approx(mean - trend.Z_LIMIT * sd_used, abs=0.05)
    assert pulse["high"] == pytest.approx(mean + trend.Z_LIMIT * sd_used, abs=0.05)
    assert (pulse["n"], pulse["episode_id"]) == (n, episode)
    assert dt.datetime.fromisoformat(pulse["learned_from"]) == from_at == t["first"]
    assert dt.datetime.fromisoformat(pulse["learned_to"]) == to_at
    assert pulse["flagged"]
    # the readings that made the finding lie outside the band it draws
    assert max(values_of(drift, "pulse")) > pulse["high"]
    assert set(evidence["baselines"]) == {"pulse", "resp_rate", "spo2", "temperature"}

    audited = db.execute("SELECT count(*) FROM audit_log WHERE patient_id = %s AND action = "
                         "'read' AND entity = 'patient_record'", (pid,)).fetchone()
    db.commit()
    assert audited == (1,)

    # a window that ends before the episode began shows none of it
    clock.now = NOW - dt.timedelta(hours=5)
    early = app_client.get(f"/api/patients/{pid}/record", headers=h, params={"hours": 6})
    assert early.json()["evidence"] == {"findings": [], "baselines": {}}


def test_the_patient_page_draws_the_band_the_cited_readings_and_london_times(
        app_client: Any, staff: Any, admit: Any, db: Conn, clock: Any) -> None:
    clock.now = NOW
    pid = admit(at=NOW - dt.timedelta(days=2))
    t = make_trace(db, pid, NOW)
    page = app_client.get(f"/patients/{pid}", headers=staff(Role.HUB_NURSE).headers)
    assert page.status_code == 200, page.text
    html = page.text
    charts = dict(re.findall(r'<svg class="chart"[^>]*data-code="(\w+)"[^>]*>(.*?)</svg>', html,
                             flags=re.S))
    assert 'class="baseline-band"' in charts["pulse"]
    assert 'class="baseline-band"' not in charts["systolic_bp"]  # the trend charts no BP
    rings = re.findall(r'<circle [^>]*class="evidence sev-(\w+)"[^>]*>\s*<title>([^<]*)</title>',
                       charts["pulse"])
    drift_local = t["drift"].astimezone(dt.timezone(dt.timedelta(hours=1)))
    drift_ring = [title for _, title in rings if title.startswith("90 /min")]
    assert drift_ring, rings
    assert f"{drift_local:%H:%M}" in drift_ring[0]  # 15:00 in London, not 14:00 UTC
    assert "Drift from own baseline" in drift_ring[0]
    assert ("high", ) in {(sev,) for sev, title in rings if title.startswith("125 /min")}
    assert 'data-finding="trend"' in charts["pulse"]
    assert 'class="finding-cleared"' in charts["pulse"]
    caption = re.search(r'<figcaption class="evidence-caption">(.*?)</figcaption>',
                        html[html.index('data-code="pulse"'):], flags=re.S)
    assert caption is not None
    learned = db.execute("SELECT mean FROM patient_baselines WHERE patient_id = %s AND "
                         "code = 'pulse'", (pid,)).fetchone()
    db.commit()
    assert learned is not None
    assert f"Own baseline {learned[0]:.1f} /min" in caption.group(1)
    assert f"raised {drift_local:%a %d %b %H:%M}" in caption.group(1)
