"""Probes for the orchestrator: `/healthz` (the process answers) and `/readyz` (it can serve).

Public on purpose (Kubernetes probes carry no credentials) and so they say nothing about
patients: a status word per check, no versions, no hostnames. They are not audited — they
read no record — and they are on the route-table test's explicit allow-list of public routes.
"""

from __future__ import annotations

import psycopg
import psycopg_pool
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])
# A probe that waits longer than this for a pooled connection reports the database as down:
# kubelet's default probe timeout is 1 s, so a slower answer would be a failure anyway.
DB_TIMEOUT_S = 1.0


@router.get("/healthz", responses={200: {"description": "the process is up"}})
async def healthz() -> JSONResponse:
    """Liveness: the process is up and its event loop answers."""
    return JSONResponse({"status": "ok"})


@router.get("/readyz", responses={200: {"description": "ready"},
                                   503: {"description": "not ready; `checks` says why"}})
def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers and the live-event (LISTEN) connection is up."""
    checks: dict[str, str] = {}
    try:
        with request.app.state.pool.connection(timeout=DB_TIMEOUT_S) as conn:
            conn.execute("SELECT 1").fetchone()
        checks["database"] = "ok"
    except (psycopg.Error, psycopg_pool.PoolTimeout, AttributeError):
        checks["database"] = "unavailable"
    listener = request.app.state.listener
    if listener is None:
        checks["listen"] = "disabled"
    elif request.app.state.broadcaster.listening.is_set() and not listener.done():
        checks["listen"] = "ok"
    else:
        checks["listen"] = "unavailable"
    ready = all(v in ("ok", "disabled") for v in checks.values())
    return JSONResponse({"status": "ok" if ready else "unavailable", "checks": checks},
                        status_code=200 if ready else 503)
