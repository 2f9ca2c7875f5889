"""The dashboard's HTML pages (server-rendered) and the fragments the live script swaps in.

Pages: ward view (`/`), alert queue (`/alerts`), patient page (`/patients/{id}`); the
reports page is `report_pages`'. Fragments: `/ward/rows?patient_id=…` (just the changed
rows), `/alerts/cards[?patient_id=…]` (episode cards) and
`/patients/{id}/panel`, fetched by `static/hub.js` when an SSE event names a patient.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from alerting.risk_tier import Tier
from ward.domain import nhs_number
from ward.domain.vitals import CATALOGUE, VitalCode, display_unit
from ward.hub import (
    audit,
    chart_overlays,
    charts,
    observation_tasks,
    risk,
    wardcache,
    wardrow_html,
    wardview,
)
from ward.hub.auth import User
from ward.hub.deps import DB, Now, SettingsDep
from ward.hub.queries import evidence as evidence_queries
from ward.hub.queries import staff_entries
from ward.hub.routers.alerts import card_context
from ward.hub.routers.common import BIGINT_MAX, PatientId, Reader
from ward.hub.routers.readings import MAX_WINDOW_HOURS, load_record
from ward.hub.routers.risk import risk_context
from ward.hub.templating import render
from ward.settings import Settings

router = APIRouter(include_in_schema=False)
# The alert queue page shows the 200 most urgent open alerts; more is a major incident.
QUEUE_LIMIT = 200
# Findings decided on the NEWS2 total, whose active stretches the NEWS2 chart shows.
NEWS2_CHART_KINDS = frozenset({"news2", "single_parameter_3"})


def _base(request: Request, user: User, now: dt.datetime, settings: Settings, active: str
          ) -> dict[str, object]:
    return {"user": user, "now": now, "active": active, "beds": settings.ward_beds,
            "nhs": nhs_number.display, "request": request}


def _ward(request: Request, conn: DB, now: dt.datetime, settings: Settings,
          patient_ids: list[int] | None = None
          ) -> tuple[wardview.WardView, dict[int, dict[str, Any]]]:
    """The view at `now`, and each row's cache memo (where its HTML's fixed parts are kept)."""
    cache: wardcache.WardCache = request.app.state.ward_cache
    snap = cache.snapshot(conn, now=now, beds=settings.ward_beds, patient_ids=patient_ids)
    memos = {e.row.patient_id: e.memo for e in snap.entries}
    return wardview.WardView(snap.rows_at(now), snap.admitted, snap.beds), memos


def _rows_html(view: wardview.WardView, memos: dict[int, dict[str, Any]],
               tiers: dict[int, Any], now: dt.datetime, settings: Settings, user: User,
               gone: list[int] | None = None) -> str:
    return wardrow_html.rows_html(view.rows, now, tz=settings.tz, tiers=tiers,
                                  username=user.username if user else None, memos=memos,
                                  gone=gone or ())


def _tiers(conn: DB, view: wardview.WardView, *, by_tier: bool = False,
           only: list[Tier] | None = None) -> tuple[wardview.WardView, dict[int, object]]:
    """The view's rows with their stored risk tiers, sorted/filtered by tier."""
    tiers = risk.stored_tiers(conn, [r.patient_id for r in view.rows])
    rows = risk.sort_and_filter(view.rows, tiers, by_tier=by_tier, only=only)
    return (wardview.WardView(rows, view.admitted, view.beds),
            {pid: risk.tier_brief(a) for pid, a in tiers.items()})


@router.get("/")
def ward_page(request: Request, conn: DB, now: Now, settings: SettingsDep, user: Reader,
              sort: Literal["news2", "tier"] = "news2",
              tier: Annotated[list[Tier] | None, Query(max_length=3)] = None) -> Response:
    ward, memos = _ward(request, conn, now, settings)
    view, tiers = _tiers(conn, ward, by_tier=sort == "tier", only=tier)
    # The queue beside the ward is the alerts page's episode cards, with the same actions
    # (static/alerts.js): acknowledge, resolve, snooze, escalate now, note.
    cards = card_context(conn, now, limit=QUEUE_LIMIT)
    shown = _shown(cards)
    # The page shows the ward rows and the alert cards beside them: every patient in either.
    audit.record(conn, user, "read", "ward", now=now,
                 patient_ids=[*(r.patient_id for r in view.rows),
                              *(a.patient_id for a in shown)],
                 detail={"alert_ids": [a.id for a in shown]})
    return render(request, "ward.html", {
        **_base(request, user, now, settings, "ward"), "view": view, **cards,
        # wardrow_html escapes every value it writes.
        "rows_html": Markup(_rows_html(view, memos, tiers, now, settings, user)),  # noqa: S704
        "tier_sort": sort, "tier_only": [t.value for t in tier or ()]})


