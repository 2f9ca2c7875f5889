"""FHIR R4 read API (see `ward.hub.fhir` for the mapping).

`GET /api/fhir/Observation?patient=…[&date=ge…&date=lt…]`: a searchset Bundle of vital-sign
readings and NEWS2 scores, newest first. `GET /api/fhir/Patient/{id}` and
`/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|…`; `GET /api/fhir/Encounter/adm-{id}`
and `/Encounter?patient=…` (one Encounter per admission). The SQL is
`ward.hub.queries.fhir`'s and `ward.hub.queries.observations`'.

A search without a lower date bound (`ge`, `gt` or `eq`) covers the last `DEFAULT_DAYS` days:
unbounded, it counted and sorted every chunk of a patient's readings for each page (issue 14).
Ask for `date=ge…` to reach further back.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from ward.domain.vitals import CATALOGUE
from ward.hub import audit, fhir
from ward.hub.deps import DB, Now
from ward.hub.problems import Invalid, NotFound
from ward.hub.queries import fhir as fhir_rows
from ward.hub.queries import observations, patients
from ward.hub.routers.common import BIGINT_MAX, PAGE_MAX, Conn, Reader

router = APIRouter(prefix="/api/fhir", tags=["FHIR"])
FHIR_JSON = "application/fhir+json"
_DATE = re.compile(r"^(eq|ge|gt|le|lt)?(\d{4}-\d{2}-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:\d{2}))?)$")
# FHIR date prefixes as comparisons on the observation's instant ("eq" a day or a second is
# the range from that instant: its upper bound is added separately).
_OPS: dict[str, observations.Op] = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "eq": ">="}
_LOINC_TO_CODE = {spec.loinc: code.value for code, spec in CATALOGUE.items() if spec.loinc}
# Default search window: a month covers the ward's usual look-back (a stay is ~2 weeks) and
# keeps the count and sort to a few chunks of the readings hypertable.
DEFAULT_DAYS = 30


def _patient_id(value: str) -> int:
    raw = value.removeprefix("Patient/")
    if not raw.isdigit() or not 1 <= int(raw) <= BIGINT_MAX:
        raise Invalid("patient must be a patient id or Patient/<id>")
    return int(raw)


def _nhs_number(conn: Conn, patient_id: int) -> str:
    found = patients.nhs_number_of(conn, patient_id)
    if found is None:
        raise NotFound(f"no patient with id {patient_id}")
    return found


def _date_bounds(dates: list[str]) -> list[observations.Bound]:
    bounds: list[observations.Bound] = []
    for value in dates:
        match = _DATE.match(value)
        if not match:
            raise Invalid(f"date {value!r} is not [ge|gt|le|lt|eq]YYYY-MM-DD[Thh:mm:ss+zz:zz]")
        prefix, text = match.group(1) or "eq", match.group(2)
        try:
            when = (dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if "T" in text
                    else dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC))
        except ValueError as exc:
            raise Invalid(f"date {value!r} is not a valid instant") from exc
        bounds.append((_OPS[prefix], when))
        if prefix == "eq":  # eq a day means within that day
            bounds.append(("<", when + (dt.timedelta(days=1) if "T" not in text
                                        else dt.timedelta(seconds=1))))
    return bounds


def _has_lower_bound(dates: list[str]) -> bool:
    """Whether a `date` parameter bounds the search from below (no prefix means `eq`)."""
    return any(d[:2] in ("ge", "gt", "eq") or d[:1].isdigit() for d in dates)


@router.get("/Observation", response_class=JSONResponse,
            responses={200: {"content": {FHIR_JSON: {}}}})
def search_observations(
    request: Request, conn: DB, now: Now, user: Reader,
    patient: Annotated[str, Query(max_length=40)],
    category: Literal["vital-signs", "survey"] | None = None,
    code: Annotated[str | None, Query(max_length=60,
                                      description="LOINC code, or system|code")] = None,
    date: Annotated[list[str] | None, Query(max_length=4)] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=PAGE_MAX)] = 100,
    offset: Annotated[int, Query(alias="_offset", ge=0, le=BIGINT_MAX)] = 0,
) -> JSONResponse:
    """Readings (vital-signs) and NEWS2 scores (survey) of one patient, newest first."""
    patient_id = _patient_id(patient)
    nhs = _nhs_number(conn, patient_id)
    wanted_code = code.rsplit("|", 1)[-1] if code else None
    codes = list(_LOINC_TO_CODE.values())
    include_scores = category in (None, "survey") and wanted_code in (None, fhir.NEWS2_TOTAL[0])
    include_readings = category in (None, "vital-signs")
    if wanted_code and wanted_code != fhir.NEWS2_TOTAL[0]:
        codes = [_LOINC_TO_CODE[wanted_code]] if wanted_code in _LOINC_TO_CODE else []
    include_readings = include_readings and bool(codes)
    bounds = _date_bounds(date or [])
    since = None if _has_lower_bound(date or []) else now - dt.timedelta(days=DEFAULT_DAYS)
    total, rows = observations.search(
        conn, patient_id, codes=codes, include_readings=include_readings,
        include_scores=include_scores, since=since, bounds=bounds, count=count, offset=offset)
    resources: list[dict[str, Any]] = []
    for o in rows:
        if isinstance(o, observations.ReadingHit):
            resources.append(fhir.reading_observation(
                patient_id, o.device_id, o.code, o.at, o.value, nhs_number=nhs))
        else:
            resources.append(fhir.news2_observation(
                patient_id, o.at, total=o.total, sub_scores=o.sub_scores,
                spo2_scale=o.spo2_scale, missing=o.missing, evidence=o.evidence,
                nhs_number=nhs))
    audit.record(conn, user, "read", "fhir_observation", now=now, patient_id=patient_id,
                 detail={"returned": len(resources)})
    base = str(request.base_url) + "api/fhir/"
    next_url = None
    if offset + count < total:
        next_url = str(request.url.include_query_params(_offset=offset + count))
    bundle = fhir.searchset(resources, total=total, base=base, self_url=str(request.url),
                            next_url=next_url)
    return JSONResponse(bundle, media_type=FHIR_JSON)


def _patient(p: fhir_rows.PatientRow) -> dict[str, Any]:
    return fhir.patient_resource(p.id, nhs_number=p.nhs_number, given_name=p.given_name,
                                 family_name=p.family_name, date_of_birth=p.date_of_birth,
                                 address=p.address, phone=p.phone, next_of_kin=p.next_of_kin,
                                 gp_practice=p.gp_practice)


def _fhir(resource: dict[str, Any]) -> JSONResponse:
    return JSONResponse(resource, media_type=FHIR_JSON)


def _bundle(request: Request, resources: list[dict[str, Any]]) -> JSONResponse:
    return _fhir(fhir.searchset(resources, total=len(resources),
                                base=str(request.base_url) + "api/fhir/",
                                self_url=str(request.url), next_url=None))


@router.get("/Patient/{patient_id}", response_class=JSONResponse,
            responses={200: {"content": {FHIR_JSON: {}}}})
def read_patient(patient_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)], conn: DB, now: Now,
                 user: Reader) -> JSONResponse:
    found = fhir_rows.patient(conn, patient_id)
    if found is None:
        raise NotFound(f"no patient with id {patient_id}")
    audit.record(conn, user, "read", "fhir_patient", now=now, patient_id=patient_id)
    return _fhir(_patient(found))


@router.get("/Patient", response_class=JSONResponse,
            responses={200: {"content": {FHIR_JSON: {}}}})
def search_patients(request: Request, conn: DB, now: Now, user: Reader,
                    identifier: Annotated[str, Query(max_length=80)]) -> JSONResponse:
    """By NHS number: `identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919`."""
    system, _, value = identifier.rpartition("|")
    if system not in ("", fhir.NHS_NUMBER_SYSTEM):
        raise Invalid(f"identifier system must be {fhir.NHS_NUMBER_SYSTEM}")
    rows = fhir_rows.patients_by_nhs_number(conn, value.replace(" ", ""))
    resources = [_patient(r) for r in rows]
    audit.record(conn, user, "list", "fhir_patient", now=now,
                 patient_ids=[r.id for r in rows])
    return _bundle(request, resources)


def _encounter(e: fhir_rows.EncounterRow) -> dict[str, Any]:
    return fhir.encounter_resource(
        e.id, patient_id=e.patient_id, nhs_number=e.nhs_number, status=e.status,
        source=e.source, pathway=e.pathway, referred_at=e.referred_at,
        admitted_at=e.admitted_at, discharged_at=e.discharged_at, outcome=e.outcome,
        reason=e.reason)


@router.get("/Encounter/{encounter_id}", response_class=JSONResponse,
            responses={200: {"content": {FHIR_JSON: {}}}})
def read_encounter(encounter_id: Annotated[str, Path(pattern=r"^adm-[0-9]{1,18}$")],
                   conn: DB, now: Now, user: Reader) -> JSONResponse:
    admission_id = int(encounter_id.removeprefix("adm-"))
    found = fhir_rows.encounter(conn, admission_id)
    if found is None:
        raise NotFound(f"no Encounter {encounter_id}")
    audit.record(conn, user, "read", "fhir_encounter", now=now, entity_id=admission_id,
                 patient_id=found.patient_id)
    return _fhir(_encounter(found))


@router.get("/Encounter", response_class=JSONResponse,
            responses={200: {"content": {FHIR_JSON: {}}}})
def search_encounters(request: Request, conn: DB, now: Now, user: Reader,
                      patient: Annotated[str, Query(max_length=40)]) -> JSONResponse:
    """The patient's admissions and referrals, newest first."""
    patient_id = _patient_id(patient)
    _nhs_number(conn, patient_id)
    rows = fhir_rows.encounters_of(conn, patient_id)
    audit.record(conn, user, "list", "fhir_encounter", now=now, patient_id=patient_id)
    return _bundle(request, [_encounter(r) for r in rows])
