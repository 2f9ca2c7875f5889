"""The FHIR Observation search's SQL: one patient's readings and NEWS2 scores, newest first.

Kept apart from the router so `benchmarks/bench_timescale.py` times the very statements the
hub sends. A search is always bounded below, by `since` or by the caller's own `at >=`
clause: unbounded, the count and the sort read every chunk of a patient's readings,
compressed ones included (issue 14). `since` is written into each branch of the union, on the
hypertable's own time column, so chunk exclusion never depends on the planner pushing a
condition through the union.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import sql

from ward.hub.deps import Conn


@dataclass(frozen=True, slots=True)
class ReadingHit:
    at: dt.datetime
    device_id: str
    code: str
    value: float


@dataclass(frozen=True, slots=True)
class ScoreHit:
    at: dt.datetime
    total: int
    sub_scores: dict[str, int]
    spo2_scale: int
    missing: list[str]
    evidence: list[dict[str, Any]]


def _hit(row: tuple[Any, ...]) -> ReadingHit | ScoreHit:
    kind, at, device, code, value, total, subs, scale, missing, evidence = row
    if kind == "r":
        return ReadingHit(at, str(device), str(code), float(value))
    return ScoreHit(at, int(total), dict(subs or {}), int(scale), list(missing or []),
                    list(evidence or []))


#: A bound on the observation's instant `at`: `(op, instant)`, e.g. `(">=", start)`.
Op = Literal[">=", ">", "<=", "<"]
Bound = tuple[Op, dt.datetime]
_OPS: dict[str, sql.Composable] = {op: sql.SQL("at {} %s").format(sql.SQL(op))
                                   for op in (">=", ">", "<=", "<")}


@dataclass(frozen=True, slots=True)
class Statements:
    count: sql.Composed
    page: sql.Composed
    count_args: list[Any]
    page_args: list[Any]


def statements(patient_id: int, *, codes: Sequence[str], include_readings: bool,
               include_scores: bool, since: dt.datetime | None,
               bounds: Sequence[Bound] = (), count: int, offset: int) -> Statements | None:
    """The count and page statements of a search (None: nothing can match)."""
    floor = sql.SQL("") if since is None else sql.SQL(" AND {} >= %s")
    parts: list[sql.Composable] = []
    args: list[Any] = []
    if include_readings and codes:
        parts.append(sql.SQL(
            "SELECT 'r' AS kind, measured_at AS at, device_id, code, value, "
            "NULL::int AS total, NULL::jsonb AS subs, NULL::int AS scale, "
            "NULL::text[] AS missing, NULL::jsonb AS evidence FROM readings "
            "WHERE patient_id = %s AND code = ANY(%s){}").format(
                floor.format(sql.Identifier("measured_at")) if since else floor))
        args += [patient_id, list(codes), *([since] if since else [])]
    if include_scores:
        parts.append(sql.SQL(
            "SELECT 's', computed_at, NULL, NULL, NULL, total, sub_scores, spo2_scale, "
            "missing, evidence FROM scores WHERE patient_id = %s{}").format(
                floor.format(sql.Identifier("computed_at")) if since else floor))
        args += [patient_id, *([since] if since else [])]
    if not parts:
        return None
    where = sql.SQL(" AND ").join([sql.SQL("true"), *(_OPS[op] for op, _ in bounds)])
    params = [when for _, when in bounds]
    inner = sql.SQL("SELECT * FROM ({}) AS o WHERE {}").format(
        sql.SQL(" UNION ALL ").join(parts), where)
    return Statements(
        count=sql.SQL("SELECT count(*) FROM ({}) AS c").format(inner),
        page=inner + sql.SQL(" ORDER BY at DESC, kind, code, device_id LIMIT %s OFFSET %s"),
        count_args=[*args, *params], page_args=[*args, *params, count, offset])


def search(conn: Conn, patient_id: int, *, codes: Sequence[str], include_readings: bool,
           include_scores: bool, since: dt.datetime | None, bounds: Sequence[Bound] = (),
           count: int, offset: int) -> tuple[int, list[ReadingHit | ScoreHit]]:
    """How many observations match in all, and the page [offset, offset + count).

    `bounds` are further conditions on the instant `at`; `since` is None only when they hold
    the lower bound. Ties on `at` are broken by kind, code and device so
    that pages never overlap or skip a row.
    """
    found = statements(patient_id, codes=codes, include_readings=include_readings,
                       include_scores=include_scores, since=since, bounds=bounds,
                       count=count, offset=offset)
    if found is None:
        return 0, []
    row = conn.execute(found.count, found.count_args).fetchone()
    return (int(row[0]) if row else 0,
            [_hit(r) for r in conn.execute(found.page, found.page_args).fetchall()])
