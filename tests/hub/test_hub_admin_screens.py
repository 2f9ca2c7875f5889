"""The manager's screens over TestClient: care plan with history, people, audit viewer, and
the commissioner's measures (definitions, figures from known rows, "not recorded" honesty).

Role checks are walked as a table: who may open and post each screen."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

import psycopg
import pytest
from markupsafe import escape

from ward.hub import charts, reports
from ward.hub.auth import Role, authenticate

T0 = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("role", "method", "path", "form", "allowed"), [
    (Role.HUB_NURSE, "GET", "/patients/{pid}/care-plan", None, True),
    (Role.HUB_NURSE, "POST", "/patients/{pid}/care-plan/ceiling",
     {"ceiling": "palliative", "reason": "ReSPECT"}, False),
    (Role.ADMIN, "POST", "/patients/{pid}/care-plan/spo2-scale",
     {"scale": "2", "reason": "COPD"}, False),
    (Role.SAFETY_OFFICER, "POST", "/patients/{pid}/care-plan/thresholds",
     {"parameter": "pulse", "high": "120", "reason": "AF"}, False),
    (Role.CLINICIAN, "POST", "/patients/{pid}/care-plan/ceiling",
     {"ceiling": "palliative", "reason": "ReSPECT"}, True),
    (Role.CLINICIAN, "GET", "/people", None, False),
    (Role.HUB_NURSE, "GET", "/people", None, False),
    (Role.SAFETY_OFFICER, "GET", "/people", None, False),
    (Role.ADMIN, "GET", "/people", None, True),
    (Role.CLINICIAN, "POST", "/people", {"username": "x1", "display_name": "X",
                                         "role": "admin", "password": "long enough"}, False),
    (Role.HUB_NURSE, "GET", "/audit", None, False),
    (Role.CLINICIAN, "GET", "/audit.csv", None, False),
    (Role.SAFETY_OFFICER, "GET", "/audit", None, True),
    (Role.SAFETY_OFFICER, "GET", "/audit.csv", None, True),
    (Role.ADMIN, "GET", "/audit", None, True),
    (Role.SAFETY_OFFICER, "GET", "/reports", None, True),
    (Role.HUB_NURSE, "GET", "/api/reports/measures.csv", None, True),
])
def test_screen_roles(app_client, staff, admit, role, method, path, form, allowed):
    pid = admit()
    user = staff(role)
    response = app_client.request(method, path.format(pid=pid), data=form,
                                  headers={**user.headers, "Accept": "text/html"},
                                  follow_redirects=False)
    if allowed:
        assert response.status_code in (200, 303), response.text
    else:
        assert response.status_code == 403, response.text


def test_care_plan_change_is_recorded_with_author_reason_and_history(
        app_client, staff, admit, clock):
    pid = admit()
    doctor = staff(Role.CLINICIAN)
    h = {**doctor.headers, "Accept": "text/html"}
    r = app_client.post(f"/patients/{pid}/care-plan/spo2-scale",
                        data={"scale": "2", "reason": "hypercapnic COPD, ABG today"},
                        headers=h, follow_redirects=False)
    assert r.status_code == 303
    clock.advance(minutes=5)
    r = app_client.post(f"/patients/{pid}/care-plan/thresholds",
                        data={"parameter": "pulse", "low": "", "high": "125",
                              "reason": "known AF"}, headers=h, follow_redirects=False)
    assert r.status_code == 303
    # A refused change says why and changes nothing (Scale 2's reason is required).
    refused = app_client.post(f"/patients/{pid}/care-plan/spo2-scale",
                              data={"scale": "1", "reason": "  "}, headers=h)
    assert refused.status_code == 422
    assert "reason" in refused.text
    plan = app_client.get(f"/api/patients/{pid}/care-plan", headers=doctor.headers).json()
    assert plan["spo2_scale"] == 2
    assert plan["spo2_scale_set_by"] == doctor.username
    assert plan["thresholds"][0]["high"] == 125
    page = app_client.get(f"/patients/{pid}/care-plan", headers=h).text
    history = page[page.index('id="care-plan-history"'):]
    assert history.index("Threshold: pulse") < history.index("SpO2 scale")  # newest first
    assert "hypercapnic COPD, ABG today" in history
    assert "Scale 1" in history
    assert "Scale 2, target 88–92 %" in history
    assert "none" in history
    assert "… to 125" in history
    assert doctor.username in history
    api = app_client.get(f"/api/patients/{pid}/care-plan/history", headers=doctor.headers)
    assert [c["what"] for c in api.json()] == ["Threshold: pulse", "SpO2 scale"]
    assert api.json()[1]["reason"] == "hypercapnic COPD, ABG today"
    assert "IV PRESCRIPTION SECTION" not in page  # a template comment, not shown
    assert 'id="iv-prescription"' in page


def test_nurse_sees_the_plan_read_only(app_client, staff, admit):
    pid = admit()
    page = app_client.get(f"/patients/{pid}/care-plan",
                          headers={**staff(Role.HUB_NURSE).headers, "Accept": "text/html"})
    assert page.status_code == 200
    assert 'id="read-only"' in page.text
    assert "spo2-save" not in page.text


def test_admin_creates_changes_and_deactivates_a_user(app_client, staff, db):
    admin = staff(Role.ADMIN)
    h = {**admin.headers, "Accept": "text/html"}
    r = app_client.post("/people", data={"username": "Nurse.Two", "display_name": "Nurse Two",
                                          "role": "hub_nurse", "password": "a long password"},
                        headers=h, follow_redirects=False)
    assert r.status_code == 303
    row = db.execute("SELECT id, role, password_hash FROM users WHERE username = 'nurse.two'"
                     ).fetchone()
    assert row is not None
    assert row[1] == "hub_nurse"
    assert str(row[2]).startswith("$argon2id$")
    uid = row[0]
    token = app_client.post("/api/auth/token", json={"username": "nurse.two",
                                                     "password": "a long password"})
    assert token.status_code == 200
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert app_client.post(f"/people/{uid}/role", data={"role": "clinician"}, headers=h,
                           follow_redirects=False).status_code == 303
    db.rollback()
    assert db.execute("SELECT role FROM users WHERE id = %s", (uid,)).fetchone() == (
        "clinician",)
    assert app_client.get("/api/me", headers=bearer).status_code == 401  # sessions ended
    assert app_client.post(f"/people/{uid}/active", data={"active": "false"}, headers=h,
                           follow_redirects=False).status_code == 303
    db.rollback()
    assert authenticate(db, "nurse.two", "a long password") is None
    dup = app_client.post("/people", data={"username": "nurse.two", "display_name": "Again",
                                            "role": "admin", "password": "a long password"},
                          headers=h)
    assert dup.status_code == 409  # the users API answers the same (people.PeopleError)
    assert "taken" in dup.text
    short = app_client.post("/people", data={"username": "short", "display_name": "S",
                                              "role": "admin", "password": "1234567"},
                            headers=h)
    assert short.status_code == 422
    me = db.execute("SELECT id FROM users WHERE username = %s", (admin.username,)).fetchone()
    assert me is not None
    own = app_client.post(f"/people/{me[0]}/active", data={"active": "false"}, headers=h)
    assert own.status_code == 409
    actions = [r[0] for r in db.execute(
        "SELECT action FROM audit_log WHERE entity = 'user' AND action <> 'list' ORDER BY id")]
    assert actions == ["create", "update", "deactivate"]


def _audit_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_audit_viewer_filters_by_patient_including_list_rows_pages_and_exports(
        app_client, staff, admit, db, clock):
    a, b = admit(), admit()
    nurse = staff(Role.HUB_NURSE)
    officer = staff(Role.SAFETY_OFFICER)
    # The ward view writes ONE row naming both patients in patient_ids (no patient_id).
    assert app_client.get("/", headers={**nurse.headers, "Accept": "text/html"}
                          ).status_code == 200
    app_client.get(f"/api/patients/{b}/care-plan", headers=nurse.headers)
    h = {**officer.headers, "Accept": "text/html"}
    # As the filter form sends it: empty fields are no filter.
    page = app_client.get("/audit", params={"patient_id": a, "user": "", "start": "",
                                            "end": ""}, headers=h)
    assert page.status_code == 200
    assert page.text.count("<tr data-id=") == 1  # the ward view only
    assert "ward" in page.text
    # The same filter by NHS number (as written on a letter, with spaces).
    nhs = db.execute("SELECT nhs_number FROM patients WHERE id = %s", (a,)).fetchone()[0]
    by_nhs = app_client.get("/audit", params={"patient_id": f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"},
                            headers=h)
    assert by_nhs.text.count("<tr data-id=") == 2  # the ward view and the view just before
    export = app_client.get("/audit.csv", params={"patient_id": b, "user": nurse.username},
                            headers=officer.headers)
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    rows = _audit_rows(export.text)
    assert {r["entity"] for r in rows} == {"ward", "care_plan"}
    assert all(str(b) in r["patient_ids"].split() for r in rows)
    # Time filter: nothing before the day of the reads.
    none = app_client.get("/audit.csv", params={"end": "2025-03-08"}, headers=officer.headers)
    assert _audit_rows(none.text) == []
    # Viewing and exporting are audited, with the filter.
    seen = db.execute("SELECT action, patient_id, detail->'filter'->>'patient_id' FROM audit_log "
                      "WHERE entity = 'audit_log' ORDER BY id").fetchall()
    assert seen[0] == ("read", a, str(a))
    assert seen[2] == ("export", b, str(b))
    # Paging: 60 rows for patient a → a second page.
    for _ in range(60):
        app_client.get(f"/api/patients/{a}/care-plan", headers=nurse.headers)
    first = app_client.get("/audit", params={"patient_id": a}, headers=h).text
    assert first.count("<tr data-id=") == 50
    assert 'id="next"' in first
    second = app_client.get("/audit", params={"patient_id": a, "offset": 50}, headers=h).text
    # 1 ward row + 60 reads + the viewer's own three earlier reads of a's audit (they name a).
    assert second.count("<tr data-id=") == 14


def _alert(conn: psycopg.Connection[Any], pid: int, severity: str, raised: dt.datetime,
           acked_after: dt.timedelta | None, escalations: int = 0) -> None:
    row = conn.execute(
        "INSERT INTO alerts (patient_id, kind, severity, state, summary, raised_at, updated_at, "
        "acknowledged_at) VALUES (%s, %s, %s, %s, 's', %s, %s, %s) RETURNING id",
        (pid, f"k{raised.timestamp()}", severity,
         "resolved" if acked_after else "raised", raised, raised,
         raised + acked_after if acked_after else None)).fetchone()
    assert row is not None
    for i in range(escalations):
        conn.execute("INSERT INTO alert_events (alert_id, at, event, actor) "
                     "VALUES (%s, %s, 'escalated', 'system')",
                     (row[0], raised + dt.timedelta(minutes=15 * (i + 1))))


def test_measures_from_known_rows(app_client, staff, admit, db, clock):
    # Two patients on the ward for the whole of 1–10 March: 18 patient-days up to 10 Mar 00:00.
    p1 = admit(at=dt.datetime(2025, 2, 20, tzinfo=dt.UTC))
    admit(at=dt.datetime(2025, 2, 20, tzinfo=dt.UTC))
    day = dt.datetime(2025, 3, 5, 10, tzinfo=dt.UTC)
    for minutes in (10, 20, 30, 40):
        _alert(db, p1, "high", day + dt.timedelta(hours=minutes), dt.timedelta(minutes=minutes))
    _alert(db, p1, "medium", day, None, escalations=2)
    # Acknowledged after 6 min, then reopened by a rise in severity and acknowledged again
    # at 50 min: the first acknowledgement counts.
    _alert(db, p1, "low", day, dt.timedelta(minutes=50))
    db.execute("INSERT INTO alert_events (alert_id, at, event, actor) SELECT id, %s, "
               "'acknowledged', 'nurse' FROM alerts WHERE severity = 'low'",
               (day + dt.timedelta(minutes=6),))
    db.commit()
    clock.now = dt.datetime(2025, 3, 20, tzinfo=dt.UTC)
    nurse = staff(Role.HUB_NURSE)
    got = app_client.get("/api/reports/measures", params={"start": "2025-03-01",
                                                          "end": "2025-03-10"},
                         headers=nurse.headers)
    assert got.status_code == 200, got.text
    m = {x["key"]: x for x in got.json()}
    assert m["alerts_per_patient_day"]["figures"]["patient_days"] == 18.0
    assert m["alerts_per_patient_day"]["figures"]["alerts"] == 6
    assert m["alerts_per_patient_day"]["figures"]["alerts_per_patient_day"] == round(6 / 18, 3)
    ack = m["time_to_acknowledge"]["figures"]
    assert ack["high.p50_minutes"] == 25.0  # median of 10, 20, 30, 40
    assert ack["high.p90_minutes"] == 37.0  # linear interpolation at 0.9
    assert ack["medium.not_acknowledged"] == 1
    assert ack["medium.p50_minutes"] is None
    assert ack["low.p50_minutes"] == 6.0
    assert m["escalations"]["figures"] == {"escalations": 2, "alerts_escalated": 1,
                                           "escalations.medium": 2}
    # No clock started and nobody discharged in the period: counts of 0, no percentage.
    assert m["urgent_response_2h"]["figures"] == {"met": 0, "missed": 0, "pending": 0,
                                                  "compliance_pct": None}
    assert m["follow_up_2d"]["figures"] == {"discharges": 0, "done_within_2_days": 0,
                                            "done_within_2_days_pct": None}
    assert m["referrals"]["figures"]["referrals"] == 0
    # Every definition is the function's docstring.
    assert m["escalations"]["definition"] == reports.definition(reports.escalations)
    text = app_client.get("/api/reports/measures.csv", params={"start": "2025-03-01",
                                                               "end": "2025-03-10"},
                          headers=nurse.headers).text
    rows = list(csv.DictReader(io.StringIO(text)))
    urgent = {r["figure"]: r for r in rows if r["measure"] == "urgent_response_2h"}
    assert urgent["met"]["value"] == "0"
    assert urgent["compliance_pct"]["value"] == ""
    page = app_client.get("/reports", params={"start": "2025-03-01", "end": "2025-03-10"},
                          headers={**nurse.headers, "Accept": "text/html"}).text
    assert page.count("Not recorded yet.") == 0
    assert str(escape(reports.definition(reports.time_to_acknowledge))) in page


def test_referral_time_to_decision(app_client, staff, db, admit, clock):
    admit(at=T0 - dt.timedelta(days=1))  # referred 1 h before admission (the fixture's way)
    clock.now = T0 + dt.timedelta(days=1)
    got = app_client.get("/api/reports/measures", headers=staff(Role.ADMIN).headers).json()
    ref = next(x for x in got if x["key"] == "referrals")["figures"]
    assert ref["referrals"] == 1
    assert ref["accepted"] == 1
    assert ref["decision_p50_hours"] == 1.0


def test_bar_chart_columns_fit_the_longest_label_and_value():
    svg = str(charts.bar_chart("Minutes to acknowledge", [("low-medium p90", 1234.5),
                                                          ("high p50", 3.0)], unit=" min"))
    assert "font-size" not in svg  # sized by the .bar-text class (13 px), not the 10-px tick
    width = float(re.search(r'viewBox="0 0 ([0-9.]+)', svg).group(1))  # type: ignore[union-attr]
    label_end = float(re.search(r'<text x="([0-9.]+)"[^>]*bar-label', svg).group(1))  # type: ignore[union-attr]
    assert label_end >= len("low-medium p90") * charts.BAR_CHAR_W
    value_x = [float(x) for x in re.findall(r'<text x="([0-9.]+)"[^>]*bar-value', svg)]
    assert max(value_x) + len("1234.5 min") * charts.BAR_CHAR_W <= width
    rates = str(charts.bar_chart("Alerts per patient-day", [("high", 0.027)]))
    assert ">0.027<" in rates


@pytest.mark.parametrize(("action", "detail", "expected"), [
    ("care_plan.set_spo2_scale", {"old": {"scale": 1, "target_low": None, "target_high": None},
                                  "new": {"scale": 2, "target_low": 88.0, "target_high": 92.0}},
     ("SpO2 scale", "Scale 1", "Scale 2, target 88–92 %")),
    ("care_plan.set_threshold", {"parameter": "resp_rate", "old": {"low": 10, "high": 24},
                                 "new": None},
     ("Threshold: resp rate", "10 to 24", "none")),
    ("care_plan.set_ceiling_of_care", {"old": "full_escalation", "new": "palliative"},
     ("Ceiling of care", "full escalation", "palliative")),
    ("care_plan.set_prescribed_infusion_rate",
     {"old": {"rate_ml_h": None}, "new": {"rate_ml_h": 20.8, "pump_type": "elastomeric",
                                          "drug": "ceftriaxone"}},
     ("IV prescription", "none", "ceftriaxone 20.8 mL/h (elastomeric)")),
    ("care_plan.set_something_new", {"old": 1, "new": 2}, ("set something new", "1", "2")),
])
def test_history_describes_each_kind_of_change(action, detail, expected):
    from ward.hub.care_plan_view import describe

    assert describe(action, detail) == expected


def test_urgent_response_and_follow_up_measures(app_client, staff, db, nhs_number):
    """The 2-hour clocks of 2-hour referrals and the follow-up calls after discharge, counted
    from the worklist tasks that name their admission."""
    pids = [int(db.execute(
        "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth) "
        "VALUES (%s, 'P', 'Q', '1950-01-01') RETURNING id", (nhs_number(),)).fetchone()[0])
        for _ in range(5)]
    ref = dt.datetime(2025, 3, 3, 9, tzinfo=dt.UTC)
    due = ref + dt.timedelta(hours=2)
    out = dt.datetime(2025, 3, 4, 12, tzinfo=dt.UTC)

    def stay(pid, urgency, discharged):
        return int(db.execute(
            "INSERT INTO admissions (patient_id, pathway, source, status, referred_at, "
            "decided_at, admitted_at, discharged_at, outcome, urgency) VALUES (%s, 'step_up', "
            "'gp', 'discharged', %s, %s, %s, %s, 'usual_residence', %s) RETURNING id",
            (pid, ref, ref, ref, discharged, urgency)).fetchone()[0])

    stays = [stay(pids[0], "two_hour", out), stay(pids[1], "two_hour", out + dt.timedelta(days=1)),
             stay(pids[2], "two_hour", out + dt.timedelta(days=1)),
             stay(pids[3], "same_day", out), stay(pids[4], "same_day", out)]
    for aid, pid, closed, met in ((stays[0], pids[0], ref + dt.timedelta(minutes=90), True),
                                  (stays[1], pids[1], ref + dt.timedelta(hours=3), False),
                                  (stays[2], pids[2], None, None),  # open, long past 2 h
                                  # a clock on a same-day referral is not counted
                                  (stays[3], pids[3], ref + dt.timedelta(hours=3), False)):
        db.execute(
            "INSERT INTO tasks (kind, patient_id, admission_id, reason, detail, due_at, "
            "priority, created_by, created_at, status, closed_at, met) VALUES "
            "('urgent_response', %s, %s, 'r', 'd', %s, 1, 'ward', %s, %s, %s, %s)",
            (pid, aid, due, ref, "open" if closed is None else "done", closed, met))
    # Two discharges on 4 March: one called back within 2 days, one reached only on day 3;
    # a third reached within 2 days is a discharge of 5 March, and one was not reached.
    for aid, pid, at, called, outcome in (
            (stays[0], pids[0], out, out + dt.timedelta(days=1), "reached"),
            (stays[3], pids[3], out, out + dt.timedelta(days=2, hours=1), "reached"),
            (stays[1], pids[1], out + dt.timedelta(days=1), out + dt.timedelta(days=2),
             "reached"),
            (stays[2], pids[2], out + dt.timedelta(days=1), out + dt.timedelta(days=1, hours=2),
             "not_reached")):
        db.execute("INSERT INTO tasks (kind, patient_id, admission_id, reason, detail, due_at, "
                   "priority, created_by, created_at, status, closed_at, outcome) VALUES "
                   "('follow_up_call', %s, %s, 'discharge', 'd', %s, 3, 'ward', %s, 'done', %s,"
                   " %s)", (pid, aid, at + dt.timedelta(days=2), at, called, outcome))
    db.commit()
    got = app_client.get("/api/reports/measures", params={"start": "2025-03-01",
                                                          "end": "2025-03-10"},
                         headers=staff(Role.ADMIN).headers)
    assert got.status_code == 200, got.text
    m = {x["key"]: x["figures"] for x in got.json()}
    assert m["urgent_response_2h"] == {"met": 1, "missed": 2, "pending": 0,
                                       "compliance_pct": 33.3}
    assert m["follow_up_2d"] == {"discharges": 5, "done_within_2_days": 2,
                                 "done_within_2_days_pct": 40.0}
