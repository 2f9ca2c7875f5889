"""Thin SQL for the alerting core: set-based loads and writes, no clinical logic.

Every load takes a whole batch of patients in one statement per table; every write sends one
JSON array expanded by ``jsonb_to_recordset`` — one round trip per table, whatever the batch
size. Per-patient serialisation uses transaction-scoped advisory locks taken in patient-id
order (so two evaluators never deadlock), and the ``alerts_one_open_episode`` unique index with
``ON CONFLICT DO NOTHING`` is the last line of defence against a second open episode.
Statements are composed with :mod:`psycopg.sql` (identifiers quoted, fragments literal).
The caller owns the transaction.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, LiteralString

import psycopg
from psycopg import sql

from alerting import care_plan as care_plans
from alerting import trend
from alerting.candidates import Evidence, Kind, Severity
from alerting.care_plan import CarePlan
from alerting.episodes import Finding
from alerting.lifecycle import Alert, Event, State
from alerting.news2 import Risk
from alerting.observations import Latest
from alerting.routing import Notification
from alerting.series import Series
from alerting.snapshot import RECENT, BaselineStat, DeviceState, PatientSnapshot, ScorePoint
from ward.db import channels

Conn = psycopg.Connection[Any]
Cursor = psycopg.Cursor[Any]

#: The per-patient evaluation locks' first key is ``hashtext(PATIENT_LOCK_SCOPE ||
#: current_schema())``, the second the patient id: a key space per schema. Advisory locks are
#: database-wide, so a fixed namespace made patient 17 of one schema (a test's, a benchmark's,
#: another deployment's) wait for patient 17 of another — and deadlock two processes that
#: each held one schema's lock and wanted the other's (seen in a benchmark, issue 14).
PATIENT_LOCK_SCOPE: Final = "vw.patient:"
#: How far back a snapshot's score history reaches (the band's memory, alerting.due).
SCORE_HISTORY: Final = dt.timedelta(hours=24)
SPO2_HISTORY: Final = dt.timedelta(hours=6)
#: Besides the last :data:`RECENT`, the last few readings of each code (a spot-check patient's
#: previous set may be hours old; the artefact filter compares with it).
LAST_READINGS: Final = 3
#: The first readings fetched to learn a baseline: six hours of a one-a-minute wearable.
LEARN_READINGS: Final = 400
CHANNEL: Final = "vw_events"
MAX_NOTIFY_BYTES: Final = 7000  # NOTIFY payloads must stay under 8000 bytes

_ALERT_TYPES: Final[Mapping[str, LiteralString]] = {
    "id": "bigint", "patient_id": "bigint", "kind": "text", "severity": "text",
    "state": "text", "summary": "text", "details": "jsonb", "raised_at": "timestamptz",
    "updated_at": "timestamptz", "acknowledged_at": "timestamptz", "acknowledged_by": "text",
    "resolved_at": "timestamptz", "resolved_by": "text", "resolution_reason": "text",
    "snoozed_until": "timestamptz", "escalation_tier": "smallint",
    "next_escalation_at": "timestamptz", "evidence": "jsonb", "partial": "boolean",
    "escalation_target": "text",
}
ALERT_COLUMNS: Final = tuple(_ALERT_TYPES)
_FINDING_TYPES: Final[Mapping[str, LiteralString]] = {
    "alert_id": "bigint", "kind": "text", "severity": "text", "summary": "text",
    "details": "jsonb", "evidence": "jsonb", "partial": "boolean", "first_at": "timestamptz",
    "last_at": "timestamptz", "severity_at": "timestamptz", "clear_since": "timestamptz",
    "cleared_at": "timestamptz", "inhibited": "boolean",
}
FINDING_COLUMNS: Final = tuple(_FINDING_TYPES)


def _names(columns: Iterable[str], prefix: str | None = None) -> sql.Composed:
    if prefix is None:
        return sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    return sql.SQL(", ").join(sql.Identifier(prefix, c) for c in columns)


def _record_spec(types: Mapping[str, LiteralString], columns: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(types[c]))
                              for c in columns)


def _evidence(items: Iterable[Evidence]) -> list[dict[str, Any]]:
    return [e.as_json() for e in items]


def alert_from_row(row: Sequence[Any]) -> Alert:
    v = dict(zip(ALERT_COLUMNS, row, strict=True))
    return Alert(
        id=v["id"], patient_id=v["patient_id"], kind=Kind(v["kind"]),
        severity=Severity(v["severity"]), state=State(v["state"]), summary=v["summary"],
        details=v["details"] or {}, raised_at=v["raised_at"], updated_at=v["updated_at"],
        acknowledged_at=v["acknowledged_at"], acknowledged_by=v["acknowledged_by"],
        resolved_at=v["resolved_at"], resolved_by=v["resolved_by"],
        resolution_reason=v["resolution_reason"], snoozed_until=v["snoozed_until"],
        escalation_tier=v["escalation_tier"], next_escalation_at=v["next_escalation_at"],
        evidence=tuple(Evidence.from_json(e) for e in v["evidence"] or ()),
        partial=v["partial"], escalation_target=v["escalation_target"],
    )


def _alert_json(alert: Alert) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ALERT_COLUMNS:
        value = getattr(alert, name)
        if isinstance(value, dt.datetime):
            value = value.isoformat()
        elif name == "evidence":
            value = _evidence(value)
        elif name == "details":
            value = dict(value)
        out[name] = value
    return out


def patient_lock_key(conn: Conn) -> int:
    """The first key of this schema's patient locks (the second is the patient id)."""
    row = conn.execute("SELECT hashtext(%s || current_schema())", (PATIENT_LOCK_SCOPE,)).fetchone()
    assert row is not None  # noqa: S101 - a SELECT of one value returns one row
    return int(row[0])