@router.get("/ward/rows")
def ward_rows(
    request: Request, conn: DB, now: Now, settings: SettingsDep, user: Reader,
    patient_id: Annotated[list[Annotated[int, Query(ge=1, le=BIGINT_MAX)]] | None,
                          Query(max_length=500)] = None,
) -> Response:
    """Rows of the named patients (all when none named); rows no longer admitted are marked."""
    ward, memos = _ward(request, conn, now, settings, patient_id)
    view, tiers = _tiers(conn, ward)
    shown = {r.patient_id for r in view.rows}
    gone = sorted(set(patient_id or ()) - shown)
    audit.record(conn, user, "read", "ward", now=now,
                 patient_ids=[r.patient_id for r in view.rows],
                 detail={"subset": patient_id is not None})
    # Written by ward.hub.wardrow_html, not a template: ~10 x cheaper a row (its docstring).
    return HTMLResponse(_rows_html(view, memos, tiers, now, settings, user, gone),
                        headers={"X-Ward-Admitted": str(view.admitted)})


def _shown(cards: dict[str, Any]) -> list[Any]:
    """Every episode the cards show (new, acknowledged, snoozed)."""
    parts = cards["sections"]
    return [a for part in (parts.new, parts.acknowledged, parts.snoozed) for a in part]


def _alert_cards(request: Request, conn: DB, now: dt.datetime, settings: Settings, user: User,
                 name: str, patient_id: int | None = None) -> Response:
    cards = card_context(conn, now, patient_id=patient_id, limit=QUEUE_LIMIT)
    shown = _shown(cards)
    audit.record(conn, user, "list", "alert", now=now, patient_ids=[a.patient_id for a in shown],
                 detail={"alert_ids": [a.id for a in shown]})
    response = render(request, name, {**_base(request, user, now, settings, "alerts"), **cards})
    counted = cards["counts"]
    response.headers["X-Open-Alerts"] = str(counted.needs_action)
    response.headers["X-High-Alerts"] = ",".join(str(i) for i in counted.high_ids)
    return response


@router.get("/alerts")
def alerts_page(request: Request, conn: DB, now: Now, settings: SettingsDep, user: Reader
                ) -> Response:
    return _alert_cards(request, conn, now, settings, user, "alerts.html")


@router.get("/alerts/cards")
def alert_cards(
    request: Request, conn: DB, now: Now, settings: SettingsDep, user: Reader,
    patient_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
) -> Response:
    """The episode cards (all open, or one patient's): the fragment the live script swaps in."""
    return _alert_cards(request, conn, now, settings, user, "_alert_cards.html", patient_id)


def _patient_context(request: Request, conn: DB, now: dt.datetime, settings: Settings,
                     user: User, patient_id: int, hours: int) -> dict[str, object]:
    record = load_record(conn, patient_id, now=now, hours=hours)
    audit.record(conn, user, "read", "patient_record", now=now, entity_id=patient_id,
                 patient_id=patient_id, detail={"hours": hours, "page": True})
    specs = {code.value: CATALOGUE[code] for code in VitalCode}
    vital_charts = []
    for code in ("resp_rate", "spo2", "systolic_bp", "diastolic_bp", "pulse", "temperature"):
        spec = specs[code]
        baseline, cited_by = evidence_queries.for_code(record.evidence, code)
        vital_charts.append(charts.vital_chart(
            code, spec.display, display_unit(spec.unit), record.series.get(code, []),
            start=record.window_start, end=record.window_end, tz=settings.tz,
            spo2_scale=record.care_plan.spo2_scale, baseline=baseline, findings=cited_by,
            now=now) + chart_overlays.caption(code, spec.display, display_unit(spec.unit),
                                              baseline, findings=cited_by, tz=settings.tz))
    news2_points = [(s.computed_at, float(s.total)) for s in record.scores]
    if record.score is not None and record.score.source == "live":
        news2_points.append((record.score.computed_at, float(record.score.total)))
    news2_chart = charts.line_chart(
        "NEWS2 total", news2_points, record.window_start, record.window_end, settings.tz,
        target=None, now=now,
        findings=[f for f in record.evidence.findings if f.kind in NEWS2_CHART_KINDS])
    infusion_chart = None
    if record.series.get("infusion_volume_infused"):
        infusion_chart = charts.line_chart(
            "Volume infused", record.series["infusion_volume_infused"], record.window_start,
            record.window_end, settings.tz, unit=" mL")
    return {**_base(request, user, now, settings, "ward"), "r": record, "hours": hours,
            **card_context(conn, now, patient_id=patient_id),
            "staff_entries": staff_entries.recent(conn, patient_id),
            "vital_charts": vital_charts, "news2_chart": news2_chart,
            "infusion_chart": infusion_chart, "specs": specs,
            "hub_tasks": observation_tasks.open_tasks(conn, patient_id=patient_id)[0]}


@router.get("/patients/{patient_id}")
def patient_page(
    request: Request, patient_id: PatientId, conn: DB, now: Now, settings: SettingsDep,
    user: Reader, hours: Annotated[int, Query(ge=1, le=MAX_WINDOW_HOURS)] = 24,
) -> Response:
    context = _patient_context(request, conn, now, settings, user, patient_id, hours)
    return render(request, "patient.html", {**context, **risk_context(conn, patient_id)})


@router.get("/patients/{patient_id}/panel")
def patient_panel(
    request: Request, patient_id: PatientId, conn: DB, now: Now, settings: SettingsDep,
    user: Reader, hours: Annotated[int, Query(ge=1, le=MAX_WINDOW_HOURS)] = 24,
) -> Response:
    return render(request, "_patient_panel.html",
                  _patient_context(request, conn, now, settings, user, patient_id, hours))
