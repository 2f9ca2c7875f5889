"""FHIR: the NHS number on every Observation's subject, Patient and Encounter resources, and
Observations by date range — each validated against the R4B models of fhir.resources."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient as FhirPatient

from ward.db.store import ReadingStore
from ward.domain.readings import Reading
from ward.hub.auth import Role

NHS = "https://fhir.nhs.uk/Id/nhs-number"


def _nhs(db: Any, pid: int) -> str:
    return str(db.execute("SELECT nhs_number FROM patients WHERE id = %s", (pid,)).fetchone()[0])


def test_observations_carry_the_nhs_number_and_are_searchable_by_date_range(
        app_client, staff, admit, db, clock):
    h = staff(Role.HUB_NURSE).headers
    pid = admit()
    days = [clock.now - dt.timedelta(days=d, hours=1) for d in (3, 2, 1)]
    ReadingStore().write(db, [Reading("dev-a", "pulse", at, 70.0 + i, "", pid, at)
                              for i, at in enumerate(days)])
    db.commit()
    got = app_client.get("/api/fhir/Observation", headers=h, params=[
        ("patient", str(pid)), ("date", "ge" + days[1].date().isoformat()),
        ("date", "lt" + days[2].date().isoformat())])
    assert got.status_code == 200, got.text
    bundle = Bundle.model_validate(got.json())
    assert bundle.total == 1
    obs = Observation.model_validate(bundle.entry[0].resource.model_dump())
    assert obs.valueQuantity.value == 71
    assert obs.subject.reference == f"Patient/{pid}"
    assert (obs.subject.identifier.system, obs.subject.identifier.value) == (NHS, _nhs(db, pid))
    instants = app_client.get("/api/fhir/Observation", headers=h, params=[
        ("patient", str(pid)), ("date", "gt" + days[0].isoformat()),
        ("date", "le" + days[2].isoformat())]).json()
    assert instants["total"] == 2


def test_patient_and_encounter_resources_validate(app_client, staff, admit, db, clock):
    h = staff(Role.CLINICIAN).headers
    pid = admit()
    db.execute("UPDATE patients SET address = '1 Mill Lane', phone = '0113 496 0000', "
               "next_of_kin = 'Tom (son)', gp_practice = 'Mill Lane Surgery' WHERE id = %s",
               (pid,))
    db.commit()
    nhs = _nhs(db, pid)
    patient = FhirPatient.model_validate(
        app_client.get(f"/api/fhir/Patient/{pid}", headers=h).json())
    assert (patient.identifier[0].system, patient.identifier[0].value) == (NHS, nhs)
    assert patient.name[0].family == "Lovelace"
    assert patient.birthDate == dt.date(1950, 1, 2)
    assert patient.telecom[0].value == "0113 496 0000"
    assert patient.generalPractitioner[0].display == "Mill Lane Surgery"
    found = Bundle.model_validate(app_client.get("/api/fhir/Patient", headers=h, params={
        "identifier": f"{NHS}|{nhs}"}).json())
    assert [e.resource.id for e in found.entry] == [str(pid)]
    assert app_client.get("/api/fhir/Patient", headers=h, params={
        "identifier": "urn:other|1"}).status_code == 422
    aid = db.execute("SELECT id FROM admissions WHERE patient_id = %s", (pid,)).fetchone()[0]
    encounter = Encounter.model_validate(
        app_client.get(f"/api/fhir/Encounter/adm-{aid}", headers=h).json())
    assert encounter.status == "in-progress"
    assert encounter.class_fhir.code == "HH"
    assert encounter.subject.identifier.value == nhs
    assert encounter.period.end is None
    app_client.post(f"/api/admissions/{aid}/discharge", headers=h,
                    json={"outcome": "conveyed_ed"})
    listed = Bundle.model_validate(app_client.get("/api/fhir/Encounter", headers=h, params={
        "patient": f"Patient/{pid}"}).json())
    finished = Encounter.model_validate(listed.entry[0].resource.model_dump())
    assert finished.status == "finished"
    assert finished.hospitalization.dischargeDisposition.text == "conveyed ed"
    assert finished.period.end is not None
    assert app_client.get("/api/fhir/Encounter/adm-999", headers=h).status_code == 404
