"""The ward view's data: one row per admitted patient, most acute first, in a few queries.

Four set-based queries whatever the number of patients: admissions with their care plans, the
admitted count, current devices, and one statement for everything the row's risk is made of
(latest readings, newest stored and newest complete score, open alerts, 24-hour NEWS2 trend),
so the score and the alerts shown beside it are one snapshot (issue 11.8). The acuity rules
live in `ward.hub.acuity`. `latest_readings` and an index on `scores (patient_id,
computed_at DESC)` keep every query away from the readings history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import psycopg

from alerting import due as due_rule
from alerting.due import DueReport, LastComplete
from alerting.news2 import Risk
from alerting.observations import Latest
from ward.hub import acuity
from ward.hub.acuity import DeviceHealth, Infusion, ScoreView, StoredScore

Conn = psycopg.Connection[Any]
# The sparkline covers the last 24 hours: a day shows a trend without crowding the row.
SPARK_WINDOW = dt.timedelta(hours=24)
SEVERITY_RANK: Mapping[str, int] = {"high": 5, "medium": 4, "low_medium": 3, "low": 2, "info": 1}


@dataclass(frozen=True, slots=True)
class OpenAlert:
    id: int
    kind: str
    severity: str
    state: str
    summary: str
    raised_at: dt.datetime
    acknowledged_by: str | None
    next_escalation_at: dt.datetime | None
    snoozed_until: dt.datetime | None


@dataclass(frozen=True, slots=True)
class WardRow:
    patient_id: int
    nhs_number: str
    given_name: str
    family_name: str
    date_of_birth: dt.date
    admission_id: int
    pathway: str
    source: str
    admitted_at: dt.datetime
    spo2_scale: int
    ceiling_of_care: str
    score: ScoreView | None
    last_observation_at: dt.datetime | None
    overdue: bool
    latest: Mapping[str, Latest]
    devices: tuple[DeviceHealth, ...]
    infusion: Infusion | None
    alerts: tuple[OpenAlert, ...]
    trend: tuple[tuple[dt.datetime, int], ...]
    sort_key: tuple[int, int, float] = field(default=(0, 0, 0.0))
    # Time-driven parts, so a row computed once can be shown at any later instant (see
    # `as_of`): overdue after `overdue_at` (None: never observed, always overdue); the row must
    # be recomputed from `expires_at` on (a live score's parameter goes stale, a sparkline
    # point leaves the 24-hour window, a device assignment starts or ends).
    overdue_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    computed_at: dt.datetime | None = None
    # What is due per NEWS2 parameter (alerting.due, the alert rule's own function), and the
    # band of the open NEWS2 alert, which the row's band never sits below (issue 11.8).
    due: DueReport | None = None
    alert_band: str | None = None
    # What the row was built from besides its latest readings (`refresh_latest` rebuilds
    # the row from these and newly read latest readings); None for rows made elsewhere.
    facts: RowFacts | None = field(default=None, repr=False)

    @property
    def band(self) -> str:
        """The band shown: the score's (incomplete never green), raised to the open alert's."""
        band = self.score.band if self.score is not None else "none"
        if self.alert_band is not None and (
                acuity.RISK_RANK[self.alert_band] > acuity.RISK_RANK[band]):
            return self.alert_band
        return band


def as_of(row: WardRow, now: dt.datetime) -> WardRow:
    """The row as it reads at `now` (only `overdue` moves with time between recomputes)."""
    overdue = acuity.is_overdue_at(row.overdue_at, now)
    return row if overdue == row.overdue else replace(row, overdue=overdue)


def _earliest(*instants: dt.datetime | None) -> dt.datetime | None:
    present = [t for t in instants if t is not None]
    return min(present) if present else None


@dataclass(frozen=True, slots=True)
class WardView:
    rows: list[WardRow]
    admitted: int
    beds: int


def _ids_clause(patient_ids: Sequence[int] | None) -> tuple[str, tuple[object, ...]]:
    if patient_ids is None:
        return "", ()
    return " AND a.patient_id = ANY(%s)", (list(patient_ids),)


# Everything a row's risk is made of, read by ONE statement so it is one snapshot (issue
# 11.8): the latest readings, the newest stored score, the newest complete score within the
# band memory, the open alerts and the 24-hour trend. As separate READ COMMITTED statements
# an evaluation committing between them (a new score, its alert raised or resolved) showed a
# row scored from one moment beside alerts from another (seen: "Low 0" sorted last while
# its NEWS2 3 alert counted down). The request's transaction has already run statements
# (the session lookup), so REPEATABLE READ cannot be set here; one statement needs no
# isolation level. One row per patient with arrays, not one per fact: 24 h of scores for
# 1,000 patients would otherwise be ~24,000 rows to decode.
_FACTS = """
WITH ids AS (SELECT unnest(%(ids)s::bigint[]) AS pid),
lr AS (
  SELECT patient_id, array_agg(code) AS codes, array_agg(measured_at) AS measured,
         array_agg(value) AS vals, array_agg(device_id) AS devices
  FROM latest_readings WHERE patient_id = ANY(%(ids)s) GROUP BY patient_id),
