"""Risk groups on a real database: entered facts, LACE/HOSPITAL at referral and discharge,
the tier the alerting runner stored shown with every contribution (the hub never computes
one), the ward view and the worklist sorted and filtered by tier, and the tier as a FHIR
RiskAssessment."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.riskassessment import RiskAssessment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerting import runner
from ward.domain.patients import Pathway, ReferralSource
from ward.hub.auth import Role

FACTS = {"admissions_6_months": 1, "admissions_12_months": 3, "index_stay_days": 8,
         "acuity": "emergent", "comorbidities": ["congestive_heart_failure",
                                                 "chronic_pulmonary_disease"],
         "ed_visits_6_months": 2, "haemoglobin_g_dl": 11.0, "sodium_mmol_l": 133,
         "oncology": False, "procedure": True}


def add_score(db: psycopg.Connection[Any], pid: int, at: dt.datetime, total: int,
              risk: str = "low") -> None:
    db.execute(
        "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, complete, "
        "spo2_scale, sub_scores, missing, evidence) VALUES (%s, %s, %s, %s, false, true, 1, "
        "%s, '{}', '[]')", (pid, at, total, risk, json.dumps({})))
    db.commit()


def assess(db: psycopg.Connection[Any], ids: list[int], now: dt.datetime) -> None:
    """What `vward alerting` does per evaluated batch and on its sweep: the tier is due for
    these patients (new scores), assessed, stored and any change recorded in the episode."""
    runner.assess_tiers(db, ids, now)
    db.commit()


def test_facts_entered_give_lace_and_hospital_with_components(app_client, staff, admit):
    h = staff(Role.HUB_NURSE).headers
    pid = admit()
    empty = app_client.get(f"/api/patients/{pid}/risk-factors", headers=h).json()
    assert empty["lace"] is None
    assert empty["hospital"] is None
    out = app_client.put(f"/api/patients/{pid}/risk-factors", headers=h, json=FACTS)
    assert out.status_code == 200, out.text
    body = out.json()
    # LACE: 8 days -> 5, emergent 3, CHF 2 + COPD 2 = Charlson 4 -> 5, 2 ED visits -> 2.
    assert {c["code"]: c["points"] for c in body["lace"]["components"]} == {
        "L": 5, "A": 3, "C": 5, "E": 2}
    assert body["lace"]["total"] == 15
    # HOSPITAL: Hb 1, O 0, Na 1, P 1, IT 1, A (3) 2, L (8 days) 2 = 8, high.
    assert body["hospital"]["total"] == 8
    assert body["hospital"]["risk"] == "high"
    assert body["history"][0]["stage"] == "update"
    bad = app_client.put(f"/api/patients/{pid}/risk-factors", headers=h,
                         json={**FACTS, "admissions_6_months": 5})
    assert bad.status_code == 422
    assert app_client.put(f"/api/patients/{pid}/risk-factors", headers=h,
                          json={**FACTS, "comorbidities": ["frailty"]}).status_code == 422


def test_scores_computed_at_referral_and_at_discharge(app_client, staff, db, nhs_number):
    h = staff(Role.HUB_NURSE).headers
    pid = app_client.post("/api/patients", headers=h, json={
        "nhs_number": nhs_number(), "given_name": "Ada", "family_name": "Byron",
        "date_of_birth": "1950-01-02"}).json()["id"]
    ref = app_client.post("/api/referrals", headers=h, json={
        "patient_id": pid, "pathway": "step_down", "source": "hospital_ward",
        "risk_factors": FACTS})
    assert ref.status_code == 201, ref.text
    aid = ref.json()["id"]
    # Anyone may refer; accepting and discharging are the clinicians' decisions.
    h = staff(Role.CLINICIAN).headers
    assert app_client.post(f"/api/admissions/{aid}/accept", headers=h,
                           json={}).status_code == 200
    assert app_client.post(f"/api/admissions/{aid}/discharge", headers=h,
                           json={"outcome": "usual_residence"}).status_code == 200
    stages = [(s, la, ho) for s, la, ho in db.execute(
        "SELECT stage, lace, hospital FROM readmission_scores WHERE patient_id = %s "
        "ORDER BY id", [pid])]
    assert stages == [("referral", 15, 8), ("discharge", 15, 8)]


def test_the_hub_shows_the_runners_tier_with_every_contribution_and_computes_none(
        app_client, staff, admit, db, clock):
    h = staff(Role.HUB_NURSE).headers
    pid = admit(at=clock.now - dt.timedelta(hours=60))
    for hours_ago in range(58, 24, -4):
        add_score(db, pid, clock.now - dt.timedelta(hours=hours_ago), 1)
    # Not assessed by the runner yet: the hub says so rather than computing a tier itself.
    before = app_client.get(f"/api/patients/{pid}/risk", headers=h)
    assert before.status_code == 422
    assert "not assessed" in before.text
    assess(db, [pid], clock.now)
    first = app_client.get(f"/api/patients/{pid}/risk", headers=h).json()
    assert [c["factor"] for c in first["contributions"]] == [
        "news2_now", "trajectory", "baseline", "completeness", "readmission", "pathway"]
    assert first["weights"][0]["label"] == "NEWS2 now"
    # Nothing in the last 24 h at a 12-hourly plan (NEWS2 1 -> 12-hourly): 2 sets missed.
    c = {x["factor"]: x for x in first["contributions"]}
    assert c["completeness"]["points"] == 2
    assert c["pathway"]["points"] == 1  # step-up
    assert first["tier"] == "rising"
    for hours_ago in (12, 6, 1):
        add_score(db, pid, clock.now - dt.timedelta(hours=hours_ago), 5, "medium")
    # New scores alone change nothing on screen until the runner assesses them.
    assert app_client.get(f"/api/patients/{pid}/risk", headers=h).json()["tier"] == "rising"
    assess(db, [pid], clock.now)
    second = app_client.get(f"/api/patients/{pid}/risk", headers=h).json()
    assert second["tier"] == "high"
    assert second["assessed_at"] == second["since"]
    app_client.get(f"/api/patients/{pid}/risk", headers=h)
    (episode,) = db.execute("SELECT id FROM alerts WHERE patient_id = %s AND kind = 'risk_tier'",
                            [pid]).fetchone() or ()
    changes = list(db.execute(
        "SELECT from_tier, to_tier, alert_id, jsonb_array_length(evidence) "
        "FROM risk_tier_changes WHERE patient_id = %s ORDER BY id", [pid]))
    # The first assessment is where the patient starts; the rise went into an episode.
    assert changes == [(None, "rising", None, 6), ("rising", "high", episode, 6)]
    assert second["changes"][0]["to_tier"] == "high"
    assert second["changes"][0]["alert_id"] == episode


def test_ward_view_sorts_and_filters_by_tier(app_client, staff, admit, db, clock):
    h = staff(Role.HUB_NURSE).headers
    calm = admit(pathway=Pathway.STEP_DOWN, source=ReferralSource.HOSPITAL_WARD)
    busy = admit()
    for pid, total, risk in ((calm, 0, "low"), (busy, 6, "medium")):
        for hours_ago in range(23, 0, -1):
            add_score(db, pid, clock.now - dt.timedelta(hours=hours_ago), total, risk)
    assess(db, [calm, busy], clock.now)
    rows = app_client.get("/api/ward", headers=h, params={"sort": "tier"}).json()["rows"]
    assert [r["patient_id"] for r in rows] == [busy, calm]
    assert [r["tier"]["tier"] for r in rows] == ["rising", "low"]
    only = app_client.get("/api/ward", headers=h, params={"tier": "low"}).json()["rows"]
    assert [r["patient_id"] for r in only] == [calm]
    assert app_client.get("/api/ward", headers=h, params={"tier": "bogus"}).status_code == 422


def test_tier_as_fhir_risk_assessment(app_client, staff, admit, db, clock):
    h = staff(Role.HUB_NURSE).headers
    pid = admit()
    add_score(db, pid, clock.now - dt.timedelta(minutes=5), 7, "high")
    assess(db, [pid], clock.now)
    response = app_client.get("/api/fhir/RiskAssessment", headers=h,
                              params={"patient": f"Patient/{pid}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate(response.json())
    assert bundle.total == 1
    ra = RiskAssessment.model_validate(bundle.entry[0].resource.model_dump())
    assert ra.subject.reference == f"Patient/{pid}"
    assert ra.prediction[0].qualitativeRisk.coding[0].code == "high"
    assert any(n.text.startswith("NEWS2 now: 6 of 6") for n in ra.note)
    assert bundle.entry[0].fullUrl.endswith(f"RiskAssessment/{ra.id}")


def test_a_wearables_many_scores_count_as_one_point_per_hour(app_client, staff, admit, db,
                                                             clock):
    h = staff(Role.HUB_NURSE).headers
    pid = admit(at=clock.now - dt.timedelta(hours=3))
    for minute in range(1, 50, 2):  # 25 scores in the last hour, the newest a 4
        add_score(db, pid, clock.now - dt.timedelta(minutes=minute), 4 if minute == 1 else 2)
    assess(db, [pid], clock.now)
    body = app_client.get(f"/api/patients/{pid}/risk", headers=h).json()
    c = {x["factor"]: x for x in body["contributions"]}
    assert c["news2_now"]["detail"] == "latest total 4"
    # NEWS2 4 (low): 4-6-hourly -> 3 h on the ward asks for 1 set; 1 hour with sets, not 25.
    assert c["completeness"]["detail"].startswith("1 of 1 expected sets")


_JUNK = st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=False,
                                                                 allow_infinity=False),
                  st.none(), st.booleans(), st.lists(st.text(max_size=30), max_size=3))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from([*FACTS, "extra"]), _JUNK, max_size=6))
def test_junk_risk_facts_never_yield_a_500(app_client, staff, admit, body):
    h = staff(Role.HUB_NURSE).headers
    pid = admit()
    response = app_client.put(f"/api/patients/{pid}/risk-factors", headers=h, json=body)
    assert response.status_code < 500, (body, response.text)
    assert response.status_code in {200, 422}, (body, response.text)
    referral = app_client.post("/api/referrals", headers=h, json={
        "patient_id": pid, "pathway": "step_up", "source": "gp", "risk_factors": body})
    assert referral.status_code < 500, (body, referral.text)


def _task(db: psycopg.Connection[Any], pid: int, now: dt.datetime, *, priority: int,
          due_in: dt.timedelta) -> None:
    db.execute(
        "INSERT INTO tasks (kind, patient_id, reason, detail, due_at, priority, created_by, "
        "created_at) VALUES ('visit', %s, 'requested', 'check in', %s, %s, 'test', %s)",
        (pid, now + due_in, priority, now))
    db.commit()


def test_worklist_sorts_and_filters_by_tier_and_by_news2(app_client, staff, admit, db, clock):
    h = staff(Role.HUB_NURSE).headers
    calm = admit(pathway=Pathway.STEP_DOWN, source=ReferralSource.HOSPITAL_WARD)
    sick = admit()
    add_score(db, calm, clock.now - dt.timedelta(minutes=30), 0)
    add_score(db, sick, clock.now - dt.timedelta(minutes=30), 7, "high")
    assess(db, [calm, sick], clock.now)
    # The calm patient's task is the more urgent one by priority and due time.
    _task(db, calm, clock.now, priority=1, due_in=dt.timedelta(minutes=10))
    _task(db, sick, clock.now, priority=3, due_in=dt.timedelta(hours=3))

    def patients(**params: Any) -> list[int]:
        body = app_client.get("/api/worklist", headers=h, params=params)
        assert body.status_code == 200, body.text
        ids = [i["patient_id"] for i in body.json()["items"]]
        return list(dict.fromkeys(ids))  # each patient once, in order of first item

    assert patients() == [calm, sick]
    assert patients(sort="tier") == [sick, calm]
    assert patients(sort="news2") == [sick, calm]
    assert patients(tier="high") == [sick]
    assert patients(tier=["low", "rising"]) == [calm]
    assert patients(news2_from=5) == [sick]
    assert patients(news2_from=0, sort="tier") == [sick, calm]
    item = next(i for i in app_client.get("/api/worklist", headers=h).json()["items"]
                if i["patient_id"] == sick)
    assert (item["tier"], item["news2"], item["band"]) == ("high", 7, "high")
    assert app_client.get("/api/worklist", headers=h, params={"sort": "x"}).status_code == 422
    assert app_client.get("/api/worklist", headers=h,
                          params={"news2_from": 21}).status_code == 422
