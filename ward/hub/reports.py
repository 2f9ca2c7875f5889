"""Service reports: capacity and occupancy over time, and outcomes for a date range.

The measures are the ones virtual wards are judged on (NHS England operational framework;
see shared/clinical/VIRTUAL_WARD.md). Definitions, as printed on the report page:

* **Occupancy**: a midnight census — patients admitted at local midnight ending each day,
  over `ward_beds` (the national aim is consistently above 80 %).
* **Outcomes** count admissions *discharged* in [start, end) (local dates): the share who
  remained at their usual place of residence, conveyances to ED, admissions to hospital,
  deaths, transfers; length of stay from admission to discharge.
* **28-day readmission**: a discharge followed by a new virtual-ward admission of the same
  patient within 28 days (the platform sees its own admissions, not the hospital's).
* **Referrals** count referrals made in [start, end), by pathway and source, with decisions.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import statistics
import zoneinfo
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from ward.db import worklist
from ward.domain.patients import FOLLOW_UP_DEADLINE, FollowUpOutcome

Conn = psycopg.Connection[Any]
# NHS England's readmission measure looks 28 days after discharge.
READMISSION_WINDOW = dt.timedelta(days=28)
# Report ranges beyond two years are for a data warehouse, not a live hub.
MAX_RANGE_DAYS = 731


@dataclass(frozen=True, slots=True)
class OccupancyDay:
    day: dt.date
    occupied: int
    beds: int

    @property
    def occupancy_pct(self) -> float:
        return round(100.0 * self.occupied / self.beds, 1) if self.beds else 0.0


@dataclass(frozen=True, slots=True)
class Outcomes:
    start: dt.date
    end: dt.date
    discharged: int
    by_outcome: dict[str, int]
    remained_at_home_pct: float | None
    conveyed_ed: int
    admitted_hospital: int
    readmitted_28d: int
    readmission_28d_pct: float | None
    length_of_stay_mean_days: float | None
    length_of_stay_median_days: float | None
    referrals: int
    referrals_by_pathway: dict[str, int]
    referrals_by_source: dict[str, int]
    declined: int
    admitted_step_up: int
    admitted_step_down: int
    notes: list[str] = field(default_factory=list)


def _midnight(day: dt.date, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


def days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days)]


def occupancy(conn: Conn, start: dt.date, end: dt.date, *, beds: int,
              tz: zoneinfo.ZoneInfo) -> list[OccupancyDay]:
    """Midnight census for each day in [start, end)."""
    span = days(start, end)
    census = [_midnight(d + dt.timedelta(days=1), tz) for d in span]
    rows = conn.execute(
        "SELECT c.day, count(a.id) FROM unnest(%s::date[], %s::timestamptz[]) AS c(day, at) "
        "LEFT JOIN admissions a ON a.admitted_at IS NOT NULL AND a.admitted_at <= c.at "
        "AND (a.discharged_at IS NULL OR a.discharged_at > c.at) "
        "GROUP BY c.day ORDER BY c.day", (span, census)).fetchall()
    return [OccupancyDay(day, int(n), beds) for day, n in rows]


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def outcomes(conn: Conn, start: dt.date, end: dt.date, *, tz: zoneinfo.ZoneInfo) -> Outcomes:
    lo, hi = _midnight(start, tz), _midnight(end, tz)
    discharges = conn.execute(
        "SELECT a.outcome, a.admitted_at, a.discharged_at, EXISTS ("
        "  SELECT 1 FROM admissions b WHERE b.patient_id = a.patient_id AND b.id <> a.id "
        "  AND b.admitted_at > a.discharged_at AND b.admitted_at <= a.discharged_at + %s) "
        "FROM admissions a WHERE a.status = 'discharged' AND a.discharged_at >= %s "
        "AND a.discharged_at < %s", (READMISSION_WINDOW, lo, hi)).fetchall()
    by_outcome: dict[str, int] = dict.fromkeys(("usual_residence", "conveyed_ed", "admitted_hospital", "died", "transferred"), 0)
    stays: list[float] = []
    readmitted = 0
    for outcome, admitted_at, discharged_at, again in discharges:
        by_outcome[str(outcome)] = by_outcome.get(str(outcome), 0) + 1
        stays.append((discharged_at - admitted_at).total_seconds() / 86400)
        readmitted += bool(again)
    referrals = conn.execute(
        "SELECT pathway, source, status, admitted_at IS NOT NULL FROM admissions "
        "WHERE referred_at >= %s AND referred_at < %s", (lo, hi)).fetchall()
    by_pathway: dict[str, int] = {"step_up": 0, "step_down": 0}
    by_source: dict[str, int] = {}
    declined = step_up = step_down = 0
    for pathway, source, status, was_admitted in referrals:
        by_pathway[str(pathway)] = by_pathway.get(str(pathway), 0) + 1
        by_source[str(source)] = by_source.get(str(source), 0) + 1
        declined += status == "declined"
        if was_admitted:
            step_up += pathway == "step_up"
            step_down += pathway == "step_down"
    total = len(discharges)
    return Outcomes(
        start=start, end=end, discharged=total, by_outcome=by_outcome,
        remained_at_home_pct=_pct(by_outcome["usual_residence"], total),
        conveyed_ed=by_outcome["conveyed_ed"], admitted_hospital=by_outcome["admitted_hospital"],
        readmitted_28d=readmitted, readmission_28d_pct=_pct(readmitted, total),
        length_of_stay_mean_days=round(statistics.fmean(stays), 2) if stays else None,
        length_of_stay_median_days=round(statistics.median(stays), 2) if stays else None,
        referrals=len(referrals), referrals_by_pathway=by_pathway,
        referrals_by_source=dict(sorted(by_source.items())), declined=declined,
        admitted_step_up=step_up, admitted_step_down=step_down,
        notes=["28-day readmission counts new virtual-ward admissions only"],
    )


def occupancy_csv(rows: Sequence[OccupancyDay]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["date", "occupied", "beds", "occupancy_pct"])
    for row in rows:
        writer.writerow([row.day.isoformat(), row.occupied, row.beds, row.occupancy_pct])
    return out.getvalue()


def outcomes_csv(result: Outcomes) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["measure", "value"])
    for key, value in asdict(result).items():
        if key == "notes":
            continue
        if isinstance(value, dict):
            for sub, count in value.items():
                writer.writerow([f"{key}.{sub}", count])
        else:
            writer.writerow([key, "" if value is None else value])
    return out.getvalue()


# --- The commissioner's measures --------------------------------------------------------------
# Each measure is one function; its docstring is its definition and is printed on the report
# page beside the figure (`definition(fn)`), so the page can never say something else.
# A measure whose data the platform does not record yet says so (`Measure.recorded` False)
# rather than showing a number.

Value = float | int | str | None


@dataclass(frozen=True, slots=True)
class Measure:
    key: str
    title: str
    definition: str
    rows: list[tuple[str, Value]]
    recorded: bool = True


def definition(fn: Any) -> str:
    """The first paragraph of a measure function's docstring, on one line."""
    doc = (fn.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(doc.split()).replace("`", "")


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) / 3600, 2)