def lock_patients(conn: Conn, patient_ids: Sequence[int]) -> None:
    """Serialise evaluations per patient until the transaction ends (ordered: no deadlock)."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(%s || current_schema()), id::int) "
        "FROM unnest(%s::bigint[]) AS id ORDER BY id",
        (PATIENT_LOCK_SCOPE, _array(sorted(patient_ids))),
    )


def select_alerts(conn: Conn, where: LiteralString, params: Sequence[Any], *,
                  lock: bool = True, skip_locked: bool = False) -> list[Alert]:
    """Alerts matching a fixed WHERE clause written in this package (never user text)."""
    suffix: LiteralString = (" FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE") if lock else ""
    query = sql.SQL("SELECT {cols} FROM alerts WHERE {where} ORDER BY id{suffix}").format(
        cols=_names(ALERT_COLUMNS), where=sql.SQL(where), suffix=sql.SQL(suffix))
    return [alert_from_row(r) for r in conn.execute(query, params).fetchall()]


def finding_from_row(row: Sequence[Any]) -> tuple[int, Finding]:
    v = dict(zip(FINDING_COLUMNS, row, strict=True))
    return v["alert_id"], Finding(
        kind=Kind(v["kind"]), severity=Severity(v["severity"]), summary=v["summary"],
        first_at=v["first_at"], last_at=v["last_at"], severity_at=v["severity_at"],
        details=v["details"] or {}, evidence=tuple(Evidence.from_json(e) for e in v["evidence"] or ()),
        partial=v["partial"], clear_since=v["clear_since"], cleared_at=v["cleared_at"],
        inhibited=v["inhibited"])


def load_findings(conn: Conn, alert_ids: Sequence[int]) -> dict[int, tuple[Finding, ...]]:
    """Every finding of the given episodes, in the order they were first found."""
    query = sql.SQL("SELECT {cols} FROM alert_findings WHERE alert_id = ANY(%s) "
                    "ORDER BY alert_id, first_at, kind").format(cols=_names(FINDING_COLUMNS))
    out: dict[int, list[Finding]] = defaultdict(list)
    for row in conn.execute(query, (list(alert_ids),)):
        aid, finding = finding_from_row(row)
        out[aid].append(finding)
    return {aid: tuple(fs) for aid, fs in out.items()}


def open_episodes(conn: Conn, patient_ids: Sequence[int]) -> dict[int, Alert]:
    """Each patient's open episode (locked), with its findings."""
    alerts = select_alerts(conn, "patient_id = ANY(%s) AND state <> 'resolved'",
                           (list(patient_ids),))
    findings = load_findings(conn, [a.id for a in alerts if a.id is not None])
    return {a.patient_id: replace(a, findings=findings.get(a.id or 0, ())) for a in alerts}


#: An evaluator's cache entries of a patient no pass evaluated for this long are dropped, at most
#: every :data:`CACHE_SWEEP_EVERY` (a discharged patient's readings stop, so do its passes).
#: 10 min: longer than any device's usual gap while worn (a spot kit's patient, reloaded after
#: it, costs a few rows), short enough that the memory is that of the patients being monitored.
CACHE_IDLE: Final = dt.timedelta(minutes=10)
CACHE_SWEEP_EVERY: Final = dt.timedelta(minutes=1)
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND: Final = dt.timedelta(microseconds=1)
#: How far ahead of `now` a reading still counts (a device clock a little fast).
AHEAD: Final = dt.timedelta(minutes=5)


def _micros(at: dt.datetime) -> int:
    return (at - _EPOCH) // _MICROSECOND


def _array(items: Iterable[int | str]) -> str:
    """A PostgreSQL array literal of integers or of plain identifiers (codes)."""
    return "{" + ",".join(map(str, items)) + "}"


class _Series:
    """One patient's readings of one code as last loaded: every reading measured after
    `since` (as of that load), and, when those were fewer than :data:`LAST_READINGS`, the
    last few before; oldest first in Evidence's order, as columns (:mod:`alerting.series`:
    no object per reading). ``ats[i]`` is row `i`'s measured-at in microseconds since the
    epoch (bisected as integers: comparing aware datetimes of two tzinfo objects — the
    server's rows', the caller's `now` — cost a tenth of a pass, issue 14), ``acc[i]`` the
    sum of the first `i` of them (the check of :class:`SeriesCache`); ``at``, ``value`` and
    ``device`` the rows' measured-at as loaded, value and device id. ``tails`` holds the
    :class:`~alerting.series.Series` of :meth:`tail` by start index until the rows change:
    most of a patient's codes get no new reading in a pass and their window does not move
    past a reading, so the same Series serves again (copying every window into new tuples on
    every pass was a tenth of a pass, issue 14), and a rule may memoise on it
    (:meth:`alerting.series.Series.memo`)."""

    __slots__ = ("acc", "at", "ats", "code", "device", "since", "tails", "value")

    def __init__(self, code: str, since: dt.datetime, rows: _Columns | None) -> None:
        self.code = code
        self.since = since
        at, ats, value, device = rows or ([], [], [], [])
        self.at, self.ats, self.value, self.device = at, ats, value, device
        acc = [0]
        for us in ats:
            acc.append(acc[-1] + us)
        self.acc = acc
        self.tails: dict[int, Series] = {}

    def after(self, lo: int) -> int:
        """The index of the first row measured after `lo` (microseconds since the epoch)."""
        return bisect.bisect_right(self.ats, lo)

    def extend(self, lo: dt.datetime, lo_us: int, new: _Columns | None) -> None:
        """Drop the rows measured at or before `lo` (`lo_us` in microseconds), append `new`
        (measured after the last)."""
        cut = self.after(lo_us)
        if cut:
            for column in (self.at, self.ats, self.value, self.device, self.acc):
                del column[:cut]
            self.tails.clear()
        self.since = lo
        if new is None:
            return
        self.tails.clear()
        at, ats, value, device = new
        self.at += at
        self.ats += ats
        self.value += value
        self.device += device
        acc = self.acc
        for us in ats:
            acc.append(acc[-1] + us)

    def tail(self, i: int) -> Series:
        """Rows `i`… as a :class:`alerting.series.Series` (the same one while the rows are)."""
        got = self.tails.get(i)
        if got is None:
            if len(self.tails) >= 4:  # a window moved on within the rows: bounded anyway
                self.tails.clear()
            got = self.tails[i] = Series(self.code, tuple(self.at[i:]), tuple(self.ats[i:]),
                                         tuple(self.value[i:]), tuple(self.device[i:]))
        return got


#: A batch of one series' rows as columns: measured-at, its µs, value, device id.
_Columns = tuple[list[dt.datetime], list[int], list[float], list[str]]


def _span(code: str) -> dt.timedelta:
    """How far back a snapshot reads `code`: the SpO2 history's span, or the recent window."""
    return SPO2_HISTORY if code == "spo2" else RECENT


