"""FHIR R4: `GET /api/fhir/RiskAssessment?patient=…` - the patient's current virtual-ward
risk tier as a searchset Bundle holding one RiskAssessment (`ward.hub.fhir.risk_assessment`).
A patient not on the ward (or not assessed yet by the alerting runner) has no current tier:
the Bundle is empty."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from ward.hub import audit, fhir
from ward.hub.deps import DB, Now
from ward.hub.routers.common import Reader, require_patient
from ward.hub.routers.fhir_api import FHIR_JSON, _patient_id
from ward.hub.routers.risk import tier_out

router = APIRouter(prefix="/api/fhir", tags=["FHIR"])


@router.get("/RiskAssessment", response_class=JSONResponse,
            responses={200: {"content": {FHIR_JSON: {}}}})
def search_risk_assessments(request: Request, conn: DB, now: Now, user: Reader,
                            patient: Annotated[str, Query(max_length=40)]) -> JSONResponse:
    patient_id = _patient_id(patient)
    require_patient(conn, patient_id)
    out = tier_out(conn, patient_id)
    resources = [] if out is None else [fhir.risk_assessment(
        patient_id, tier=out.tier, points=out.points, assessed_at=out.assessed_at,
        contributions=[c.model_dump() for c in out.contributions])]
    audit.record(conn, user, "read", "fhir_risk_assessment", now=now, patient_id=patient_id,
                 detail={"returned": len(resources)})
    bundle = fhir.searchset(resources, total=len(resources),
                            base=str(request.base_url) + "api/fhir/",
                            self_url=str(request.url), next_url=None)
    return JSONResponse(bundle, media_type=FHIR_JSON)