def _measure(fn: Any, key: str, title: str, rows: list[tuple[str, Value]],
             recorded: bool = True) -> Measure:
    return Measure(key, title, definition(fn), rows, recorded)


def referral_decisions(conn: Conn, start: dt.date, end: dt.date, *,
                       tz: zoneinfo.ZoneInfo) -> Measure:
    """Referrals made in the period, how many were accepted, declined or are still waiting,
    and the time from referral to decision (accept or decline; `decided_at − referred_at`),
    median and 90th percentile in hours, over the referrals decided so far."""
    lo, hi = _midnight(start, tz), _midnight(end, tz)
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE status IN ('admitted', 'discharged')), "
        "count(*) FILTER (WHERE status = 'declined'), "
        "count(*) FILTER (WHERE status = 'referred'), "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM decided_at - referred_at))"
        " FILTER (WHERE decided_at IS NOT NULL), "
        "percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM decided_at - referred_at))"
        " FILTER (WHERE decided_at IS NOT NULL) "
        "FROM admissions WHERE referred_at >= %s AND referred_at < %s", (lo, hi)).fetchone()
    assert row is not None  # noqa: S101 - an aggregate always returns one row
    return _measure(referral_decisions, "referrals", "Referrals and time to decision", [
        ("referrals", int(row[0])), ("accepted", int(row[1])), ("declined", int(row[2])),
        ("awaiting_decision", int(row[3])), ("decision_p50_hours", _hours(row[4])),
        ("decision_p90_hours", _hours(row[5]))])


