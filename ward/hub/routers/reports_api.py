"""Reports as JSON and CSV: occupancy over time and outcomes for a date range."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel

from ward.hub import audit, reports
from ward.hub.deps import DB, Now, SettingsDep
from ward.hub.problems import Invalid
from ward.hub.routers.common import Reader
from ward.settings import Settings

router = APIRouter(prefix="/api/reports", tags=["reports"])
# Dates are local calendar days (Europe/London by default); year 1–9998 keeps +1 day valid.
Day = Annotated[dt.date | None, Query(ge=dt.date(2000, 1, 1), le=dt.date(9998, 12, 31))]


class OccupancyDayOut(BaseModel):
    date: dt.date
    occupied: int
    beds: int
    occupancy_pct: float


class OutcomesOut(BaseModel):
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
    notes: list[str]


def date_range(start: dt.date | None, end: dt.date | None, now: dt.datetime,
               settings: Settings) -> tuple[dt.date, dt.date]:
    """[start, end) in local days; default the last 30 days up to and including today."""
    today = now.astimezone(settings.tz).date()
    end_day = end or today + dt.timedelta(days=1)
    start_day = start or end_day - dt.timedelta(days=30)
    if start_day >= end_day:
        raise Invalid("start must be before end")
    if (end_day - start_day).days > reports.MAX_RANGE_DAYS:
        raise Invalid(f"a report covers at most {reports.MAX_RANGE_DAYS} days")
    return start_day, end_day


def occupancy_rows(conn: Any, start: dt.date, end: dt.date, settings: Settings
                   ) -> list[reports.OccupancyDay]:
    return reports.occupancy(conn, start, end, beds=settings.ward_beds, tz=settings.tz)


@router.get("/occupancy", response_model=list[OccupancyDayOut])
def occupancy(conn: DB, now: Now, settings: SettingsDep, user: Reader, start: Day = None,
              end: Day = None) -> list[OccupancyDayOut]:
    """Midnight census per day in [start, end) against the ward's beds."""
    lo, hi = date_range(start, end, now, settings)
    audit.record(conn, user, "read", "report", now=now, entity_id="occupancy")
    return [OccupancyDayOut(date=r.day, occupied=r.occupied, beds=r.beds,
                            occupancy_pct=r.occupancy_pct)
            for r in occupancy_rows(conn, lo, hi, settings)]


@router.get("/occupancy.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
def occupancy_csv(conn: DB, now: Now, settings: SettingsDep, user: Reader, start: Day = None,
                  end: Day = None) -> Response:
    lo, hi = date_range(start, end, now, settings)
    audit.record(conn, user, "export", "report", now=now, entity_id="occupancy")
    return Response(reports.occupancy_csv(occupancy_rows(conn, lo, hi, settings)),
                    media_type="text/csv", headers={
                        "Content-Disposition": f'attachment; filename="occupancy-{lo}-{hi}.csv"'})


@router.get("/outcomes", response_model=OutcomesOut)
def outcomes(conn: DB, now: Now, settings: SettingsDep, user: Reader, start: Day = None,
             end: Day = None) -> OutcomesOut:
    """Outcomes of discharges and referrals in [start, end)."""
    lo, hi = date_range(start, end, now, settings)
    audit.record(conn, user, "read", "report", now=now, entity_id="outcomes")
    result = reports.outcomes(conn, lo, hi, tz=settings.tz)
    return OutcomesOut(**dataclasses.asdict(result))


@router.get("/outcomes.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
def outcomes_csv(conn: DB, now: Now, settings: SettingsDep, user: Reader, start: Day = None,
                 end: Day = None) -> Response:
    lo, hi = date_range(start, end, now, settings)
    audit.record(conn, user, "export", "report", now=now, entity_id="outcomes")
    return Response(reports.outcomes_csv(reports.outcomes(conn, lo, hi, tz=settings.tz)),
                    media_type="text/csv", headers={
                        "Content-Disposition": f'attachment; filename="outcomes-{lo}-{hi}.csv"'})


class MeasureOut(BaseModel):
    key: str
    title: str
    definition: str
    recorded: bool
    figures: dict[str, float | int | str | None]


def measures(conn: Any, start: dt.date, end: dt.date, settings: Settings, now: dt.datetime
             ) -> list[reports.Measure]:
    return reports.commissioner(conn, start, end, beds=settings.ward_beds, tz=settings.tz,
                                now=now)


@router.get("/measures", response_model=list[MeasureOut])
def measures_json(conn: DB, now: Now, settings: SettingsDep, user: Reader, start: Day = None,
                  end: Day = None) -> list[MeasureOut]:
    """Every commissioner's measure for [start, end), each with its definition; a measure
    the platform does not record yet has `recorded: false` and null figures."""
    lo, hi = date_range(start, end, now, settings)
    audit.record(conn, user, "read", "report", now=now, entity_id="measures")
    return [MeasureOut(key=m.key, title=m.title, definition=m.definition, recorded=m.recorded,
                       figures=dict(m.rows)) for m in measures(conn, lo, hi, settings, now)]


@router.get("/measures.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
def measures_csv(conn: DB, now: Now, settings: SettingsDep, user: Reader, start: Day = None,
                 end: Day = None) -> Response:
    lo, hi = date_range(start, end, now, settings)
    audit.record(conn, user, "export", "report", now=now, entity_id="measures")
    body = reports.measures_csv(measures(conn, lo, hi, settings, now), lo, hi)
    return Response(body, media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="measures-{lo}-{hi}.csv"'})