lc AS (
  SELECT DISTINCT ON (patient_id) patient_id, computed_at, total, risk FROM scores
  WHERE patient_id = ANY(%(ids)s) AND complete AND computed_at >= %(since)s
    AND computed_at <= %(now)s
  ORDER BY patient_id, computed_at DESC),
al AS (
  SELECT patient_id, array_agg(id ORDER BY raised_at DESC) AS ids,
         array_agg(kind ORDER BY raised_at DESC) AS kinds,
         array_agg(severity ORDER BY raised_at DESC) AS severities,
         array_agg(state ORDER BY raised_at DESC) AS states,
         array_agg(summary ORDER BY raised_at DESC) AS summaries,
         array_agg(raised_at ORDER BY raised_at DESC) AS raised,
         array_agg(acknowledged_by ORDER BY raised_at DESC) AS acked_by,
         array_agg(next_escalation_at ORDER BY raised_at DESC) AS next_esc,
         array_agg(snoozed_until ORDER BY raised_at DESC) AS snoozed
  FROM alerts WHERE state <> 'resolved' AND patient_id = ANY(%(ids)s) GROUP BY patient_id),
tr AS (
  SELECT patient_id, array_agg(computed_at ORDER BY computed_at) AS times,
         array_agg(total ORDER BY computed_at) AS totals
  FROM scores WHERE patient_id = ANY(%(ids)s) AND computed_at > %(spark)s
    AND computed_at <= %(now)s GROUP BY patient_id)
SELECT ids.pid,
  lr.codes, lr.measured, lr.vals, lr.devices,
  lc.computed_at, lc.total, lc.risk,
  st.computed_at, st.total, st.risk, st.any_single_3, st.complete, st.missing,
  st.sub_scores::text,
  al.ids, al.kinds, al.severities, al.states, al.summaries, al.raised, al.acked_by,
  al.next_esc, al.snoozed,
  tr.times, tr.totals
FROM ids
LEFT JOIN lr ON lr.patient_id = ids.pid
LEFT JOIN lc ON lc.patient_id = ids.pid
LEFT JOIN LATERAL (
  SELECT * FROM scores WHERE patient_id = ids.pid ORDER BY computed_at DESC LIMIT 1) st ON true
