"""The worklist (what the hub must do next) and the shift handover, as API and pages.

The SQL and the actions are `ward.hub.queries.worklist`'s (the handover's,
`ward.hub.queries.handover`'s); this router checks roles, audits every read and action, and
NOTIFYs `task` events so every open worklist updates live over the existing SSE stream (`/api/events`; `static/worklist.js` refetches the rows).

Each item carries its patient's risk tier (the one the alerting runner stored,
`alerting.risk_store`) and latest NEWS2 (the ward row's), so the list can be ordered by tier or
by NEWS2 instead of priority-then-due, and filtered to some tiers or to NEWS2 from a total.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from alerting.risk_store import StoredTier
from alerting.risk_tier import Tier
from ward.hub import audit, risk, wardcache
from ward.hub.auth import User
from ward.hub.deps import DB, Now, SettingsDep
from ward.hub.problems import Invalid
from ward.hub.queries import handover
from ward.hub.queries import worklist as wl
from ward.hub.routers.common import (
    BIGINT_MAX,
    Clinical,
    Conn,
    Reader,
    Text,
    notify,
    require_patient,
)
from ward.hub.templating import render
from ward.hub.wardview import WardRow
from ward.settings import Settings

router = APIRouter(tags=["worklist"])
Ref = Annotated[str, Path(max_length=40, pattern=r"^(task|obs)-[0-9]+$")]
# Without an earlier handover, "notes since the last handover" means the last 12-hour shift.
SHIFT = dt.timedelta(hours=12)
# The urgent response figure covers the last 30 days unless asked otherwise (a month's audit).
URGENT_DAYS = 30
# A visit requested further ahead than a week is a care-plan matter, not a worklist task.
MAX_VISIT_AHEAD = dt.timedelta(days=7)
# A page of the API's list is at most this long (a 1,000-patient ward has ~2,300 items; a
# client that wants them all asks without `limit`).
MAX_LIMIT = 5000


WorkSort = Literal["due", "tier", "news2"]


class RankedItem(wl.WorkItem):
    """A work item with what its patient's urgency is ordered by (None: not on the ward, or
    no tier assessed / no score yet)."""

    tier: str | None = Field(description="the patient's risk tier: low, rising or high")
    tier_points: int | None
    news2: int | None = Field(description="the patient's latest NEWS2 total")
    news2_complete: bool | None
    band: str | None = Field(description="the ward row's band (risk colour)")


class Worklist(BaseModel):
    """The API's answer (its schema: the list is written by orjson, see `list_worklist`)."""

    items: list[RankedItem]
    total: int = Field(description="every matching item, also those past `limit`")
    urgent_response: wl.UrgentStats


@dataclass(frozen=True, slots=True)
class Listing:
    items: list[wl.Item]  # the page shown (all when no limit), with tier and NEWS2
    total: int
    urgent_response: wl.UrgentStats


class CompleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Annotated[Text, Field(min_length=1, max_length=200)]
    note: Annotated[Text, Field(max_length=2000)] = ""


class HandOverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Annotated[Text | None, Field(max_length=64, description="username; null: the pool")]
    note: Annotated[Text, Field(max_length=2000)] = ""


class VisitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: Annotated[int, Field(ge=1, le=BIGINT_MAX)]
    due_at: AwareDatetime
    reason: Annotated[Text, Field(min_length=1, max_length=2000)]
    priority: Annotated[int, Field(ge=1, le=3)] = 2


class NoteOut(BaseModel):
    at: dt.datetime
    actor: str
    action: str
    task: str
    note: str


class HandoverPatient(BaseModel):
    patient_id: int
    name: str
    nhs_number: str
    band: str
    news2: int | None
    news2_complete: bool
    episode: str | None = Field(description="the open alert episode's summary, if any")
    episode_severity: str | None
    tasks: list[wl.WorkItem]
    notes: list[NoteOut]


class Handover(BaseModel):
    since: dt.datetime
    last_by: str | None
    patients: list[HandoverPatient]