class SeriesCache:
    """Each patient's recent readings of the filtered codes (``recent``, the SpO2 history) as
    last loaded, kept by an evaluator between passes: a pass loads only what was measured
    after the newest reading it holds, instead of decoding the whole window again — the
    window's rows were the largest part of a pass's CPU (issue 14: 60 readings an hour a
    code, six hours of SpO2, for every patient of every pass).

    Why it is never stale: readings are only ever inserted (``ward.db.store`` writes with
    ``ON CONFLICT DO NOTHING``; nothing updates one), so what could change the part already
    held is an insert behind its newest reading — a late reading, a backfill, a second device
    at the same instant — or a delete. With each pass's new rows the server counts the rows of
    the held part's range and sums their measured-at (microseconds); an entry whose count or
    sum is not what it holds is loaded again whole, in the same pass. A delete and an insert
    that keep both the count and the sum (same number of rows, same total of instants) in one
    gap between two passes would go unseen: nothing deletes readings inside these windows
    (retention drops months-old partitions). Kept only while it holds at least
    :data:`LAST_READINGS` rows in the window (then the last few are in it); a sparser code is
    loaded whole, which is a few rows. Only one process's memory; never shared.
    """

    def __init__(self) -> None:
        self._by_patient: dict[int, dict[str, _Series]] = {}
        self.incremental = 0  # entries brought up to date by their new rows only
        self.loaded = 0  # entries loaded whole (first seen, sparse, clock moved back)
        self.reloaded = 0  # entries whose check failed: loaded again whole
        self.unchanged = 0  # entries holding no reading, none measured since: kept empty
        #: Each patient's latest readings as last loaded (:func:`_snapshots` reuses them).
        self.latest: dict[int, dict[str, Latest]] = {}

    def forget(self, patient_ids: Iterable[int]) -> None:
        for pid in patient_ids:
            self._by_patient.pop(pid, None)
            self.latest.pop(pid, None)

    def __len__(self) -> int:
        return len(self._by_patient)

    def __contains__(self, patient_id: object) -> bool:
        return patient_id in self._by_patient

    def send(self, conn: Conn, ids: Sequence[int], now: dt.datetime) -> _SeriesLoad:
        """Send this pass's statements (inside the caller's pipeline); read by :meth:`take`."""
        hi = now + AHEAD
        hi_us = _micros(hi)
        spans = [(code, lo, _micros(lo)) for code in _FILTER_CODES for lo in (now - _span(code),)]
        # (patient, code, lo, lo in µs, newest held in µs, rows held after lo, their µs sum)
        inc: list[tuple[int, str, dt.datetime, int, int, int, int]] = []
        full: list[tuple[int, str, dt.datetime]] = []
        empty: list[tuple[int, str, dt.datetime]] = []
        for pid in ids:
            held = self._by_patient.get(pid)
            for code, lo, lo_us in spans:
                entry = None if held is None else held.get(code)
                if entry is not None:
                    if not entry.ats:
                        empty.append((pid, code, lo))
                        continue
                    if entry.since <= lo and entry.ats[-1] <= hi_us:
                        i = entry.after(lo_us)
                        n = len(entry.ats) - i
                        if n >= LAST_READINGS:
                            inc.append((pid, code, lo, lo_us, entry.ats[-1], n,
                                        entry.acc[-1] - entry.acc[i]))
                            continue
                full.append((pid, code, lo))
        new = checks = found = None
        if empty:
            # An entry loaded with no reading at all (a code the patient's devices do not
            # send: the oximeter's perfusion index, say) stays empty while no reading of it
            # is measured up to `hi`: asked per entry, instead of loading each whole again
            # every pass (a fifth of the entries, issue 14). The few that have one now are
            # loaded whole by `take`.
            found = conn.execute(
                "SELECT k.i FROM unnest(%s::bigint[], %s::text[]) WITH ORDINALITY AS k(pid, c, i) "
                "WHERE EXISTS (SELECT 1 FROM readings WHERE patient_id = k.pid AND code = k.c "
                "AND measured_at <= %s)",
                (_array(k[0] for k in empty), _array(k[1] for k in empty), hi))
        if inc:
            # Arrays as one text literal each, instants as microseconds: dumping thousands of
            # elements one by one was a tenth of a pass's CPU.
            pids, codes = _array(k[0] for k in inc), _array(k[1] for k in inc)
            wms = _array(k[4] for k in inc)
            new = conn.execute(
                "SELECT k.pid, k.c, r.measured_at, r.device_id, r.value "
                "FROM unnest(%s::bigint[], %s::text[], %s::bigint[]) AS k(pid, c, wm), "
                "LATERAL (SELECT measured_at, device_id, value FROM readings "
                "  WHERE patient_id = k.pid AND code = k.c "
                "  AND measured_at > timestamptz 'epoch' + k.wm * interval '1 microsecond' "
                "  AND measured_at <= %s) r "
                'ORDER BY k.pid, k.c, r.measured_at, r.device_id COLLATE "C", r.value',
                (pids, codes, wms, hi))
            checks = conn.execute(
                "SELECT k.i FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::bigint[], "
                "%s::bigint[], %s::numeric[]) WITH ORDINALITY AS k(pid, c, lo, wm, n, s, i), "
                "LATERAL (SELECT count(*) AS n, "
                "  coalesce(sum((extract(epoch FROM measured_at) * 1000000)::bigint), 0) AS s "
                "  FROM readings WHERE patient_id = k.pid AND code = k.c "
                "  AND measured_at > timestamptz 'epoch' + k.lo * interval '1 microsecond' "
                "  AND measured_at <= timestamptz 'epoch' + k.wm * interval '1 microsecond') a "
                "WHERE a.n <> k.n OR a.s <> k.s",
                (pids, codes, _array(k[3] for k in inc), wms,
                 _array(k[5] for k in inc), _array(k[6] for k in inc)))
        whole = _series_query(conn, full, hi) if full else None
        return _SeriesLoad(now, inc, full, new, checks, whole, empty, found)

    def take(self, conn: Conn, load: _SeriesLoad,
             ) -> tuple[dict[int, dict[str, Series]], dict[int, Series]]:
        """This pass's ``recent`` and SpO2 history per patient (equal to what
        :func:`load_recent` and the cold SpO2 query return, as columns), the entries brought
        up to date."""
        now = load.now
        failed = {load.inc[i - 1][:2] for (i,) in load.checks.fetchall()} if load.checks else set()
        again = [(pid, code, lo) for pid, code, lo, *_ in load.inc if (pid, code) in failed]
        appeared = [load.empty[i - 1] for (i,) in load.found.fetchall()] \
            if load.found is not None else []
        again += appeared
        new = _grouped(load.new.fetchall()) if load.new is not None else {}
        whole = _grouped(load.whole.fetchall()) if load.whole is not None else {}
        if again:  # rare: a late reading or a backfill behind what is held, a first reading
            whole.update(_grouped(_series_query(conn, again, now + AHEAD).fetchall()))
            self.reloaded += len(again) - len(appeared)
            self.loaded += len(appeared)
        gone = set(appeared)
        for key in load.empty:
            if key not in gone:
                self._by_patient[key[0]][key[1]].since = key[2]
                self.unchanged += 1
        for pid, code, lo, lo_us, *_ in load.inc:
            if (pid, code) not in failed:
                self._by_patient[pid][code].extend(lo, lo_us, new.get((pid, code)))
                self.incremental += 1
        for pid, code, lo in [*load.full, *again]:
            self._by_patient.setdefault(pid, {})[code] = _Series(code, lo, whole.get((pid, code)))
        self.loaded += len(load.full)
        recent: dict[int, dict[str, Series]] = {}
        spo2: dict[int, Series] = {}
        window = _micros(now - RECENT)
        history = _micros(now - SPO2_HISTORY)
        for pid in {k[0] for k in load.inc} | {k[0] for k in load.full} | {k[0] for k in appeared}:
            codes: dict[str, Series] = {}
            for code, entry in self._by_patient[pid].items():
                n = len(entry.ats)
                if not n:
                    continue
                codes[code] = entry.tail(min(entry.after(window), max(n - LAST_READINGS, 0)))
                if code == "spo2":
                    start = entry.after(history)
                    if start < n:
                        spo2[pid] = entry.tail(start)
            if codes:
                recent[pid] = {code: codes[code] for code in sorted(codes)}
        return recent, spo2


