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