def _rows(request: Request, conn: Conn, now: dt.datetime, settings: Settings,
          patient_ids: list[int] | None = None) -> tuple[list[WardRow], list[wl.Item]]:
    """The ward rows at `now` and the kit's observation sets due from them."""
    cache: wardcache.WardCache = request.app.state.ward_cache
    snap = cache.snapshot(conn, now=now, beds=settings.ward_beds, patient_ids=patient_ids)
    return snap.rows_at(now), _kit_sets(snap.entries, now)


_NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)


def _kit_sets(entries: list[wardcache.Entry], now: dt.datetime) -> list[wl.Item]:
    """`wl.kit_items` of the rows, each row's item kept in its cache entry until its answer
    changes (a parameter enters the horizon or falls overdue): rebuilding every item on each
    request was about a third of the worklist's work at 1,000 patients."""
    out: list[wl.Item] = []
    for entry in entries:
        memo = entry.memo.get("kit")
        if memo is not None and memo[0] <= now < memo[1]:
            item = memo[2]
            if item is not None:
                item = {**item, "seconds_to_due": int((item["due_at"] - now).total_seconds())}
        else:
            item, until = wl.kit_item(entry.row, now)
            entry.memo["kit"] = (now, _NEVER if until is None else until, item)
        if item is not None:
            out.append(item)
    return out


@dataclass(frozen=True, slots=True)
class Order:
    """How the list is ordered and filtered (query parameters of the API and the page)."""

    sort: WorkSort = "due"
    tiers: tuple[Tier, ...] = ()
    news2_from: int | None = None


def ranked(items: list[wl.Item], rows: list[WardRow], tiers: Mapping[int, StoredTier],
           order: Order) -> list[wl.Item]:
    """Items (dicts) with their patient's tier and NEWS2 added (`RankedItem`'s fields),
    filtered and ordered by `order`. Items come most urgent then soonest due; the sorts are
    stable, so that order breaks their ties."""
    by_pid = {r.patient_id: r for r in rows}
    out = []
    for item in items:
        row, tier = by_pid.get(item["patient_id"]), tiers.get(item["patient_id"])
        score = row.score if row is not None else None
        out.append({**item, "tier": tier.tier.value if tier else None,
                    "tier_points": tier.points if tier else None,
                    "news2": score.total if score else None,
                    "news2_complete": score.complete if score else None,
                    "band": row.band if row is not None else None})
    if order.tiers:
        wanted = {t.value for t in order.tiers}
        out = [i for i in out if i["tier"] in wanted]
    if order.news2_from is not None:
        floor = order.news2_from
        out = [i for i in out if i["news2"] is not None and i["news2"] >= floor]
    if order.sort == "tier":
        out.sort(key=lambda i: -(Tier(i["tier"]).rank if i["tier"] else -1))
    elif order.sort == "news2":
        out.sort(key=lambda i: -(i["news2"] if i["news2"] is not None else -1))
    return out


def _worklist(request: Request, conn: Conn, now: dt.datetime, settings: Settings, user: User,
              status: Literal["open", "closed"], patient_id: int | None, mine: bool,
              order: Order = Order(), *, limit: int | None = None, offset: int = 0) -> Listing:
    ids = None if patient_id is None else [patient_id]
    rows, kit_sets = _rows(request, conn, now, settings, ids)
    found = wl.list_items(conn, now, status=status, patient_ids=ids,
                          owner=user.username if mine else None, kit_sets=kit_sets)
    items = ranked(found, rows, risk.stored_tiers(conn, sorted({i["patient_id"] for i in found})),
                   order)
    shown = items[offset:] if limit is None else items[offset:offset + limit]
    # One audit row names every patient of the items shown (ward.hub.audit).
    audit.record(conn, user, "list", "task", now=now,
                 patient_ids=[i["patient_id"] for i in shown],
                 detail={"status": status, "sort": order.sort,
                         "tier": [t.value for t in order.tiers] or None,
                         "news2_from": order.news2_from, "offset": offset, "limit": limit,
                         "shown": len(shown), "total": len(items)})
    return Listing(shown, len(items), wl.urgent_stats(conn, now,
                                                      now - dt.timedelta(days=URGENT_DAYS)))


SortQuery = Annotated[WorkSort, Query(
    description="due: most urgent then soonest due; tier: highest risk tier first; news2: "
                "highest NEWS2 first (ties keep the due order)")]