@dataclass(frozen=True, slots=True)
class _SeriesLoad:
    now: dt.datetime
    inc: list[tuple[int, str, dt.datetime, int, int, int, int]]
    full: list[tuple[int, str, dt.datetime]]
    new: Cursor | None
    checks: Cursor | None
    whole: Cursor | None
    empty: list[tuple[int, str, dt.datetime]]
    found: Cursor | None  # the indices (from 1) of `empty` that have a reading now


def _grouped(rows: Iterable[tuple[int, str, dt.datetime, str, float]],
             ) -> dict[tuple[int, str], _Columns]:
    """Rows by (patient, code), as columns; device ids interned (one string per device, not
    one per row, held as long as the window holds its readings)."""
    out: dict[tuple[int, str], _Columns] = {}
    intern = sys.intern
    for pid, code, at, device, value in rows:
        key = (pid, code)
        got = out.get(key)
        if got is None:
            got = out[key] = ([], [], [], [])
        got[0].append(at)
        got[1].append((at - _EPOCH) // _MICROSECOND)
        got[2].append(value)
        got[3].append(intern(device))
    return out


def _series_query(conn: Conn, keys: Sequence[tuple[int, str, dt.datetime]], hi: dt.datetime,
                  ) -> Cursor:
    """Whole entries: each key's readings measured in (lo, hi], and its last few up to hi."""
    pids, codes, los = [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]
    return conn.execute(
        "SELECT * FROM (SELECT k.pid, k.c, r.measured_at, r.device_id, r.value "
        "FROM unnest(%s::bigint[], %s::text[]) AS k(pid, c), LATERAL ("
        "  SELECT measured_at, device_id, value FROM readings WHERE patient_id = k.pid "
        '  AND code = k.c AND measured_at <= %s ORDER BY measured_at DESC, device_id COLLATE "C" '
        "  DESC, value DESC LIMIT %s) r "
        "UNION SELECT k.pid, k.c, r.measured_at, r.device_id, r.value "
        "FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS k(pid, c, lo), LATERAL ("
        "  SELECT measured_at, device_id, value FROM readings WHERE patient_id = k.pid "
        "  AND code = k.c AND measured_at > k.lo AND measured_at <= %s) r"
        ') AS u ORDER BY pid, c, measured_at, device_id COLLATE "C", value',
        (pids, codes, hi, LAST_READINGS, pids, codes, los, hi))


class EpisodeCache:
    """Open episodes (with their findings) as last loaded, kept by an evaluator between passes.

    Why: decoding every open episode's JSON (details, evidence, each finding's) on every pass
    was a tenth of a pass's CPU, and most episodes did not change between two passes (issue
    14). An entry is valid while the row's ``xmin`` is the one it was loaded with: every
    write of an episode (this evaluator's, another's, the sweep's, a person's
    acknowledgement) updates its ``alerts`` row, and every write of its findings goes with one
    (``alerting.runner.persist``), so a new ``xmin`` means "load it again". Nothing needs to
    be invalidated by hand: a pass that writes an episode changes its ``xmin``; a pass rolled
    back leaves the row, and the entry loaded from it, as they were. Only one process's
    memory; never shared.
    """

    def __init__(self) -> None:
        self._by_patient: dict[int, tuple[int, str, Alert]] = {}
        self.hits = 0
        self.misses = 0
        #: The same evaluator's readings windows (:class:`SeriesCache`), kept beside.
        self.series = SeriesCache()
        self._used: dict[int, dt.datetime] = {}
        self._swept: dt.datetime | None = None

    def known(self, patient_ids: Sequence[int]) -> tuple[list[int], list[str]]:
        """(alert ids, xmins) of the cached episodes of these patients."""
        entries = [self._by_patient[p] for p in patient_ids if p in self._by_patient]
        return [e[0] for e in entries], [e[1] for e in entries]

    def get(self, patient_id: int, alert_id: int, xmin: str) -> Alert | None:
        entry = self._by_patient.get(patient_id)
        if entry is not None and entry[0] == alert_id and entry[1] == xmin:
            return entry[2]
        return None

    def put(self, alert: Alert, xmin: str) -> None:
        assert alert.id is not None  # noqa: S101 - loaded rows have ids
        self._by_patient[alert.patient_id] = (alert.id, xmin, alert)

    def forget(self, patient_ids: Iterable[int]) -> None:
        for pid in patient_ids:
            self._by_patient.pop(pid, None)

    def forget_patients(self, patient_ids: Iterable[int]) -> None:
        """Drop everything held about these patients (episodes and readings windows)."""
        pids = list(patient_ids)
        self.forget(pids)
        self.series.forget(pids)
        for pid in pids:
            self._used.pop(pid, None)

    def used(self, patient_ids: Iterable[int], now: dt.datetime) -> None:
        """Note that a pass at `now` evaluated these patients; every :data:`CACHE_SWEEP_EVERY`
        forget the patients no pass evaluated for :data:`CACHE_IDLE` (discharged, or quiet:
        the memory held is bounded by the patients evaluated lately, not by all ever seen)."""
        for pid in patient_ids:
            self._used[pid] = now
        if self._swept is not None and dt.timedelta(0) <= now - self._swept < CACHE_SWEEP_EVERY:
            return
        self._swept = now
        self.forget_patients([pid for pid, at in self._used.items()
                              if not dt.timedelta(0) <= now - at <= CACHE_IDLE])

    def __len__(self) -> int:
        return len(self._by_patient)


def load_batch(conn: Conn, patient_ids: Sequence[int], now: dt.datetime,
               cache: EpisodeCache | None = None,
               ) -> tuple[dict[int, PatientSnapshot], dict[int, Alert]]:
    """:func:`load_snapshots` and :func:`open_episodes` of a batch in one round trip.

    The statements are sent together in pipeline mode and run in order in the caller's
    transaction, so the result is what the separate calls return; one round trip instead of
    eleven matters on a loaded machine, where every wait for the server is also a wait to
    be scheduled again (issue 14). With a ``cache``, the open episodes are locked and listed
    with their ``xmin`` first, and only those the cache does not hold at that ``xmin`` are
    loaded and decoded (:class:`EpisodeCache`); the result is the same.
    """
    ids = list(patient_ids)
    if cache is None:
        with conn.pipeline():
            alerts = conn.execute(sql.SQL(
                "SELECT {cols} FROM alerts WHERE patient_id = ANY(%s) AND state <> 'resolved' "
                "ORDER BY id FOR UPDATE").format(cols=_names(ALERT_COLUMNS)), (ids,))
            findings = conn.execute(sql.SQL(
                "SELECT {cols} FROM alert_findings f JOIN alerts a ON a.id = f.alert_id "
                "WHERE a.patient_id = ANY(%s) AND a.state <> 'resolved' "
                "ORDER BY f.alert_id, f.first_at, f.kind").format(
                    cols=_names(FINDING_COLUMNS, "f")), (ids,))
            cursors = _snapshot_queries(conn, ids, now)
        return _snapshots(cursors, ids), _episodes(alerts.fetchall(), findings.fetchall())
    known_ids, known_xmins = cache.known(ids)
    # Integer arrays as one text literal each (see SeriesCache.send); xmins are digits.
    idl, kids, kxmins = _array(ids), _array(known_ids), _array(known_xmins)
    with conn.pipeline():
        # Locks every open episode of the batch first (as without a cache); the statements
        # after it see those rows as locked, so exactly the versions listed here.
        listed = conn.execute(
            "SELECT id, patient_id, xmin::text FROM alerts WHERE patient_id = ANY(%s::bigint[]) "
            "AND state <> 'resolved' ORDER BY id FOR UPDATE", (idl,))
        alerts = conn.execute(sql.SQL(
            "SELECT {cols}, xmin::text FROM alerts WHERE patient_id = ANY(%s::bigint[]) "
            "AND state <> 'resolved' AND (id, xmin::text) NOT IN ("
            "SELECT * FROM unnest(%s::bigint[], %s::text[])) ORDER BY id").format(
                cols=_names(ALERT_COLUMNS)), (idl, kids, kxmins))
        findings = conn.execute(sql.SQL(
            "SELECT {cols} FROM alert_findings f JOIN alerts a ON a.id = f.alert_id "
            "WHERE a.patient_id = ANY(%s::bigint[]) AND a.state <> 'resolved' "
            "AND (a.id, a.xmin::text) NOT IN (SELECT * FROM unnest(%s::bigint[], %s::text[])) "
            "ORDER BY f.alert_id, f.first_at, f.kind").format(
                cols=_names(FINDING_COLUMNS, "f")), (idl, kids, kxmins))
        cursors = _snapshot_queries(conn, ids, now, cold=False)
        series = cache.series.send(conn, ids, now)
    recent, spo2 = cache.series.take(conn, series)
    rows = alerts.fetchall()
    loaded = _episodes([r[:-1] for r in rows], findings.fetchall())
    xmins = {r[0]: r[-1] for r in rows}
    current: dict[int, Alert] = {}
    for aid, pid, xmin in listed.fetchall():
        alert = cache.get(pid, aid, xmin)
        if alert is None:
            if pid not in loaded:  # cannot happen while the rows are locked; be safe anyway
                cache.forget_patients(ids)
                return load_batch(conn, ids, now)
            alert = loaded[pid]
            cache.put(alert, xmins[aid])
            cache.misses += 1
        else:
            cache.hits += 1
        current[pid] = alert
    cache.forget(pid for pid in ids if pid not in current)  # resolved (or gone): no entry
    snapshots = _snapshots(cursors, ids, recent, spo2, cache.series.latest)
    cache.used(ids, now)
    # Not (or no longer) admitted: nothing of theirs is worth keeping between passes.
    cache.series.forget(pid for pid, snap in snapshots.items() if snap.admitted_at is None)
    return snapshots, current


def _episodes(alert_rows: Sequence[Sequence[Any]], finding_rows: Sequence[Sequence[Any]],
              ) -> dict[int, Alert]:
    episodes = [alert_from_row(r) for r in alert_rows]
    by_alert: dict[int, list[Finding]] = defaultdict(list)
    for row in finding_rows:
        aid, finding = finding_from_row(row)
        by_alert[aid].append(finding)
    return {a.patient_id: replace(a, findings=tuple(by_alert.get(a.id or 0, ())))
            for a in episodes}


def load_snapshots(conn: Conn, patient_ids: Sequence[int], now: dt.datetime) -> dict[int, PatientSnapshot]:
    """Everything the rules need for a batch of patients: eight set-based queries, sent in
    one round trip (pipeline mode)."""
    ids = list(patient_ids)
    with conn.pipeline():
        cursors = _snapshot_queries(conn, ids, now)
    return _snapshots(cursors, ids)


def _snapshot_queries(conn: Conn, ids: list[int], now: dt.datetime, *, cold: bool = True,
                      ) -> list[Cursor]:
    """Send the snapshot statements (results are read by :func:`_snapshots`); without `cold`,
    not the recent readings and the SpO2 history (a :class:`SeriesCache` loads them)."""
    idl = _array(ids)  # one text literal (see SeriesCache.send)
    base = [
        conn.execute(
            "SELECT patient_id, code, measured_at, value, device_id FROM latest_readings "
            "WHERE patient_id = ANY(%s::bigint[])", (idl,)),
        conn.execute(sql.SQL("SELECT {} FROM care_plans WHERE patient_id = ANY(%s::bigint[])").format(
            _names(care_plans.SELECT_COLUMNS.split(", "))), (idl,)),
        conn.execute(
            # The score history the rules read (PatientSnapshot.score_history): the newest
            # complete score of the window up to `now` (the band) and the newest of all.
            "SELECT * FROM (SELECT DISTINCT ON (patient_id) patient_id, computed_at, total, "
            "risk, complete, missing FROM scores WHERE patient_id = ANY(%s::bigint[]) "
            "AND complete AND computed_at > %s AND computed_at <= %s "
            "ORDER BY patient_id, computed_at DESC) AS band "
            "UNION SELECT * FROM (SELECT DISTINCT ON (patient_id) patient_id, computed_at, "
            "total, risk, complete, missing FROM scores WHERE patient_id = ANY(%s::bigint[]) "
            "ORDER BY patient_id, computed_at DESC) AS last ORDER BY 1, 2",
            (idl, now - SCORE_HISTORY, now, idl)),
        conn.execute(
            "SELECT a.patient_id, d.id, d.kind, s.online, s.battery_pct, s.updated_at "
            "FROM device_assignments a JOIN devices d ON d.pk = a.device_pk "
            "LEFT JOIN device_status s ON s.device_id = d.id "
            "WHERE a.patient_id = ANY(%s::bigint[]) AND a.during @> %s::timestamptz AND d.active "
            "ORDER BY d.id", (idl, now)),
        conn.execute(
            "SELECT patient_id, admitted_at FROM admissions WHERE patient_id = ANY(%s::bigint[]) "
            "AND status = 'admitted'", (idl,)),
        _baselines_query(conn, idl),
    ]
    if not cold:
        return base
    return [*base, _recent_query(conn, ids, now), conn.execute(
        # Evidence's order (as the recent readings): two devices' SpO2 at one instant come in
        # one order whichever path loads them.
        "SELECT patient_id, measured_at, device_id, value FROM readings "
        "WHERE patient_id = ANY(%s) AND code = 'spo2' AND measured_at > %s "
        'AND measured_at <= %s ORDER BY patient_id, measured_at, device_id COLLATE "C", value',
        (ids, now - SPO2_HISTORY, now + AHEAD))]


def _snapshots(cursors: list[Cursor], ids: list[int],
               recent: Mapping[int, Mapping[str, Sequence[Evidence]]] | None = None,
               spo2_history: Mapping[int, Sequence[Evidence]] | None = None,
               known: dict[int, dict[str, Latest]] | None = None,
               ) -> dict[int, PatientSnapshot]:
    """The snapshots from :func:`_snapshot_queries`' cursors (`recent` and `spo2_history`
    given when they were not among them). `known`: an evaluator's latest readings as last
    loaded (:attr:`SeriesCache.latest`), reused for a row that is the same reading (same
    instant, in the same zone object, value and device) and updated with the others."""
    c_latest, c_plans, c_history, c_devices, c_admitted, c_base = cursors[:6]
    latest: dict[int, dict[str, Latest]] = defaultdict(dict)
    if known is None:
        for pid, code, at, value, device in c_latest.fetchall():
            latest[pid][code] = Latest(code, at, value, device)
    else:
        # Most of a patient's codes have the same latest reading as last pass: building
        # a Latest (and its Evidence) per row per pass was a few % of a pass (issue 14).
        for pid, code, at, value, device in c_latest.fetchall():
            held = known.get(pid)
            if held is None:
                held = known[pid] = {}
            was = held.get(code)
            if was is None or not was.is_reading(at, value, device):
                was = held[code] = Latest(code, at, value, device)
            latest[pid][code] = was
    plans = {row[0]: care_plans.from_row(row) for row in c_plans.fetchall()}
    history: dict[int, list[ScorePoint]] = defaultdict(list)
    for pid, at, total, risk, complete, missing in c_history.fetchall():
        history[pid].append(ScorePoint(at, total, Risk(risk), complete, frozenset(missing)))
    if recent is None or spo2_history is None:
        c_recent, c_spo2 = cursors[6:]
        recent = _recent_rows(c_recent)
        spo2: dict[int, list[Evidence]] = defaultdict(list)
        for pid, at, device, value in c_spo2.fetchall():
            spo2[pid].append(Evidence(at, "spo2", device, value))
        spo2_history = {pid: tuple(es) for pid, es in spo2.items()}
    devices: dict[int, list[DeviceState]] = defaultdict(list)
    for pid, device, kind, online, battery, reported in c_devices.fetchall():
        devices[pid].append(DeviceState(device, kind, online, battery, reported))
    admitted = dict(c_admitted.fetchall())
    baselines = _baselines_rows(c_base)
    return {
        pid: PatientSnapshot(
            patient_id=pid, latest=latest.get(pid, {}), care_plan=plans.get(pid) or _no_plan(pid),
            score_history=tuple(history.get(pid, ())), spo2_history=spo2_history.get(pid, ()),
            devices=tuple(devices.get(pid, ())), admitted_at=admitted.get(pid),
            recent=recent.get(pid, {}), baselines=baselines.get(pid, {}))
        for pid in ids
    }


#: The care plan of a patient who has none (the defaults), built once per patient: it is
#: immutable, and building one per patient per pass was a few % of a pass (issue 14).
_no_plan: Final = functools.lru_cache(maxsize=4096)(CarePlan)

_FILTER_CODES: Final = sorted(trend.CODES | {"perfusion_index"})


def load_recent(conn: Conn, ids: Sequence[int], now: dt.datetime
                ) -> dict[int, dict[str, tuple[Evidence, ...]]]:
    """The last :data:`RECENT` of the charted codes, plus each code's last few readings."""
    return _recent_rows(_recent_query(conn, ids, now))


def _recent_query(conn: Conn, ids: Sequence[int], now: dt.datetime) -> Cursor:
    return conn.execute(
        "SELECT * FROM (SELECT r.patient_id, r.code, r.measured_at, r.device_id, r.value "
        "FROM unnest(%s::bigint[]) AS pid, unnest(%s::text[]) AS c, LATERAL ("
        "  SELECT * FROM readings WHERE patient_id = pid AND code = c AND measured_at <= %s"
        # A total order: which of two readings at one instant is among the last few never
        # depends on the plan (nor on which path loads them: SeriesCache).
        '  ORDER BY measured_at DESC, device_id COLLATE "C" DESC, value DESC LIMIT %s) r '
        "UNION SELECT patient_id, code, measured_at, device_id, value FROM readings "
        "WHERE patient_id = ANY(%s) AND code = ANY(%s) AND measured_at > %s AND measured_at <= %s"
        # Evidence's own order (measured_at, code, device_id, value), device ids compared as
        # Python compares str (code points: the "C" collation), so no sort is needed here.
        ') AS u ORDER BY patient_id, code, measured_at, device_id COLLATE "C", value',
        (list(ids), _FILTER_CODES, now + AHEAD, LAST_READINGS, list(ids),
         _FILTER_CODES, now - RECENT, now + AHEAD))


def _recent_rows(cursor: Cursor) -> dict[int, dict[str, tuple[Evidence, ...]]]:
    """Rows ordered by patient, code, then Evidence's order, distinct (UNION): grouped as
    they come, oldest first."""
    found: dict[int, dict[str, list[Evidence]]] = defaultdict(dict)
    for pid, code, at, device, value in cursor.fetchall():  # fetchall: no per-row overhead
        codes = found[pid]
        if code not in codes:
            codes[code] = []
        codes[code].append(Evidence(at, code, device, value))
    return {pid: {code: tuple(es) for code, es in codes.items()} for pid, codes in found.items()}


def load_baselines(conn: Conn, ids: Sequence[int]) -> dict[int, dict[str, BaselineStat]]:
    return _baselines_rows(_baselines_query(conn, ids))


def _baselines_query(conn: Conn, ids: Sequence[int] | str) -> Cursor:
    """`ids` as a list or as an array literal (:func:`_array`)."""
    return conn.execute(
        "SELECT patient_id, code, mean, sd, n, from_at, to_at FROM patient_baselines "
        "WHERE patient_id = ANY(%s::bigint[])", (ids if isinstance(ids, str) else list(ids),))


def _baselines_rows(cursor: Cursor) -> dict[int, dict[str, BaselineStat]]:
    out: dict[int, dict[str, BaselineStat]] = defaultdict(dict)
    for pid, code, mean, sd, n, start, end in cursor.fetchall():
        out[pid][code] = BaselineStat(code, mean, sd, n, start, end)
    return out


def learn_baselines(conn: Conn, ids: Sequence[int], now: dt.datetime) -> int:
    """Learn (once) each patient's baseline of every charted code whose learning span is
    over (:func:`alerting.trend.learn` decides); returns how many were stored."""
    ripe = conn.execute(
        "SELECT pid, c FROM unnest(%s::bigint[]) AS pid, unnest(%s::text[]) AS c, LATERAL ("
        "  SELECT measured_at FROM readings WHERE patient_id = pid AND code = c "
        "  ORDER BY measured_at LIMIT 1) f "
        "WHERE f.measured_at <= %s AND NOT EXISTS (SELECT 1 FROM patient_baselines b "
        "  WHERE b.patient_id = pid AND b.code = c)",
        (_array(ids), sorted(trend.CODES), now - trend.EARLIEST_LEARN)).fetchall()
    if not ripe:
        return 0
    first: dict[tuple[int, str], list[Evidence]] = defaultdict(list)
    # fetchall: iterating the cursor row by row cost more than learning (a ward's first
    # pass fetches up to LEARN_READINGS rows per ripe code, issue 14).
    for pid, code, at, device, value in conn.execute(
        "SELECT pid, c, r.measured_at, r.device_id, r.value "
        "FROM unnest(%s::bigint[], %s::text[]) AS k(pid, c), LATERAL ("
        "  SELECT measured_at, device_id, value FROM readings WHERE patient_id = pid "
        "  AND code = c ORDER BY measured_at LIMIT %s) r ORDER BY 1, 2, 3",
        (_array(p for p, _ in ripe), _array(c for _, c in ripe), LEARN_READINGS)).fetchall():
        first[(pid, code)].append(Evidence(at, code, device, value))
    rows = []
    for (pid, code), readings in first.items():
        base = trend.learn(code, readings, now)
        if base is not None:
            rows.append({"patient_id": pid, "code": code, "mean": base.mean, "sd": base.sd,
                         "n": base.n, "from_at": base.from_at.isoformat(),
                         "to_at": base.to_at.isoformat()})
    if rows:
        conn.execute(
            "INSERT INTO patient_baselines (patient_id, code, mean, sd, n, from_at, to_at, "
            "learned_at) SELECT patient_id, code, mean, sd, n, from_at, to_at, %s "
            "FROM jsonb_to_recordset(%s::jsonb) AS r(patient_id bigint, code text, "
            "mean double precision, sd double precision, n integer, from_at timestamptz, "
            "to_at timestamptz) ON CONFLICT DO NOTHING", (now, json.dumps(rows)))
    return len(rows)


def insert_scores(conn: Conn, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    conn.execute(
        "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, complete, "
        "spo2_scale, sub_scores, missing, evidence) "
        "SELECT patient_id, computed_at, total, risk, any_single_3, complete, spo2_scale, "
        "sub_scores, ARRAY(SELECT jsonb_array_elements_text(missing)), evidence "
        "FROM jsonb_to_recordset(%s::jsonb) AS r(patient_id bigint, computed_at timestamptz, "
        "total smallint, risk text, any_single_3 boolean, complete boolean, spo2_scale smallint, "
        "sub_scores jsonb, missing jsonb, evidence jsonb) "
        "ON CONFLICT (patient_id, computed_at) DO UPDATE SET total = EXCLUDED.total, "
        "risk = EXCLUDED.risk, any_single_3 = EXCLUDED.any_single_3, "
        "complete = EXCLUDED.complete, sub_scores = EXCLUDED.sub_scores, "
        "missing = EXCLUDED.missing, evidence = EXCLUDED.evidence",
        (json.dumps(rows),),
    )


def insert_alerts(conn: Conn, alerts: Sequence[Alert]) -> dict[int, int]:
    """Insert new open episodes; returns their ids by patient. A concurrent duplicate (another
    evaluator opened the patient's episode first) is skipped."""
    if not alerts:
        return {}
    cols = [c for c in ALERT_COLUMNS if c != "id"]
    query = sql.SQL(
        "INSERT INTO alerts ({cols}) SELECT {cols} FROM jsonb_to_recordset(%s::jsonb) "
        "AS r({spec}) ON CONFLICT (patient_id) WHERE state <> 'resolved' DO NOTHING "
        "RETURNING id, patient_id").format(cols=_names(cols), spec=_record_spec(_ALERT_TYPES, cols))
    rows = conn.execute(query, (json.dumps([_alert_json(a) for a in alerts]),)).fetchall()
    return {pid: aid for aid, pid in rows}


def update_alerts(conn: Conn, alerts: Sequence[Alert]) -> None:
    if not alerts:
        return
    cols = [c for c in ALERT_COLUMNS if c not in ("id", "patient_id", "raised_at")]
    query = sql.SQL("UPDATE alerts AS a SET {sets} FROM jsonb_to_recordset(%s::jsonb) "
                    "AS r({spec}) WHERE a.id = r.id").format(
        sets=sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c),
                                                          sql.Identifier("r", c)) for c in cols),
        spec=_record_spec(_ALERT_TYPES, ["id", *cols]))
    conn.execute(query, (json.dumps([_alert_json(a) for a in alerts]),))


