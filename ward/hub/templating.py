"""Jinja2 set-up for the dashboard: templates, and filters that show UTC instants in London.

Instants are stored and passed around in UTC; only here, at display, are they converted to
`settings.display_timezone` (Europe/London by default, so BST is handled by zoneinfo).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.responses import Response

from ward.domain.vitals import (
    CATALOGUE,
    VitalCode,
    display_name,
    display_text,
    display_unit,
)
from ward.hub import acuity, charts, wardrow_html
from ward.settings import Settings

HERE = Path(__file__).parent
# Referral sources as clinicians write them (the stored values are identifiers).
SOURCE_LABEL = {"gp": "GP", "ambulance": "Ambulance", "111": "NHS 111",
                "urgent_community_response": "Urgent community response", "ed": "ED",
                "hospital_ward": "Hospital ward", "self_carer": "Self / carer"}


def _vital_unit(code: str) -> str:
    """The display unit of a vital code's canonical unit ("temperature" → "°C")."""
    try:
        return display_unit(CATALOGUE[VitalCode(code)].unit)
    except ValueError:
        return ""


def _ago_text(seconds: int) -> str:
    if seconds < 0:
        return "just now"
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 90 * 60:
        return f"{seconds // 60} min ago"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min ago"
    return f"{seconds // 86400} days ago"


def _ago(when: dt.datetime | None, now: dt.datetime) -> Markup | str:
    """The age as "16 min ago", in a ``<time>`` whose ``data-age`` (seconds at render) lets static/hub.js
    keep counting between updates (the same wording, computed in the browser)."""
    if when is None:
        return "never"
    seconds = int((now - when).total_seconds())
    return Markup('<time class="ago" datetime="{}" data-age="{}">{}</time>').format(
        when.isoformat(), seconds, _ago_text(seconds))


def build(settings: Settings) -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    # The templates ship with the code and never change under a running hub: checking each
    # file's mtime on every include (one per ward row) was ~10 % of rendering the rows.
    env.auto_reload = False
    tz = settings.tz

    def local(when: dt.datetime | None, fmt: str = "%d %b %H:%M") -> str:
        return "—" if when is None else when.astimezone(tz).strftime(fmt)

    env.filters["local"] = local
    env.filters["ago"] = _ago
    env.filters["age"] = wardrow_html.age  # the ward row's own, one rule for both
    env.globals["is_stale"] = acuity.is_stale
    env.filters["unit"] = display_unit
    env.filters["vital_name"] = display_name
    env.filters["vital_text"] = display_text
    env.filters["vital_unit"] = _vital_unit
    env.filters["source"] = lambda value: SOURCE_LABEL.get(str(value), str(value))
    env.globals["risk_label"] = acuity.RISK_LABEL
    env.globals["charts"] = charts
    env.globals["tz_name"] = settings.display_timezone
    return templates


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200
           ) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=status_code)
