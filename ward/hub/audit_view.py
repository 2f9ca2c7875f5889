"""The audit log viewer's query: who saw or changed which record, when, filtered and paged.

A request that showed many patients (the ward view, the alert queue) wrote one row naming
them all in `patient_ids`; a record read or change names its patient in `patient_id`. A
"patient" filter finds both: `patient_id = X OR patient_ids @> ARRAY[X]` (the GIN index of
migration 0060 answers the array half). The SQL is composed with `psycopg.sql` from fixed
fragments; every value is a parameter.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ward.domain import nhs_number

Conn = psycopg.Connection[Any]
# The viewer's page size: one screen of rows, quick to scan.
PAGE_SIZE = 50
# An export is for an investigation of one patient or user, not a dump of the table: past
# this many rows the CSV says it was cut short (narrow the filter) instead of growing forever.
EXPORT_MAX = 50_000


@dataclass(frozen=True, slots=True)
class AuditFilter:
    patient_id: int | None = None
    actor: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def as_detail(self) -> dict[str, Any]:
        """The filter as the viewer's own audit row records it."""
        return {"patient_id": self.patient_id, "actor": self.actor,
                "start": None if self.start is None else self.start.isoformat(),
                "end": None if self.end is None else self.end.isoformat()}


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    at: dt.datetime
    actor: str
    action: str
    entity: str
    entity_id: str | None
    patient_id: int | None
    patient_ids: list[int]
    detail: dict[str, Any]

    @property
    def patients(self) -> list[int]:
        """Every patient this row names, the record's own first."""
        first = [] if self.patient_id is None else [self.patient_id]
        return list(dict.fromkeys([*first, *self.patient_ids]))


def patient_by_nhs_number(conn: Conn, text: str) -> int | None:
    """The patient id of an NHS number ("943 476 5919" or "9434765919"), if registered."""
    row = conn.execute("SELECT id FROM patients WHERE nhs_number = %s",
                       (nhs_number.normalise(text),)).fetchone()
    return None if row is None else int(row[0])


def _where(f: AuditFilter) -> tuple[sql.Composable, list[Any]]:
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    if f.patient_id is not None:
        clauses.append(sql.SQL("(patient_id = %s OR patient_ids @> ARRAY[%s]::bigint[])"))
        params += [f.patient_id, f.patient_id]
    if f.actor:
        clauses.append(sql.SQL("actor = %s"))
        params.append(f.actor)
    if f.start is not None:
        clauses.append(sql.SQL("at >= %s"))
        params.append(f.start)
    if f.end is not None:
        clauses.append(sql.SQL("at < %s"))
        params.append(f.end)
    if not clauses:
        return sql.SQL(""), params
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(clauses), params


_SELECT = sql.SQL("SELECT id, at, actor, action, entity, entity_id, patient_id, "
                  "coalesce(patient_ids, '{}'), detail FROM audit_log ")


def _entry(row: tuple[Any, ...]) -> Entry:
    return Entry(int(row[0]), row[1], str(row[2]), str(row[3]), str(row[4]), row[5],
                 row[6], [int(p) for p in row[7]], dict(row[8] or {}))


def search(conn: Conn, f: AuditFilter, *, limit: int = PAGE_SIZE, offset: int = 0
           ) -> tuple[list[Entry], int]:
    """One page of matching rows, newest first, and how many match in all."""
    where, params = _where(f)
    total = conn.execute(sql.SQL("SELECT count(*) FROM audit_log ") + where, params).fetchone()
    rows = conn.execute(_SELECT + where + sql.SQL(" ORDER BY at DESC, id DESC LIMIT %s OFFSET %s"),
                        [*params, limit, offset]).fetchall()
    return [_entry(r) for r in rows], int(total[0]) if total else 0


def export(conn: Conn, f: AuditFilter, *, limit: int = EXPORT_MAX) -> Iterable[Entry]:
    where, params = _where(f)
    with conn.cursor() as cur:
        cur.execute(_SELECT + where + sql.SQL(" ORDER BY at DESC, id DESC LIMIT %s"),
                    [*params, limit + 1])
        for row in cur:
            yield _entry(row)


def to_csv(entries: Iterable[Entry], *, limit: int = EXPORT_MAX) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "at_utc", "user", "action", "entity", "entity_id", "patient_ids",
                     "detail"])
    for n, e in enumerate(entries):
        if n == limit:
            writer.writerow(["", "", "", "truncated", "", "",
                             "", f"more than {limit} rows: narrow the filter"])
            break
        writer.writerow([e.id, e.at.astimezone(dt.UTC).isoformat(), e.actor, e.action,
                         e.entity, e.entity_id or "", " ".join(str(p) for p in e.patients),
                         json.dumps(e.detail, sort_keys=True, default=str)])
    return out.getvalue()
