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

from ward.db import worklist as db_worklist
from ward.domain.patients import FOLLOW_UP_OUTCOMES, urgent_response_met
from ward.hub.problems import Conflict, Invalid, NotFound
from ward.hub.wardview import WardRow

Conn = psycopg.Connection[Any]
Source = Literal["task", "obs", "due"]
REF = re.compile(r"^(task|obs)-([1-9][0-9]{0,17})$")
# Kit observation sets are listed from this long before they fall due: enough to plan a
# round, short enough that a 4-hourly patient does not sit on the list all shift.
DUE_HORIZON = dt.timedelta(minutes=30)
# "Overdue" holds strictly after its instant: it flips one microsecond later.
_TICK = dt.timedelta(microseconds=1)
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


# Each branch selects `WorkItem`'s fields in its order, computed by the database (the ref,
# the title, overdue and the countdown at the request's `now`), so a row only has to be
# zipped with FIELDS: a 1,000-patient ward lists ~2,300 items and per-item Python work is
# what its latency is made of.
FIELDS = tuple(WorkItem.model_fields)
_TITLE = sql.SQL("CASE {kind} {whens} ELSE {kind} END")


def _title(kind: sql.Composable) -> sql.Composable:
    return _TITLE.format(kind=kind, whens=sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(k), sql.Literal(v))
        for k, v in TITLES.items()))


def _timed(status: sql.Composable, due: sql.Composable) -> sql.Composable:
    # seconds_to_due truncates towards zero, as int() of Python's total_seconds() does.
    return sql.SQL("{status} = 'open' AND %(now)s > {due}, "
                   "trunc(extract(epoch FROM {due} - %(now)s))::int").format(
        status=status, due=due)


_TASK_SELECT = sql.SQL(
    "SELECT 'task-' || t.id, 'task', t.kind, {title}, t.patient_id, "
    "p.given_name || ' ' || p.family_name, t.detail, t.priority, t.due_at, t.not_before, "
    "t.status, t.owner, t.claimed_at, t.created_at, t.closed_at, t.closed_by, t.outcome, "
    "t.met, {timed} FROM tasks t JOIN patients p ON p.id = t.patient_id WHERE "
).format(title=_title(sql.SQL("t.kind")), timed=_timed(sql.SQL("t.status"), sql.SQL("t.due_at")))
_OBS_STATUS = sql.SQL("CASE WHEN o.done_at IS NULL THEN 'open' ELSE 'done' END")
_OBS_SELECT = sql.SQL(
    "SELECT 'obs-' || o.id, 'obs', 'observation', {title}, o.patient_id, "
    "p.given_name || ' ' || p.family_name, o.parameter || ' by ' || o.method, {priority}, "
    "o.due_at, NULL, {status}, o.owner, o.claimed_at, o.created_at, o.done_at, o.closed_by, "
    "o.outcome, NULL, {timed} FROM observation_tasks o JOIN patients p ON p.id = o.patient_id "
    "WHERE "
).format(title=sql.Literal(TITLES["observation"]), priority=sql.Literal(OBS_PRIORITY),
         status=_OBS_STATUS, timed=_timed(_OBS_STATUS, sql.SQL("o.due_at")))
_SELECT = {"task": _TASK_SELECT, "obs": _OBS_SELECT}
# Each branch filtered on its own table's columns, so the planner uses the open tasks'
# partial indexes (migrations 0080, 0091).
_OPEN = {"task": sql.SQL("t.status = 'open'"), "obs": sql.SQL("o.done_at IS NULL")}
_CLOSED = {"task": sql.SQL("t.status <> 'open'"), "obs": sql.SQL("o.done_at IS NOT NULL")}
_ALIAS = {"task": "t", "obs": "o"}

# A work item as the list carries it: `WorkItem`'s fields as a plain dict, JSON-ready for
# orjson (aware datetimes). Building and then validating ~2,300 pydantic models took
# ~0.2 s a request at 1,000 patients. `WorkItem` stays the schema (OpenAPI) and the type
# of single-item answers.
Item = dict[str, Any]


def _table(source: str) -> sql.Identifier:
    return sql.Identifier("tasks" if source == "task" else "observation_tasks")


def _item(row: Sequence[Any]) -> WorkItem:
    return WorkItem.model_validate(dict(zip(FIELDS, row, strict=True)))


