"""FHIR R4 read API: `GET /api/fhir/Observation?patient=…` returns a searchset Bundle of
vital-sign readings and NEWS2 scores, newest first (see `ward.hub.fhir` for the mapping).

A search without a lower date bound (`ge`, `gt` or `eq`) covers the last `DEFAULT_DAYS` days:
unbounded, it counted and sorted every chunk of a patient's readings for each page (issue 14).
Ask for `date=ge…` to reach further back."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from psycopg import sql

from ward.domain.vitals import CATALOGUE
from ward.hub import audit, fhir
from ward.hub.deps import DB, Now
from ward.hub.problems import Invalid
from ward.hub.routers.common import BIGINT_MAX, PAGE_MAX, Reader, require_patient

router = APIRouter(prefix="/api/fhir", tags=["FHIR"])
FHIR_JSON = "application/fhir+json"
_DATE = re.compile(r"^(eq|ge|gt|le|lt)?(\d{4}-\d{2}-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:\d{2}))?)$")
# FHIR date prefixes as SQL comparisons on the observation's instant ("eq" a day or a second
# is the range from that instant: its upper bound is added separately).
_OPS = {prefix: sql.SQL("at {} %s").format(sql.SQL(op)) for prefix, op in
        (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("eq", ">="))}
_BEFORE = sql.SQL("at < %s")
_LOINC_TO_CODE = {spec.loinc: code.value for code, spec in CATALOGUE.items() if spec.loinc}
# Default search window: a month covers the ward's usual look-back (a stay is ~2 weeks) and
# keeps the count and sort to a few chunks of the readings hypertable.
DEFAULT_DAYS = 30


def _patient_id(value: str) -> int:
    raw = value.removeprefix("Patient/")
    if not raw.isdigit() or not 1 <= int(raw) <= BIGINT_MAX:
        raise Invalid("patient must be a patient id or Patient/<id>")
    return int(raw)


def _date_clauses(dates: list[str]) -> tuple[list[sql.Composable], list[Any]]:
    clauses: list[sql.Composable] = []
    params: list[Any] = []
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
        clauses.append(_OPS[prefix])
        params.append(when)
        if prefix == "eq":  # eq a day means within that day
            clauses.append(_BEFORE)
            params.append(when + (dt.timedelta(days=1) if "T" not in text
                                  else dt.timedelta(seconds=1)))
    return clauses, params


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
    require_patient(conn, patient_id)
    wanted_code = code.rsplit("|", 1)[-1] if code else None
    codes = list(_LOINC_TO_CODE.values())
    include_scores = category in (None, "survey") and wanted_code in (None, fhir.NEWS2_TOTAL[0])
    include_readings = category in (None, "vital-signs")
    if wanted_code and wanted_code != fhir.NEWS2_TOTAL[0]:
        codes = [_LOINC_TO_CODE[wanted_code]] if wanted_code in _LOINC_TO_CODE else []
    include_readings = include_readings and bool(codes)
    clauses, params = _date_clauses(date or [])
    if not _has_lower_bound(date or []):
        clauses.append(sql.SQL("at >= %s"))
        params.append(now - dt.timedelta(days=DEFAULT_DAYS))
    where = sql.SQL(" AND ").join([sql.SQL("true"), *clauses])
    parts: list[sql.Composable] = []
    args: list[Any] = []
    if include_readings:
        parts.append(sql.SQL("SELECT 'r' AS kind, measured_at AS at, device_id, code, value, "
                             "NULL::int AS total, NULL::jsonb AS subs, NULL::int AS scale, "
                             "NULL::text[] AS missing, NULL::jsonb AS evidence FROM readings "
                             "WHERE patient_id = %s AND code = ANY(%s)"))
        args += [patient_id, codes]
    if include_scores:
        parts.append(sql.SQL("SELECT 's', computed_at, NULL, NULL, NULL, total, sub_scores, "
                             "spo2_scale, missing, evidence FROM scores WHERE patient_id = %s"))
        args.append(patient_id)
    resources: list[dict[str, Any]] = []
    total = 0
    if parts:
        inner = sql.SQL("SELECT * FROM ({}) AS o WHERE {}").format(
            sql.SQL(" UNION ALL ").join(parts), where)
        row = conn.execute(sql.SQL("SELECT count(*) FROM ({}) AS c").format(inner),
                           [*args, *params]).fetchone()
        total = int(row[0]) if row else 0
        for kind, at, device, vital, value, score, subs, scale, missing, evidence in (
            conn.execute(inner + sql.SQL(" ORDER BY at DESC LIMIT %s OFFSET %s"),
                         [*args, *params, count, offset])
        ):
            if kind == "r":
                resources.append(fhir.reading_observation(patient_id, device, vital, at, value))
            else:
                resources.append(fhir.news2_observation(
                    patient_id, at, total=score, sub_scores=subs or {}, spo2_scale=scale,
                    missing=list(missing or []), evidence=evidence or []))
    audit.record(conn, user, "read", "fhir_observation", now=now, patient_id=patient_id,
                 detail={"returned": len(resources)})
    base = str(request.base_url) + "api/fhir/"
    next_url = None
    if offset + count < total:
        next_url = str(request.url.include_query_params(_offset=offset + count))
    bundle = fhir.searchset(resources, total=total, base=base, self_url=str(request.url),
                            next_url=next_url)
    return JSONResponse(bundle, media_type=FHIR_JSON)
