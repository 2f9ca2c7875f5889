"""The commissioner's report page (`/reports`): every measure with its definition and chart.

The figures come from `ward.hub.reports` (one function per measure; its docstring is the
definition printed here), the charts from `ward.hub.charts`. The same figures are served as
JSON and CSV by `ward.hub.routers.reports_api`. A measure the platform does not record yet is
shown as "not recorded yet", never as a number.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from ward.domain import nhs_number
from ward.hub import audit, charts, reports
from ward.hub.deps import DB, Now, SettingsDep
from ward.hub.routers.common import Reader
from ward.hub.routers.reports_api import Day, date_range, measures
from ward.hub.templating import render

router = APIRouter(include_in_schema=False)
OUTCOME_LABEL = {"usual_residence": "Home", "conveyed_ed": "To ED",
                 "admitted_hospital": "Admitted", "died": "Died", "transferred": "Transferred"}


def _figures(measure: reports.Measure, prefix: str) -> list[tuple[str, float]]:
    return [(name[len(prefix):], float(value)) for name, value in measure.rows
            if name.startswith(prefix) and isinstance(value, int | float)]


def _charts(by_key: dict[str, reports.Measure], lo: dt.date, hi: dt.date,
            settings: SettingsDep) -> dict[str, Markup]:
    tz = settings.tz
    occ = [(dt.datetime.combine(dt.date.fromisoformat(day), dt.time(12), tzinfo=tz)
            .astimezone(dt.UTC), pct) for day, pct in _figures(by_key["occupancy"], "day.")]
    out = {"occupancy": charts.line_chart(
        "Occupancy at midnight", occ,
        dt.datetime.combine(lo, dt.time(0), tzinfo=tz).astimezone(dt.UTC),
        dt.datetime.combine(hi, dt.time(0), tzinfo=tz).astimezone(dt.UTC), tz, unit=" %",
        target=80.0)}
    out["outcomes"] = charts.bar_chart("Discharges by outcome", [
        (OUTCOME_LABEL.get(k, k), v) for k, v in _figures(by_key["outcomes"], "outcome.")])
    ref = dict(by_key["referrals"].rows)
    out["referrals"] = charts.bar_chart("Referral decisions", [
        ("Accepted", float(ref["accepted"] or 0)), ("Declined", float(ref["declined"] or 0)),
        ("Awaiting", float(ref["awaiting_decision"] or 0))])
    ack = dict(by_key["time_to_acknowledge"].rows)
    bars = [(f"{sev.replace('_', '-')} {p}", float(v)) for sev in ("high", "medium", "low_medium", "low", "info")
            for p in ("p50", "p90")
            if isinstance(v := ack.get(f"{sev}.{p}_minutes"), int | float)]
    if bars:
        out["time_to_acknowledge"] = charts.bar_chart("Minutes to acknowledge", bars,
                                                      unit=" min")
    rates = _figures(by_key["alerts_per_patient_day"], "per_patient_day.")
    if rates:
        out["alerts_per_patient_day"] = charts.bar_chart(
            "Alerts per patient-day", [(k.replace("_", "-"), v) for k, v in rates])
    return out


@router.get("/reports")
def reports_page(request: Request, conn: DB, now: Now, settings: SettingsDep, user: Reader,
                 start: Day = None, end: Day = None) -> Response:
    lo, hi = date_range(start, end, now, settings)
    result = measures(conn, lo, hi, settings, now)
    audit.record(conn, user, "read", "report", now=now, entity_id="page")
    by_key = {m.key: m for m in result}
    return render(request, "reports.html", {
        "user": user, "now": now, "active": "reports", "beds": settings.ward_beds,
        "nhs": nhs_number.display, "request": request, "start": lo, "end": hi,
        "last_day": hi - dt.timedelta(days=1), "measures": result,
        "charts_by_key": _charts(by_key, lo, hi, settings)})