def urgent_response_2h(conn: Conn, start: dt.date, end: dt.date, *,
                       tz: zoneinfo.ZoneInfo, now: dt.datetime) -> Measure:
    """Share of 2-hour urgent referrals seen within 2 hours of referral (the urgent community
    response standard: 70 %). Only a referral whose urgency is the 2-hour urgent response
    starts the clock (an `urgent_response` worklist task, due 2 hours after referral); it is
    met when a nurse completes it within 2 hours, missed when completed later, discharged
    without it, or still open past its 2 hours, pending while open within them; a declined
    referral's clock closes without a verdict and is not counted. Compliance is met / (met +
    missed), over the 2-hour referrals made in the period. Counts stored verdicts only (the
    domain's `urgent_response_met`), written first for clocks whose deadline passed by `now`
    (`ward.db.worklist.record_missed_urgent_clocks`), so each clock counts once."""
    lo, hi = _midnight(start, tz), _midnight(end, tz)
    worklist.record_missed_urgent_clocks(conn, now)
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE t.met IS TRUE), count(*) FILTER (WHERE t.met IS FALSE), "
        "count(*) FILTER (WHERE t.status = 'open' AND t.met IS NULL) "
        "FROM tasks t JOIN admissions a ON a.id = t.admission_id "
        "WHERE t.kind = 'urgent_response' AND a.urgency = 'two_hour' "
        "AND a.referred_at >= %s AND a.referred_at < %s", (lo, hi)).fetchone()
    assert row is not None  # noqa: S101 - an aggregate always returns one row
    met, missed, pending = int(row[0]), int(row[1]), int(row[2])
    return _measure(urgent_response_2h, "urgent_response_2h", "2-hour urgent response", [
        ("met", met), ("missed", missed), ("pending", pending),
        ("compliance_pct", _pct(met, met + missed))])


def discharge_outcomes(result: Outcomes) -> Measure:
    """Admissions discharged in the period: the share who remained at their usual place of
    residence (not conveyed to ED, admitted to hospital, transferred, or died), and each
    outcome's count."""
    return _measure(discharge_outcomes, "outcomes", "Remained at usual place of residence", [
        ("discharged", result.discharged), ("remained_at_home_pct", result.remained_at_home_pct),
        *((f"outcome.{k}", v) for k, v in result.by_outcome.items())])


def readmission_28d(result: Outcomes) -> Measure:
    """Discharges in the period followed by a new virtual-ward admission of the same patient
    within 28 days of discharge, as a share of discharges (the platform sees its own
    admissions, not the hospital's)."""
    return _measure(readmission_28d, "readmission_28d", "28-day readmission", [
        ("readmitted", result.readmitted_28d), ("readmission_pct", result.readmission_28d_pct)])


def length_of_stay(result: Outcomes) -> Measure:
    """Length of stay, admission to discharge in days, of admissions discharged in the
    period: mean and median."""
    return _measure(length_of_stay, "length_of_stay", "Length of stay", [
        ("mean_days", result.length_of_stay_mean_days),
        ("median_days", result.length_of_stay_median_days)])


