"""Readings and NEWS2 scores as FHIR R4 Observations (pure; the router does the I/O).

Readings follow the vital-signs profile: category `vital-signs`, a LOINC code, and a
`valueQuantity` in UCUM. Codes: `shared/clinical/NEWS2.md` (via `ward.domain.vitals`).
A NEWS2 score is an Observation coded with SNOMED CT 1104051000000101 (there is no verified
LOINC code), its total as `valueInteger`, one `component` per sub-score with its own SNOMED
code (a missing parameter carries `dataAbsentReason`), and `hasMember` pointing at the
reading Observations the score was computed from.

Every Observation's `subject` carries the patient's NHS number as a logical identifier (system
`https://fhir.nhs.uk/Id/nhs-number`) beside the literal reference, so a receiving system can
match the patient without resolving our ids. `Patient` and `Encounter` (one per admission:
referred → planned, admitted → in-progress, discharged → finished, declined → cancelled; class
HH, home health) are served too.

Readings without a LOINC code (air/oxygen, ACVPU, pump state) are not exported as vital signs.
Must never do I/O.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from ward.domain.vitals import CATALOGUE, VitalCode

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
VITALSIGNS_PROFILE = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ENCOUNTER_STATUS = {"referred": "planned", "admitted": "in-progress",
                    "discharged": "finished", "declined": "cancelled"}

NEWS2_TOTAL = ("1104051000000101", "Royal College of Physicians NEWS2 total score")
# Sub-score codes, SNOMED CT UK extension (NEWS2.md). SpO2 has one code per scale.
NEWS2_COMPONENTS: Mapping[str, tuple[str, str]] = {
    "resp_rate": ("1104301000000104", "NEWS2 respiration rate score"),
    "spo2/1": ("1104311000000102", "NEWS2 SpO2 scale 1 score"),
    "spo2/2": ("1104321000000108", "NEWS2 SpO2 scale 2 score"),
    "air_or_oxygen": ("1104331000000105", "NEWS2 air or oxygen score"),
    "systolic_bp": ("1104341000000101", "NEWS2 systolic blood pressure score"),
    "pulse": ("1104351000000103", "NEWS2 pulse rate score"),
    "consciousness": ("1104361000000100", "NEWS2 consciousness score"),
    "temperature": ("1104371000000107", "NEWS2 temperature score"),
}
SUB_SCORE_ORDER = ("resp_rate", "spo2", "air_or_oxygen", "systolic_bp", "pulse",
                   "consciousness", "temperature")


def _instant(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def reading_id(device_id: str, code: str, measured_at: dt.datetime) -> str:
    """A stable Observation id from the reading's natural key (FHIR ids: [A-Za-z0-9.-]{1,64})."""
    key = f"{device_id}|{code}|{_instant(measured_at)}".encode()
    return "r-" + hashlib.sha256(key).hexdigest()[:40]


def subject(patient_id: int, nhs_number: str | None) -> dict[str, Any]:
    """A reference to the patient, with the NHS number as its identifier when known."""
    ref: dict[str, Any] = {"reference": f"Patient/{patient_id}"}
    if nhs_number:
        ref["identifier"] = {"system": NHS_NUMBER_SYSTEM, "value": nhs_number}
    return ref


def patient_resource(patient_id: int, *, nhs_number: str, given_name: str, family_name: str,
                     date_of_birth: dt.date, address: str | None = None,
                     phone: str | None = None, next_of_kin: str | None = None,
                     gp_practice: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient", "id": str(patient_id),
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs_number}],
        "name": [{"use": "official", "family": family_name, "given": [given_name]}],
        "birthDate": date_of_birth.isoformat(),
    }
    if phone:
        resource["telecom"] = [{"system": "phone", "value": phone, "use": "home"}]
    if address:
        resource["address"] = [{"use": "home", "text": address}]
    if next_of_kin:
        resource["contact"] = [{"relationship": [{"text": "next of kin"}],
                                "name": {"text": next_of_kin}}]
    if gp_practice:
        resource["generalPractitioner"] = [{"display": gp_practice}]
    return resource


def encounter_resource(admission_id: int, *, patient_id: int, nhs_number: str | None,
                       status: str, source: str, pathway: str, referred_at: dt.datetime,
                       admitted_at: dt.datetime | None, discharged_at: dt.datetime | None,
                       outcome: str | None, reason: str | None) -> dict[str, Any]:
    """One admission (or referral) to the virtual ward as an Encounter."""
    period: dict[str, str] = {"start": _instant(admitted_at or referred_at)}
    if discharged_at is not None:
        period["end"] = _instant(discharged_at)
    hospitalization: dict[str, Any] = {"admitSource": {"text": source.replace("_", " ")}}
    if outcome:
        hospitalization["dischargeDisposition"] = {"text": outcome.replace("_", " ")}
    resource: dict[str, Any] = {
        "resourceType": "Encounter", "id": f"adm-{admission_id}",
        "status": ENCOUNTER_STATUS[status],
        "class": {"system": ACT_CODE_SYSTEM, "code": "HH", "display": "home health"},
        "type": [{"text": f"virtual ward ({pathway.replace('_', '-')})"}],
        "subject": subject(patient_id, nhs_number),
        "period": period,
        "hospitalization": hospitalization,
    }
    if reason:
        resource["reasonCode"] = [{"text": reason}]
    return resource


def exportable(code: str) -> bool:
    try:
        return CATALOGUE[VitalCode(code)].loinc is not None
    except ValueError:
        return False