def upsert_findings(conn: Conn, findings: Sequence[tuple[int, Finding]]) -> None:
    """Store episodes' findings (new ones inserted, known ones updated in place)."""
    if not findings:
        return
    rows = [{"alert_id": aid, "kind": f.kind.value, "severity": f.severity.value,
             "summary": f.summary, "details": dict(f.details), "evidence": _evidence(f.evidence),
             "partial": f.partial, "first_at": f.first_at.isoformat(),
             "last_at": f.last_at.isoformat(), "severity_at": f.severity_at.isoformat(),
             "clear_since": None if f.clear_since is None else f.clear_since.isoformat(),
             "cleared_at": None if f.cleared_at is None else f.cleared_at.isoformat(),
             "inhibited": f.inhibited} for aid, f in findings]
    keys = ("alert_id", "kind")
    query = sql.SQL(
        "INSERT INTO alert_findings ({cols}) SELECT {cols} FROM jsonb_to_recordset(%s::jsonb) "
        "AS r({spec}) ON CONFLICT (alert_id, kind) DO UPDATE SET {sets}").format(
        cols=_names(FINDING_COLUMNS), spec=_record_spec(_FINDING_TYPES, FINDING_COLUMNS),
        sets=sql.SQL(", ").join(sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c),
                                                                   sql.Identifier(c))
                                for c in FINDING_COLUMNS if c not in keys))
    conn.execute(query, (json.dumps(rows, default=str),))