TierQuery = Annotated[list[Tier] | None, Query(max_length=3, description="only these tiers")]
# The page's "any" option submits an empty value: the same as leaving the filter out.
News2Query = Annotated[Annotated[int, Field(ge=0, le=20)] | None,
                       BeforeValidator(lambda v: None if v == "" else v),
                       Query(description="only patients with NEWS2 at least this (0-20)")]


@router.get("/api/worklist", response_model=Worklist)
def list_worklist(request: Request, conn: DB, now: Now, settings: SettingsDep, user: Reader,
                  status: Literal["open", "closed"] = "open",
                  patient_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
                  mine: bool = False, sort: SortQuery = "due", tier: TierQuery = None,
                  news2_from: News2Query = None,
                  limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None,
                  offset: Annotated[int, Query(ge=0, le=BIGINT_MAX)] = 0) -> Response:
    """Every kind of work, most urgent (priority 1) then soonest due first, or by the
    patient's risk tier or NEWS2; filtered to some tiers or to NEWS2 from a total; `limit`
    and `offset` page through it (`total` counts every matching item)."""
    if patient_id is not None:
        require_patient(conn, patient_id)
    work = _worklist(request, conn, now, settings, user, status, patient_id, mine,
                     Order(sort, tuple(tier or ()), news2_from), limit=limit, offset=offset)
    body = {"items": work.items, "total": work.total,
            "urgent_response": work.urgent_response.model_dump(mode="json")}
    # Written by orjson from the items' dicts (the fields of `RankedItem`, built by our own
    # SQL, so nothing to validate): ~2,300 pydantic items cost ~0.2 s a request at 1,000
    # patients. OPT_UTC_Z writes UTC instants as pydantic does ("…Z").
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")


def _after(conn: Conn, user: User, now: dt.datetime, item: wl.WorkItem, action: str,
           detail: dict[str, Any]) -> wl.WorkItem:
    audit.record(conn, user, action, "task", now=now, entity_id=item.ref,
                 patient_id=item.patient_id, detail=detail)
    notify(conn, "task", [item.patient_id], task=item.ref)
    return item


@router.post("/api/worklist/{ref}/claim", response_model=wl.WorkItem)
def claim(ref: Ref, conn: DB, now: Now, user: Clinical) -> wl.WorkItem:
    return _after(conn, user, now, wl.claim(conn, ref, now, user.username), "claim", {})


@router.post("/api/worklist/{ref}/complete", response_model=wl.WorkItem)
def complete(ref: Ref, body: CompleteIn, conn: DB, now: Now, user: Clinical) -> wl.WorkItem:
    item = wl.complete(conn, ref, now, user.username, outcome=body.outcome, note=body.note)
    return _after(conn, user, now, item, "complete",
                  {"outcome": body.outcome, "note": body.note, "met": item.met})


@router.post("/api/worklist/{ref}/hand-over", response_model=wl.WorkItem)
def hand_over(ref: Ref, body: HandOverIn, conn: DB, now: Now, user: Clinical) -> wl.WorkItem:
    item = wl.hand_over(conn, ref, now, user.username, to=body.to, note=body.note)
    return _after(conn, user, now, item, "hand_over", {"to": body.to, "note": body.note})


@router.post("/api/worklist/visits", response_model=wl.WorkItem, status_code=201)
def request_visit(body: VisitIn, conn: DB, now: Now, user: Clinical) -> wl.WorkItem:
    require_patient(conn, body.patient_id)
    due = body.due_at.astimezone(dt.UTC)
    if not now < due <= now + MAX_VISIT_AHEAD:
        raise Invalid(f"a visit is due within the next {MAX_VISIT_AHEAD.days} days")
    item = wl.request_visit(conn, body.patient_id, now, user.username, due_at=due,
                            reason=body.reason, priority=body.priority)
    return _after(conn, user, now, item, "create", {"kind": "visit", "reason": body.reason})


@router.get("/api/worklist/urgent-response", response_model=wl.UrgentStats)
def urgent_response(conn: DB, now: Now, user: Reader,
                    days: Annotated[int, Query(ge=1, le=366)] = URGENT_DAYS) -> wl.UrgentStats:
    """Met / missed of the 2-hour urgent response clock (standard: ≥ 70 % met)."""
    return wl.urgent_stats(conn, now, now - dt.timedelta(days=days))