def reading_observation(
    patient_id: int, device_id: str, code: str, measured_at: dt.datetime, value: float,
    *, nhs_number: str | None = None,
) -> dict[str, Any]:
    """One reading as a vital-signs Observation (the code must be `exportable`)."""
    spec = CATALOGUE[VitalCode(code)]
    return {
        "resourceType": "Observation",
        "id": reading_id(device_id, code, measured_at),
        "meta": {"profile": [VITALSIGNS_PROFILE]},
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "vital-signs",
                                  "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": spec.loinc, "display": spec.display}],
                 "text": spec.display},
        "subject": subject(patient_id, nhs_number),
        "effectiveDateTime": _instant(measured_at),
        "device": {"display": device_id},
        "valueQuantity": {"value": value, "unit": spec.unit, "system": UCUM,
                          "code": spec.unit},
    }


def news2_observation(
    patient_id: int, computed_at: dt.datetime, *, total: int, sub_scores: Mapping[str, int],
    spo2_scale: int, missing: Sequence[str], evidence: Sequence[Mapping[str, Any]],
    nhs_number: str | None = None,
) -> dict[str, Any]:
    """A NEWS2 score with its sub-scores as components and its readings as members."""
    components = []
    for parameter in SUB_SCORE_ORDER:
        key = f"spo2/{spo2_scale}" if parameter == "spo2" else parameter
        code, display = NEWS2_COMPONENTS[key]
        component: dict[str, Any] = {
            "code": {"coding": [{"system": SNOMED, "code": code, "display": display}]}}
        if parameter in sub_scores:
            component["valueInteger"] = int(sub_scores[parameter])
        else:
            component["dataAbsentReason"] = {"coding": [{"system": ABSENT_SYSTEM,
                                                         "code": "not-performed"}]}
        components.append(component)
    members = [
        {"reference": "Observation/" + reading_id(str(e["device_id"]), str(e["code"]),
                                                  _parse(e["measured_at"]))}
        for e in evidence if exportable(str(e.get("code", "")))
    ]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "news2-" + hashlib.sha256(
            f"{patient_id}|{_instant(computed_at)}".encode()).hexdigest()[:40],
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "survey",
                                  "display": "Survey"}]}],
        "code": {"coding": [{"system": SNOMED, "code": NEWS2_TOTAL[0],
                             "display": NEWS2_TOTAL[1]}], "text": "NEWS2"},
        "subject": subject(patient_id, nhs_number),
        "effectiveDateTime": _instant(computed_at),
        "valueInteger": int(total),
        "component": components,
    }
    if members:
        resource["hasMember"] = members
    if missing:
        # A partial total is a lower bound, and says so in a field a machine reads: a
        # Quantity with comparator ">=" instead of an integer a receiver would take as the
        # score, an interpretation naming it incomplete, and a note naming what is missing.
        present = len(SUB_SCORE_ORDER) - len(missing)
        del resource["valueInteger"]
        resource["valueQuantity"] = {"value": int(total), "comparator": ">=",
                                     "unit": "score", "system": UCUM, "code": "{score}"}
        resource["interpretation"] = [{"text": f"incomplete {present}/{len(SUB_SCORE_ORDER)}"
                                               " — full set due; the total is a lower bound"}]
        resource["note"] = [{"text": "Partial score (a lower bound): missing "
                                     + ", ".join(missing)}]
    return resource


def _parse(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def searchset(resources: Sequence[Mapping[str, Any]], *, total: int, base: str, self_url: str,
              next_url: str | None) -> dict[str, Any]:
    """A searchset Bundle; `base` is the server's FHIR base URL ending in '/'."""
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle", "type": "searchset", "total": total, "link": links,
        "entry": [{"fullUrl": f"{base}{r['resourceType']}/{r['id']}", "resource": dict(r),
                   "search": {"mode": "match"}} for r in resources],
    }


# The virtual-ward risk tier as a RiskAssessment (issue 16). Qualitative risk uses HL7's
# risk-probability codes: low -> low, rising -> moderate, high -> high.
RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
_TIER_CODE = {"low": ("low", "Low likelihood"), "rising": ("moderate", "Moderate likelihood"),
              "high": ("high", "High likelihood")}
RISK_METHOD = "virtualward risk tier (alerting.risk_tier): points table, shown with each factor"
RISK_OUTCOME = "Deterioration (NEWS2 5 or more) within 24 hours"


def risk_assessment(patient_id: int, *, tier: str, points: int, assessed_at: dt.datetime,
                    contributions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One tier assessment; every factor's contribution is a `note`, so the "why" travels."""
    code, display = _TIER_CODE[tier]
    key = f"{patient_id}|{_instant(assessed_at)}".encode()
    return {
        "resourceType": "RiskAssessment",
        "id": "ra-" + hashlib.sha256(key).hexdigest()[:40],
        "status": "final",
        "subject": {"reference": f"Patient/{patient_id}"},
        "occurrenceDateTime": _instant(assessed_at),
        "method": {"text": RISK_METHOD},
        "prediction": [{
            "outcome": {"text": RISK_OUTCOME},
            "qualitativeRisk": {"coding": [{"system": RISK_PROBABILITY, "code": code,
                                            "display": display}], "text": tier},
            "whenPeriod": {"start": _instant(assessed_at),
                           "end": _instant(assessed_at + dt.timedelta(hours=24))},
            "rationale": f"{points} points",
        }],
        "note": [{"text": f"{c['label']}: {c['points']} of {c['max_points']} ({c['detail']})"}
                 for c in contributions],
    }