def patient_days(conn: Conn, start: dt.date, end: dt.date, *, tz: zoneinfo.ZoneInfo,
                 now: dt.datetime) -> float:
    """Days spent on the ward within [start, end) summed over admissions (up to `now`)."""
    lo, hi = _midnight(start, tz), min(_midnight(end, tz), now)
    if hi <= lo:  # a period wholly in the future has no patient-days yet
        return 0.0
    row = conn.execute(
        "SELECT coalesce(sum(extract(epoch FROM least(coalesce(discharged_at, %s), %s) "
        "- greatest(admitted_at, %s))), 0) FROM admissions WHERE admitted_at IS NOT NULL "
        "AND admitted_at < %s AND coalesce(discharged_at, %s) > %s",
        (hi, hi, lo, hi, hi, lo)).fetchone()
    return float(row[0]) / 86400 if row else 0.0


def alerts_per_patient_day(conn: Conn, start: dt.date, end: dt.date, *,
                           tz: zoneinfo.ZoneInfo, now: dt.datetime) -> Measure:
    """Alerts raised in the period divided by patient-days on the ward in the period (each
    admission's days inside the period, open admissions counted up to now), overall and by
    severity. An alert is one raised alert row; re-evaluations of an open alert do not count
    again."""
    lo, hi = _midnight(start, tz), _midnight(end, tz)
    days_on_ward = patient_days(conn, start, end, tz=tz, now=now)
    counts = dict(conn.execute(
        "SELECT severity, count(*) FROM alerts WHERE raised_at >= %s AND raised_at < %s "
        "GROUP BY severity ORDER BY severity", (lo, hi)).fetchall())
    total = sum(int(v) for v in counts.values())

    def rate(n: int) -> float | None:
        return round(n / days_on_ward, 3) if days_on_ward > 0 else None

    return _measure(alerts_per_patient_day, "alerts_per_patient_day", "Alerts per patient-day", [
        ("patient_days", round(days_on_ward, 1)), ("alerts", total),
        ("alerts_per_patient_day", rate(total)),
        *((f"per_patient_day.{k}", rate(int(v))) for k, v in sorted(counts.items()))])


def time_to_acknowledge(conn: Conn, start: dt.date, end: dt.date, *,
                        tz: zoneinfo.ZoneInfo) -> Measure:
    """Minutes from an alert being raised to its first acknowledgement (the first
    `acknowledged` event in its log, else its `acknowledged_at`), median (p50) and 90th
    percentile (p90), by the alert's severity, over alerts raised in the period; alerts
    never acknowledged are counted apart, not as zero."""
    lo, hi = _midnight(start, tz), _midnight(end, tz)
    rows = conn.execute(
        "WITH acks AS (SELECT a.severity, extract(epoch FROM coalesce((SELECT min(e.at) "
        "  FROM alert_events e WHERE e.alert_id = a.id AND e.event = 'acknowledged'), "
        "  a.acknowledged_at) - a.raised_at) AS s "
        "  FROM alerts a WHERE a.raised_at >= %s AND a.raised_at < %s) "
        "SELECT severity, count(s), count(*) - count(s), "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY s), "
        "percentile_cont(0.9) WITHIN GROUP (ORDER BY s) "
        "FROM acks GROUP BY severity ORDER BY severity", (lo, hi)).fetchall()
    out: list[tuple[str, Value]] = []
    for severity, acked, unacked, p50, p90 in rows:
        out += [(f"{severity}.acknowledged", int(acked)),
                (f"{severity}.not_acknowledged", int(unacked)),
                (f"{severity}.p50_minutes", None if p50 is None else round(float(p50) / 60, 1)),
                (f"{severity}.p90_minutes", None if p90 is None else round(float(p90) / 60, 1))]
    return _measure(time_to_acknowledge, "time_to_acknowledge", "Time to acknowledge", out)