def _handover(request: Request, conn: Conn, now: dt.datetime, settings: Settings,
              user: User) -> Handover:
    last = handover.last(conn)
    since, last_by = (last.at, last.by) if last else (now - SHIFT, None)
    rows, kit_sets = _rows(request, conn, now, settings)
    ids = [r.patient_id for r in rows]
    tasks: defaultdict[int, list[wl.Item]] = defaultdict(list)
    for item in wl.list_items(conn, now, patient_ids=ids, kit_sets=kit_sets):
        tasks[item["patient_id"]].append(item)
    notes: dict[int, list[NoteOut]] = {}
    for n in handover.notes_since(conn, since, ids):
        notes.setdefault(n.patient_id, []).append(NoteOut(at=n.at, actor=n.actor,
                                                          action=n.action, task=n.task,
                                                          note=n.note))
    patients = []
    for r in rows:
        episode = r.alerts[0] if r.alerts else None
        patients.append(HandoverPatient(
            patient_id=r.patient_id, name=f"{r.given_name} {r.family_name}",
            nhs_number=r.nhs_number, band=r.band,
            news2=None if r.score is None else r.score.total,
            news2_complete=r.score is not None and r.score.complete,
            episode=None if episode is None else episode.summary,
            episode_severity=None if episode is None else episode.severity,
            tasks=[wl.WorkItem.model_validate(i) for i in tasks.get(r.patient_id, ())],
            notes=notes.get(r.patient_id, [])))
    audit.record(conn, user, "read", "handover", now=now, patient_ids=ids)
    return Handover(since=since, last_by=last_by, patients=patients)


@router.get("/api/handover", response_model=Handover)
def read_handover(request: Request, conn: DB, now: Now, settings: SettingsDep,
                  user: Reader) -> Handover:
    """Per admitted patient (ward order): risk, NEWS2, open episode, tasks, notes since."""
    return _handover(request, conn, now, settings, user)


@router.post("/api/handover", status_code=204)
def give_handover(conn: DB, now: Now, user: Clinical) -> Response:
    """Record that the shift handed over now: later notes belong to the next handover."""
    handover.record(conn, now, user.username)
    audit.record(conn, user, "create", "handover", now=now)
    return Response(status_code=204)


def _page(request: Request, user: User, now: dt.datetime, settings: Settings,
          active: str) -> dict[str, object]:
    return {"user": user, "now": now, "active": active, "beds": settings.ward_beds,
            "request": request}


def _order_context(order: Order) -> dict[str, object]:
    return {"order": order, "order_tiers": [t.value for t in order.tiers]}


@router.get("/worklist", include_in_schema=False)
def worklist_page(request: Request, conn: DB, now: Now, settings: SettingsDep,
                  user: Reader, sort: SortQuery = "due", tier: TierQuery = None,
                  news2_from: News2Query = None) -> Response:
    order = Order(sort, tuple(tier or ()), news2_from)
    work = _worklist(request, conn, now, settings, user, "open", None, False, order)
    return render(request, "worklist.html", {**_page(request, user, now, settings, "worklist"),
                                             "work": work, **_order_context(order)})


@router.get("/worklist/rows", include_in_schema=False)
def worklist_rows(request: Request, conn: DB, now: Now, settings: SettingsDep,
                  user: Reader, sort: SortQuery = "due", tier: TierQuery = None,
                  news2_from: News2Query = None) -> Response:
    order = Order(sort, tuple(tier or ()), news2_from)
    work = _worklist(request, conn, now, settings, user, "open", None, False, order)
    return render(request, "_worklist_rows.html",
                  {**_page(request, user, now, settings, "worklist"), "work": work,
                   **_order_context(order)})


@router.get("/handover", include_in_schema=False)
def handover_page(request: Request, conn: DB, now: Now, settings: SettingsDep,
                  user: Reader) -> Response:
    return render(request, "handover.html", {**_page(request, user, now, settings, "handover"),
                                             "handover": _handover(request, conn, now,
                                                                   settings, user)})
