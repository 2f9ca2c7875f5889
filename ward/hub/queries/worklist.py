"""The worklist: every kind of hub work in one list, most urgent then soonest due first.

One read over the two task tables that exist — `tasks` (full set requested, follow-up call
after discharge, visit request, 2-hour urgent response clock; migrations 0080, 0170) and
`observation_tasks` (parameters the kit cannot measure; 0091) — plus observation sets due
from the kit, taken from the ward rows' own due report (`alerting.due`, the one due rule), so
nothing here re-decides what is due. Items are addressed by a reference `task-<id>`,
`obs-<id>` or (kit sets, not claimable: they close when the reading arrives) `due-<patient>`.

The nurse's actions (claim, complete with an outcome, hand over) are in this module too,
each writing `task_events`; the router audits and notifies.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import psycopg
from psycopg import sql
from pydantic import BaseModel, Field

from ward.domain.patients import FOLLOW_UP_OUTCOMES
from ward.hub.problems import Conflict, Invalid, NotFound
from ward.hub.wardview import WardRow

Conn = psycopg.Connection[Any]
Source = Literal["task", "obs", "due"]
REF = re.compile(r"^(task|obs)-([1-9][0-9]{0,17})$")
# Kit observation sets are listed from this long before they fall due: enough to plan a
# round, short enough that a 4-hourly patient does not sit on the list all shift.
DUE_HORIZON = dt.timedelta(minutes=30)
# Priority of an observation set: clinical (2), like a full set requested (migration 0170).
OBS_PRIORITY = 2
OBS_OUTCOMES = ("measured", "not_needed")
TITLES = {"full_set": "Full set requested", "follow_up_call": "Follow-up call",
          "visit": "Visit", "urgent_response": "Urgent response (2 h)",
          "observation": "Observation", "kit_set": "Observations due"}


class WorkItem(BaseModel):
    ref: str = Field(description="task-<id>, obs-<id>, or due-<patient id> (not claimable)")
    source: Source
    kind: str
    title: str
    patient_id: int
    patient_name: str
    detail: str
    priority: int = Field(description="1 urgent, 2 clinical, 3 routine")
    due_at: dt.datetime
    not_before: dt.datetime | None
    status: str
    owner: str | None
    claimed_at: dt.datetime | None
    created_at: dt.datetime
    closed_at: dt.datetime | None
    closed_by: str | None
    outcome: str | None
    met: bool | None = Field(description="urgent response: seen within 2 hours")
    overdue: bool
    seconds_to_due: int = Field(description="countdown to the due time; negative when overdue")


# One SELECT per table, same columns, so one ORDER BY sorts every kind together.
_UNION = (
    "SELECT 'task' AS source, t.id, t.kind, t.patient_id, "
    "p.given_name || ' ' || p.family_name AS name, t.detail, t.priority, t.due_at, "
    "t.not_before, t.status, t.owner, t.claimed_at, t.created_at, t.closed_at, t.closed_by, "
    "t.outcome, t.met FROM tasks t JOIN patients p ON p.id = t.patient_id "
    "UNION ALL "
    "SELECT 'obs', o.id, 'observation', o.patient_id, p.given_name || ' ' || p.family_name, "
    "o.parameter || ' by ' || o.method, " + str(OBS_PRIORITY) + ", o.due_at, NULL, "
    "CASE WHEN o.done_at IS NULL THEN 'open' ELSE 'done' END, o.owner, o.claimed_at, "
    "o.created_at, o.done_at, o.closed_by, o.outcome, NULL "
    "FROM observation_tasks o JOIN patients p ON p.id = o.patient_id"
)


_UNION_SQL = sql.SQL(_UNION)  # a constant: no input in it


def _table(source: str) -> sql.Identifier:
    return sql.Identifier("tasks" if source == "task" else "observation_tasks")


def _item(row: Sequence[Any], now: dt.datetime) -> WorkItem:
    (source, tid, kind, pid, name, detail, priority, due_at, not_before, status, owner,
     claimed_at, created_at, closed_at, closed_by, outcome, met) = row
    return WorkItem(
        ref=f"{source}-{tid}", source=source, kind=kind, title=TITLES.get(kind, kind),
        patient_id=pid, patient_name=name, detail=detail, priority=priority, due_at=due_at,
        not_before=not_before, status=status, owner=owner, claimed_at=claimed_at,
        created_at=created_at, closed_at=closed_at, closed_by=closed_by, outcome=outcome,
        met=met, overdue=status == "open" and now > due_at,
        seconds_to_due=int((due_at - now).total_seconds()))


def kit_items(rows: Iterable[WardRow], now: dt.datetime) -> list[WorkItem]:
    """Observation sets due from the patients' kit (pure: from the ward rows' due reports)."""
    out: list[WorkItem] = []
    for row in rows:
        if row.due is None:
            continue
        kit = [p for p in row.due.parameters if p.method == "kit" and p.due_at <= now + DUE_HORIZON]
        if not kit:
            continue
        due_at = min(p.due_at for p in kit)
        overdue = [p.code for p in kit if p.overdue(now)]
        detail = ", ".join(p.code for p in kit) + f" ({row.due.frequency})"
        if overdue:
            detail += "; overdue: " + ", ".join(overdue)
        out.append(WorkItem(
            ref=f"due-{row.patient_id}", source="due", kind="kit_set", title=TITLES["kit_set"],
            patient_id=row.patient_id, patient_name=f"{row.given_name} {row.family_name}",
            detail=detail, priority=OBS_PRIORITY, due_at=due_at, not_before=None,
            status="open", owner=None, claimed_at=None, created_at=due_at, closed_at=None,
            closed_by=None, outcome=None, met=None, overdue=bool(overdue),
            seconds_to_due=int((due_at - now).total_seconds())))
    return out


def sort_key(item: WorkItem) -> tuple[int, dt.datetime, str]:
    """Most urgent first, then soonest due (the order of the list and the API)."""
    return (item.priority, item.due_at, item.ref)


def list_items(conn: Conn, now: dt.datetime, *, status: Literal["open", "closed"] = "open",
               patient_ids: Sequence[int] | None = None, owner: str | None = None,
               kit: Iterable[WardRow] = ()) -> list[WorkItem]:
    """Every work item of the ward (or of `patient_ids`, or owned by `owner`)."""
    clauses, params = ["status = 'open'" if status == "open" else "status <> 'open'"], list[Any]()
    if patient_ids is not None:
        clauses.append("patient_id = ANY(%s)")
        params.append(list(patient_ids))
    if owner is not None:
        clauses.append("owner = %s")
        params.append(owner)
    query = sql.SQL("SELECT * FROM ({}) w WHERE {}").format(
        _UNION_SQL, sql.SQL(" AND ").join(sql.SQL(c) for c in clauses))
    items = [_item(r, now) for r in conn.execute(query, params).fetchall()]
    if status == "open" and owner is None:
        wanted = None if patient_ids is None else set(patient_ids)
        items += [i for i in kit_items(kit, now) if wanted is None or i.patient_id in wanted]
    if status == "open":
        return sorted(items, key=sort_key)
    return sorted(items, key=lambda i: (i.closed_at or i.due_at, i.ref), reverse=True)


def _parse(ref: str) -> tuple[str, int]:
    match = REF.match(ref)
    if match is None:
        raise NotFound(f"no worklist task {ref!r} (kit observation sets close on a reading)")
    return match[1], int(match[2])


def load(conn: Conn, ref: str, now: dt.datetime, *, lock: bool = False) -> WorkItem:
    source, tid = _parse(ref)
    if lock:
        conn.execute(sql.SQL("SELECT 1 FROM {} WHERE id = %s FOR UPDATE").format(_table(source)),
                     (tid,))
    row = conn.execute(sql.SQL("SELECT * FROM ({}) w WHERE source = %s AND id = %s").format(
        _UNION_SQL), (source, tid)).fetchone()
    if row is None:
        raise NotFound(f"no worklist task {ref}")
    return _item(row, now)


def _event(conn: Conn, item: WorkItem, now: dt.datetime, actor: str, action: str, *,
           note: str) -> None:
    tid = int(item.ref.split("-")[1])
    conn.execute("INSERT INTO task_events (source, task_id, patient_id, at, actor, action, "
                 "note) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                 (item.source, tid, item.patient_id, now, actor, action, note))


def _open(item: WorkItem) -> None:
    if item.status != "open":
        raise Conflict(f"task {item.ref} is already {item.status}")


def claim(conn: Conn, ref: str, now: dt.datetime, username: str) -> WorkItem:
    item = load(conn, ref, now, lock=True)
    _open(item)
    if item.owner is not None and item.owner != username:
        raise Conflict(f"task {ref} is claimed by {item.owner}; ask them to hand it over")
    _set_owner(conn, item, username, now)
    _event(conn, item, now, username, "claim", note="")
    return load(conn, ref, now)


def _set_owner(conn: Conn, item: WorkItem, owner: str | None, now: dt.datetime) -> None:
    conn.execute(sql.SQL("UPDATE {} SET owner = %s, claimed_at = %s WHERE id = %s").format(
        _table(item.source)), (owner, None if owner is None else now, int(item.ref.split("-")[1])))


def hand_over(conn: Conn, ref: str, now: dt.datetime, username: str, *, to: str | None,
              note: str) -> WorkItem:
    """Give the task to `to` (a clinical user), or back to the pool when `to` is None."""
    item = load(conn, ref, now, lock=True)
    _open(item)
    if to is not None and conn.execute(
            "SELECT 1 FROM users WHERE username = %s AND active AND role IN "
            "('hub_nurse', 'clinician')", (to,)).fetchone() is None:
        raise Invalid(f"no active nurse or clinician {to!r} to hand over to")
    _set_owner(conn, item, to, now)
    _event(conn, item, now, username, "hand_over",
           note=(f"to {to}" if to else "to the pool") + (f": {note}" if note else ""))
    return load(conn, ref, now)


def complete(conn: Conn, ref: str, now: dt.datetime, username: str, *, outcome: str,
             note: str) -> WorkItem:
    """Close the task with its outcome; an urgent response records met (≤ 2 h) or missed."""
    item = load(conn, ref, now, lock=True)
    _open(item)
    tid = int(item.ref.split("-")[1])
    if item.kind == "follow_up_call" and outcome not in FOLLOW_UP_OUTCOMES:
        raise Invalid(f"a follow-up call's outcome is one of {', '.join(FOLLOW_UP_OUTCOMES)}")
    if item.source == "task":
        conn.execute(
            "UPDATE tasks SET status = 'done', closed_at = greatest(%s, created_at), "
            "outcome = %s, closed_by = %s, met = CASE WHEN kind = 'urgent_response' "
            "THEN %s <= due_at END WHERE id = %s", (now, outcome, username, now, tid))
    else:
        if outcome not in OBS_OUTCOMES:
            raise Invalid(f"an observation task's outcome is one of {', '.join(OBS_OUTCOMES)}")
        conn.execute("UPDATE observation_tasks SET done_at = %s, outcome = %s, closed_by = %s "
                     "WHERE id = %s", (now, outcome, username, tid))
    _event(conn, item, now, username, "complete", note=f"{outcome}: {note}" if note else outcome)
    return load(conn, ref, now)


def request_visit(conn: Conn, patient_id: int, now: dt.datetime, username: str, *,
                  due_at: dt.datetime, reason: str, priority: int) -> WorkItem:
    row = conn.execute(
        "INSERT INTO tasks (kind, patient_id, reason, detail, due_at, priority, created_by, "
        "created_at) VALUES ('visit', %s, 'requested', %s, %s, %s, %s, %s) "
        "ON CONFLICT (patient_id, kind) WHERE status = 'open' DO NOTHING RETURNING id",
        (patient_id, reason, due_at, priority, username, now)).fetchone()
    if row is None:
        raise Conflict(f"patient {patient_id} already has an open visit request")
    item = load(conn, f"task-{row[0]}", now)
    _event(conn, item, now, username, "create", note=reason)
    return item


class UrgentStats(BaseModel):
    referrals: int
    met: int
    missed: int = Field(description="closed after 2 hours, or still open past them")
    pending: int = Field(description="open and within their 2 hours")
    met_percent: float | None = Field(description="met / (met + missed); standard ≥ 70 %")


def urgent_stats(conn: Conn, now: dt.datetime, since: dt.datetime) -> UrgentStats:
    """The 2-hour urgent response clock over referrals since `since` (declined ones excluded)."""
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE met), "
        "count(*) FILTER (WHERE met = false OR (status = 'open' AND due_at < %s)), "
        "count(*) FILTER (WHERE status = 'open' AND due_at >= %s) FROM tasks "
        "WHERE kind = 'urgent_response' AND created_at >= %s "
        "AND NOT (status = 'done' AND met IS NULL)", (now, now, since)).fetchone()
    total, met, missed, pending = (int(v) for v in row) if row else (0, 0, 0, 0)
    decided = met + missed
    return UrgentStats(referrals=total, met=met, missed=missed, pending=pending,
                       met_percent=round(100 * met / decided, 1) if decided else None)