def kit_item(row: WardRow, now: dt.datetime) -> tuple[Item | None, dt.datetime | None]:
    """The row's observation set due from its kit at `now` (None: nothing due within the
    horizon), and until when that answer holds but for `seconds_to_due` (None: until the row
    changes): when a parameter enters the horizon or one listed falls overdue."""
    if row.due is None:
        return None, None
    horizon = now + DUE_HORIZON
    ours = [p for p in row.due.parameters if p.method == "kit"]
    kit = [p for p in ours if p.due_at <= horizon]
    changes = [p.due_at - DUE_HORIZON for p in ours if p.due_at > horizon]
    changes += [p.overdue_at + _TICK for p in kit if not p.overdue(now)]
    until = min(changes, default=None)
    if not kit:
        return None, until
    due_at = min(p.due_at for p in kit)
    overdue = [p.code for p in kit if p.overdue(now)]
    detail = ", ".join(p.code for p in kit) + f" ({row.due.frequency})"
    if overdue:
        detail += "; overdue: " + ", ".join(overdue)
    return {
        "ref": f"due-{row.patient_id}", "source": "due", "kind": "kit_set",
        "title": TITLES["kit_set"], "patient_id": row.patient_id,
        "patient_name": f"{row.given_name} {row.family_name}", "detail": detail,
        "priority": OBS_PRIORITY, "due_at": due_at, "not_before": None, "status": "open",
        "owner": None, "claimed_at": None, "created_at": due_at, "closed_at": None,
        "closed_by": None, "outcome": None, "met": None, "overdue": bool(overdue),
        "seconds_to_due": int((due_at - now).total_seconds())}, until


def kit_items(rows: Iterable[WardRow], now: dt.datetime) -> list[Item]:
    """Observation sets due from the patients' kit (pure: from the ward rows' due reports)."""
    return [item for row in rows if (item := kit_item(row, now)[0]) is not None]


def urgency(item: Item) -> tuple[int, dt.datetime, str]:
    """Most urgent first, then soonest due (the order of the list and the API)."""
    return (item["priority"], item["due_at"], item["ref"])


def recency(item: Item) -> tuple[dt.datetime, str]:
    """Closed items: most recently closed first (`reverse=True`)."""
    return (item["closed_at"] or item["due_at"], item["ref"])


def _where(source: str, status: Literal["open", "closed"], patient_ids: Sequence[int] | None,
           owner: str | None) -> sql.Composable:
    clauses: list[sql.Composable] = [(_OPEN if status == "open" else _CLOSED)[source]]
    if patient_ids is not None:
        clauses.append(sql.SQL("{} = ANY(%(ids)s)").format(
            sql.Identifier(_ALIAS[source], "patient_id")))
    if owner is not None:
        clauses.append(sql.SQL("{} = %(owner)s").format(sql.Identifier(_ALIAS[source], "owner")))
    return sql.SQL(" AND ").join(clauses)


def list_items(conn: Conn, now: dt.datetime, *, status: Literal["open", "closed"] = "open",
               patient_ids: Sequence[int] | None = None, owner: str | None = None,
               kit: Iterable[WardRow] = (), kit_sets: Iterable[Item] | None = None
               ) -> list[Item]:
    """Every work item of the ward (or of `patient_ids`, or owned by `owner`), as dicts.

    One statement over both task tables, plus the kit's sets from the ward rows (or
    `kit_sets`, the same items already made, e.g. memoised per cached row). Open items
    come in `urgency` order; another order (e.g. by risk tier) is a stable sort of this list,
    so its ties keep urgency. Closed items come most recently closed first."""
    query = sql.SQL(" UNION ALL ").join(
        _SELECT[s] + _where(s, status, patient_ids, owner) for s in ("task", "obs"))
    params = {"now": now, "ids": None if patient_ids is None else list(patient_ids),
              "owner": owner}
    items = [dict(zip(FIELDS, r, strict=True)) for r in conn.execute(query, params)]
    if status == "open" and owner is None:
        wanted = None if patient_ids is None else set(patient_ids)
        sets = kit_items(kit, now) if kit_sets is None else kit_sets
        items += [i for i in sets if wanted is None or i["patient_id"] in wanted]
    if status == "open":
        return sorted(items, key=urgency)
    return sorted(items, key=recency, reverse=True)


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
    where = sql.SQL("{} = %(id)s").format(sql.Identifier(_ALIAS[source], "id"))
    row = conn.execute(_SELECT[source] + where, {"now": now, "id": tid}).fetchone()
    if row is None:
        raise NotFound(f"no worklist task {ref}")
    return _item(row)


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
        met = urgent_response_met(item.due_at, now, seen=True) \
            if item.kind == "urgent_response" else None
        conn.execute(
            "UPDATE tasks SET status = 'done', closed_at = greatest(%s, created_at), "
            "outcome = %s, closed_by = %s, met = %s WHERE id = %s",
            (now, outcome, username, met, tid))
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
    """The 2-hour urgent response clock over referrals since `since` (declined ones excluded):
    stored verdicts only, written first for clocks whose deadline passed by `now`."""
    db_worklist.record_missed_urgent_clocks(conn, now)
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE met), count(*) FILTER (WHERE NOT met), "
        "count(*) FILTER (WHERE status = 'open' AND met IS NULL) FROM tasks "
        "WHERE kind = 'urgent_response' AND created_at >= %s "
        "AND NOT (status = 'done' AND met IS NULL)", (since,)).fetchone()
    total, met, missed, pending = (int(v) for v in row) if row else (0, 0, 0, 0)
    decided = met + missed
    return UrgentStats(referrals=total, met=met, missed=missed, pending=pending,
                       met_percent=round(100 * met / decided, 1) if decided else None)