def escalations(conn: Conn, start: dt.date, end: dt.date, *, tz: zoneinfo.ZoneInfo) -> Measure:
    """Escalations in the period: `escalated` events of the alert lifecycle (an alert not
    acknowledged in time moved up a tier), their count, the alerts escalated at least once,
    and by the alert's severity."""
    lo, hi = _midnight(start, tz), _midnight(end, tz)
    rows = conn.execute(
        "SELECT a.severity, count(*), count(DISTINCT a.id) FROM alert_events e "
        "JOIN alerts a ON a.id = e.alert_id WHERE e.event = 'escalated' AND e.at >= %s "
        "AND e.at < %s GROUP BY a.severity ORDER BY a.severity", (lo, hi)).fetchall()
    return _measure(escalations, "escalations", "Escalations", [
        ("escalations", sum(int(r[1]) for r in rows)),
        ("alerts_escalated", sum(int(r[2]) for r in rows)),
        *((f"escalations.{r[0]}", int(r[1])) for r in rows)])


def follow_up_within_2_days(conn: Conn, start: dt.date, end: dt.date, *,
                            tz: zoneinfo.ZoneInfo) -> Measure:
    """Share of discharges in the period whose follow-up call was made within 2 days of
    discharge. Every discharge puts one follow-up-call task on the worklist; it counts as
    made when a nurse completed it with the outcome `reached` (spoke to the patient or
    carer) by discharge + 48 h. `not_reached`, later calls and calls never made do not."""
    lo, hi = _midnight(start, tz), _midnight(end, tz)
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE EXISTS ("
        "  SELECT 1 FROM tasks t WHERE t.admission_id = a.id AND t.kind = 'follow_up_call'"
        "  AND t.status = 'done' AND t.outcome = %s AND t.closed_at <= a.discharged_at + %s)) "
        "FROM admissions a WHERE a.discharged_at >= %s AND a.discharged_at < %s",
        (FollowUpOutcome.REACHED.value, FOLLOW_UP_DEADLINE, lo, hi)).fetchone()
    assert row is not None  # noqa: S101 - an aggregate always returns one row
    discharges, done = int(row[0]), int(row[1])
    return _measure(follow_up_within_2_days, "follow_up_2d", "Follow-up calls within 2 days", [
        ("discharges", discharges), ("done_within_2_days", done),
        ("done_within_2_days_pct", _pct(done, discharges))])


def occupancy_measure(rows: Sequence[OccupancyDay]) -> Measure:
    """Midnight census: patients admitted at local midnight ending each day, over the ward's
    beds; shown per day and as the period's mean (the national aim is above 80 %)."""
    mean = round(statistics.fmean(r.occupancy_pct for r in rows), 1) if rows else None
    return _measure(occupancy_measure, "occupancy", "Occupancy", [
        ("mean_occupancy_pct", mean), ("beds", rows[-1].beds if rows else None),
        *((f"day.{r.day.isoformat()}", r.occupancy_pct) for r in rows)])


def commissioner(conn: Conn, start: dt.date, end: dt.date, *, beds: int,
                 tz: zoneinfo.ZoneInfo, now: dt.datetime) -> list[Measure]:
    """Every measure, in the order the report page shows them."""
    result = outcomes(conn, start, end, tz=tz)
    return [
        occupancy_measure(occupancy(conn, start, end, beds=beds, tz=tz)),
        referral_decisions(conn, start, end, tz=tz),
        urgent_response_2h(conn, start, end, tz=tz, now=now),
        discharge_outcomes(result), readmission_28d(result), length_of_stay(result),
        alerts_per_patient_day(conn, start, end, tz=tz, now=now),
        time_to_acknowledge(conn, start, end, tz=tz),
        escalations(conn, start, end, tz=tz),
        follow_up_within_2_days(conn, start, end, tz=tz),
    ]


def measures_csv(measures: Sequence[Measure], start: dt.date, end: dt.date) -> str:
    """One row per figure: measure, figure, value (empty when not recorded), definition."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["start", "end", "measure", "figure", "value", "recorded", "definition"])
    for m in measures:
        for name, value in m.rows:
            writer.writerow([start.isoformat(), end.isoformat(), m.key, name,
                             "" if value is None else value, "yes" if m.recorded else "no",
                             m.definition])
    return out.getvalue()