def insert_events(conn: Conn, events: Sequence[tuple[int, Event]]) -> None:
    if not events:
        return
    rows = [{"alert_id": aid, "at": e.at.isoformat(), "event": e.event, "actor": e.actor,
             "detail": dict(e.detail), "evidence": _evidence(e.evidence)} for aid, e in events]
    conn.execute(
        "INSERT INTO alert_events (alert_id, at, event, actor, detail, evidence) "
        "SELECT alert_id, at, event, actor, detail, evidence FROM jsonb_to_recordset(%s::jsonb) "
        "AS r(alert_id bigint, at timestamptz, event text, actor text, detail jsonb, evidence jsonb)",
        (json.dumps(rows, default=str),),
    )


def enqueue(conn: Conn, notifications: Sequence[Notification], now: dt.datetime) -> None:
    if not notifications:
        return
    rows = [{"channel": n.channel, "recipient": n.recipient, "payload": n.payload,
             "idempotency_key": n.idempotency_key, "alert_id": n.alert_id} for n in notifications]
    conn.execute(
        "INSERT INTO notification_outbox (created_at, channel, recipient, payload, "
        "idempotency_key, alert_id, next_attempt_at) "
        "SELECT %s, channel, recipient, payload, idempotency_key, alert_id, %s "
        "FROM jsonb_to_recordset(%s::jsonb) AS r(channel text, recipient text, payload jsonb, "
        "idempotency_key text, alert_id bigint) ON CONFLICT (idempotency_key) DO NOTHING",
        (now, now, json.dumps(rows, default=str)),
    )


def notify_patients(conn: Conn, kind: str, patient_ids: Sequence[int]) -> None:
    """One ``NOTIFY vw_events`` ``{"type": kind, "patient_ids": […]}`` per chunk of patients.

    Why not one per patient: the hub gives each open tab a bounded queue (ward.hub.events)
    and tells a tab that overflows to reload the whole ward; a pass scoring 500 patients sent
    500 notifications and turned every tab's next update into a full reload (issue 14).
    """
    notify(conn, [{"type": kind, "patient_ids": chunk}
                  for chunk in channels.patient_chunks(sorted(set(patient_ids)))])


def notify(conn: Conn, payloads: Sequence[dict[str, Any]]) -> None:
    """``NOTIFY vw_events`` for each payload, in the caller's transaction (sent on commit)."""
    texts = [json.dumps(p, separators=(",", ":"), default=str) for p in payloads]
    texts = [t for t in dict.fromkeys(texts) if len(t.encode()) <= MAX_NOTIFY_BYTES]
    if texts:
        conn.execute("SELECT pg_notify(vw_channel(%s), t) FROM unnest(%s::text[]) AS t",
                     (CHANNEL, texts))
