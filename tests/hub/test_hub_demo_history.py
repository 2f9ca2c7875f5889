"""`vward demo-history`: the backfill makes every report measure that is recorded non-empty,
gives the care-plan history a row, and runs once per database."""

from __future__ import annotations

import datetime as dt

from ward.hub import care_plan_view, demo_history, reports

NOW = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)


def test_demo_history_fills_the_reports_once(db, admit, hub_settings):
    live = admit(at=NOW - dt.timedelta(days=1))
    assert demo_history.seed(db, now=NOW) is True
    db.commit()
    assert demo_history.seed(db, now=NOW) is False  # a second run writes nothing
    tz = hub_settings.tz
    start = (NOW - dt.timedelta(days=30)).date()
    measures = {m.key: dict(m.rows) for m in reports.commissioner(
        db, start, NOW.date() + dt.timedelta(days=1), beds=10, tz=tz, now=NOW)}
    assert measures["outcomes"]["discharged"] > 20
    assert 50 < measures["outcomes"]["remained_at_home_pct"] < 100
    assert measures["referrals"]["declined"] > 0
    assert measures["referrals"]["decision_p50_hours"] is not None
    assert measures["readmission_28d"]["readmitted"] > 0
    assert measures["escalations"]["escalations"] > 0
    assert measures["alerts_per_patient_day"]["alerts"] > 0
    assert measures["time_to_acknowledge"]["high.p50_minutes"] is not None
    assert measures["occupancy"]["mean_occupancy_pct"] > 0
    # The worklist's clocks and calls: 2-hour referrals only, most met; most calls made.
    urgent = measures["urgent_response_2h"]
    assert urgent["met"] > 0
    assert urgent["missed"] > 0
    assert 50 < urgent["compliance_pct"] < 100
    follow = measures["follow_up_2d"]
    assert follow["discharges"] == measures["outcomes"]["discharged"]
    assert 50 < follow["done_within_2_days_pct"] < 100
    assert db.execute("SELECT count(*) FROM tasks t JOIN admissions a ON a.id = t.admission_id "
                      "WHERE t.kind = 'urgent_response' AND a.urgency <> 'two_hour'"
                      ).fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM admissions a WHERE a.status = 'discharged' AND "
                      "NOT EXISTS (SELECT 1 FROM tasks t WHERE t.admission_id = a.id AND "
                      "t.kind = 'follow_up_call')").fetchone() == (0,)
    changes = care_plan_view.history(db, live)
    assert [c.what for c in changes] == ["Threshold: pulse"]
    assert changes[0].by == "doctor"