LEFT JOIN al ON al.patient_id = ids.pid
LEFT JOIN tr ON tr.patient_id = ids.pid
"""


# The stored score's sub_scores come as text, parsed by orjson: psycopg's jsonb loader (the
# standard library's json) cost ~5 % of the hub's CPU at 2,000 readings/s.
_Facts = tuple[dict[int, dict[str, Latest]], dict[int, LastComplete], dict[int, StoredScore],
               dict[int, list[OpenAlert]], dict[int, list[tuple[dt.datetime, int]]]]


def _score_facts(conn: Conn, ids: Sequence[int], now: dt.datetime) -> _Facts:
    """The readings, scores, open alerts and trend of `ids`, as one snapshot."""
    latest: dict[int, dict[str, Latest]] = {}
    last_complete: dict[int, LastComplete] = {}
    stored: dict[int, StoredScore] = {}
    alerts: dict[int, list[OpenAlert]] = {}
    trends: dict[int, list[tuple[dt.datetime, int]]] = {}
    for (raw_pid, codes, measured, vals, devs, lc_at, lc_total, lc_risk,
         at, total, risk, single3, complete, missing, subs,
         a_ids, kinds, sevs, states, summaries, raised, acked, next_esc, snoozed,
         times, totals) in conn.execute(_FACTS, {
             "ids": list(ids), "now": now, "since": now - due_rule.BAND_MEMORY,
             "spark": now - SPARK_WINDOW}):
        pid = int(raw_pid)
        if codes:
            latest[pid] = {
                str(c): Latest(str(c), m, float(v), str(d))
                for c, m, v, d in zip(codes, measured, vals, devs, strict=True)}
        if lc_at is not None:
            # The same fact the alert rule reads from its 24-hour score history
            # (alerting.due.last_complete).
            last_complete[pid] = LastComplete(lc_at, int(lc_total), Risk(lc_risk))
        if at is not None:
            stored[pid] = StoredScore(at, int(total), str(risk), bool(single3),
                                            bool(complete), tuple(missing or ()),
                                            (orjson.loads(subs) if subs else None) or {})
        if a_ids:
            alerts[pid] = [OpenAlert(*a) for a in zip(
                a_ids, kinds, sevs, states, summaries, raised, acked, next_esc, snoozed,
                strict=True)]
        if times:
            trends[pid] = list(zip(times, (int(t) for t in totals), strict=True))
    return latest, last_complete, stored, alerts, trends


def admitted_count(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM admissions WHERE status = 'admitted'").fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True, slots=True)
class Admission:
    """The patient and admission columns of a row (with the care plan's two settings)."""

    patient_id: int
    nhs_number: str
    given_name: str
    family_name: str
    date_of_birth: dt.date
    admission_id: int
    pathway: str
    source: str
    admitted_at: dt.datetime
    spo2_scale: int
    ceiling_of_care: str


@dataclass(frozen=True, slots=True)
class RowFacts:
    """Everything a row is built from except the latest readings, as `load` read it.

    Only a `readings` event (the gateway's, a staff entry's) may leave these standing:
    scores, alerts, admissions, care plans, patients, device assignments and device status
    each announce themselves with their own event kind (migration 0031, alerting's NOTIFYs).
    Their time-bounded parts (the band memory's last complete score, the sparkline window,
    the device assignments current at the read) end the row through `expires_at`, so facts
    kept past the instant they were read never outlive what they say.
    """

    admission: Admission
    last_complete: LastComplete | None
    stored: StoredScore | None
    alerts: tuple[OpenAlert, ...]  # most severe first, then newest
    trend: tuple[tuple[dt.datetime, int], ...]  # stored scores in the sparkline window
    devices: tuple[DeviceHealth, ...]  # assigned now
    kit: tuple[tuple[str, str], ...]  # (device id, kind) of the active ones
    device_change: dt.datetime | None  # the next start or end of an assignment


def build_row(facts: RowFacts, latest: Mapping[str, Latest], now: dt.datetime) -> WardRow:
    """The row at `now` from its facts and latest readings (pure: no I/O, no clock)."""
    adm = facts.admission
    scale = adm.spo2_scale
    current = acuity.current_score(latest, facts.stored, spo2_scale=scale, now=now)
    last_obs = acuity.last_observation_at(latest)
    trend = list(facts.trend)
    # The oldest sparkline point leaves the window SPARK_WINDOW after it was computed.
    trend_until = trend[0][0] + SPARK_WINDOW if trend else None
    # The due report scores the fresh readings at `now`: the row is recomputed when the
    # first of them goes stale (a live score changes then too).
    fresh_end = acuity.fresh_until(latest, now)
    if current is not None and current.source == "live":
        trend = [*trend, (current.computed_at, current.total)]
    last = facts.last_complete
    report = acuity.due_report(latest, last=last, kit=facts.kit, admitted_at=adm.admitted_at,
                               spo2_scale=scale, now=now)
    if current is not None and report is not None and report.oxygen_unknown:
        current = replace(current, oxygen_unknown=True)
    # The due report remembers the last complete score for BAND_MEMORY.
    band_end = last.computed_at + due_rule.BAND_MEMORY if last is not None else None
    band = acuity.alert_band([(a.kind, a.severity) for a in facts.alerts])
    overdue_at = None if report is None else report.next_overdue_at
    return WardRow(
        patient_id=adm.patient_id, nhs_number=adm.nhs_number, given_name=adm.given_name,
        family_name=adm.family_name, date_of_birth=adm.date_of_birth,
        admission_id=adm.admission_id, pathway=adm.pathway, source=adm.source,
        admitted_at=adm.admitted_at, spo2_scale=scale, ceiling_of_care=adm.ceiling_of_care,
        score=current, last_observation_at=last_obs,
        overdue=acuity.is_overdue_at(overdue_at, now), latest=latest,
        devices=facts.devices, infusion=acuity.infusion_from(latest),
        alerts=facts.alerts,
        trend=tuple(trend), sort_key=acuity.sort_key(current, last_obs, band),
        overdue_at=overdue_at, computed_at=now,
        expires_at=_earliest(trend_until, facts.device_change, fresh_end, band_end),
        due=report, alert_band=band, facts=facts,
    )


def latest_of(conn: Conn, ids: Sequence[int],
              previous: Mapping[int, Mapping[str, Latest]] | None = None,
              ) -> dict[int, dict[str, Latest]]:
    """The latest reading per vital sign of each of `ids` (patients with none are absent).

    A reading that is the one in `previous` (`Latest.is_reading`: same instant, value and
    device) is that object again: a refresh changes one or two of a row's codes, and building the others anew
    (two frozen dataclasses each, `Latest` and its `Evidence`) was ~a tenth of the rebuild."""
    latest: dict[int, dict[str, Latest]] = {}
    before: Mapping[int, Mapping[str, Latest]] = previous or {}
    for raw_pid, code, measured, value, device in conn.execute(
            "SELECT patient_id, code, measured_at, value, device_id FROM latest_readings "
            "WHERE patient_id = ANY(%s)", (list(ids),)):
        pid = int(raw_pid)
        old = before.get(pid, {}).get(code)
        if old is None or not old.is_reading(measured, value, device):
            old = Latest(str(code), measured, float(value), str(device))
        latest.setdefault(pid, {})[str(code)] = old
    return latest


def refresh_latest(conn: Conn, rows: Sequence[WardRow], *, now: dt.datetime) -> list[WardRow]:
    """`rows` rebuilt at `now` with newly read latest readings and their own facts: what
    `load` gives when only readings changed since the rows were built (one indexed read of
    `latest_readings` instead of `load`'s four statements; tests/hub/test_ward_refresh.py
    holds the two equal). Every row must have `facts`."""
    latest = latest_of(conn, [r.patient_id for r in rows],
                       previous={r.patient_id: r.latest for r in rows})
    out = []
    for row in rows:
        if row.facts is None:
            raise ValueError(f"row of patient {row.patient_id} has no facts to rebuild from")
        out.append(build_row(row.facts, latest.get(row.patient_id, {}), now))
    return out


def load(
    conn: Conn, *, now: dt.datetime, beds: int, patient_ids: Sequence[int] | None = None
) -> WardView:
    """Ward rows for every admitted patient (or only `patient_ids`), sorted by acuity."""
    where, params = _ids_clause(patient_ids)
    admissions = conn.execute(
        "SELECT a.patient_id, p.nhs_number, p.given_name, p.family_name, p.date_of_birth, "
        "a.id, a.pathway, a.source, a.admitted_at, coalesce(c.spo2_scale, 1), "
        "coalesce(c.ceiling_of_care, 'full_escalation') "
        "FROM admissions a JOIN patients p ON p.id = a.patient_id "
        "LEFT JOIN care_plans c ON c.patient_id = a.patient_id "
        "WHERE a.status = 'admitted'" + where,
        params,
    ).fetchall()
    admitted = admitted_count(conn)
    ids = [int(r[0]) for r in admissions]
    if not ids:
        return WardView([], admitted, beds)

    latest, last_complete, stored, alerts, trends = _score_facts(conn, ids, now)
    # Current and future assignments: a future start or a current end is when the row's
    # device list changes with no event, so it bounds how long the row may be cached.
    devices: dict[int, list[DeviceHealth]] = {}
    kits: dict[int, list[tuple[str, str]]] = {}
    device_change: dict[int, dt.datetime] = {}
    for pid, dev_id, kind, online, battery, reported, lower, upper, active in conn.execute(
        "SELECT a.patient_id, d.id, d.kind, s.online, s.battery_pct, s.updated_at, "
        "lower(a.during), upper(a.during), d.active "
        "FROM device_assignments a JOIN devices d ON d.pk = a.device_pk "
        "LEFT JOIN device_status s ON s.device_id = d.id "
        "WHERE a.patient_id = ANY(%s) AND a.during && tstzrange(%s, NULL) ORDER BY d.id",
        (ids, now),
    ):
        current = lower is None or lower <= now
        change = upper if current else lower
        if change is not None:
            device_change[int(pid)] = min(change, device_change.get(int(pid), change))
        if current:
            devices.setdefault(int(pid), []).append(
                DeviceHealth(str(dev_id), str(kind), online, battery, reported))
            if active:
                kits.setdefault(int(pid), []).append((str(dev_id), str(kind)))

    rows = [build_row(RowFacts(
        admission=Admission(int(pid), str(nhs), given, family, dob, int(adm_id), pathway,
                            source, admitted_at, int(scale), ceiling),
        last_complete=last_complete.get(pid), stored=stored.get(pid),
        alerts=tuple(sorted(alerts.get(pid, ()), key=lambda a: (
            -SEVERITY_RANK.get(a.severity, 0), -a.raised_at.timestamp()))),
        trend=tuple(trends.get(pid, ())), devices=tuple(devices.get(pid, ())),
        kit=tuple(kits.get(pid, ())), device_change=device_change.get(pid),
    ), latest.get(pid, {}), now) for (pid, nhs, given, family, dob, adm_id, pathway, source,
                                       admitted_at, scale, ceiling) in admissions]
    rows.sort(key=lambda r: (r.sort_key, r.patient_id))
    return WardView(rows, admitted, beds)
