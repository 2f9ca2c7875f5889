"""The evidence drawn over a vital-sign chart: the patient's own baseline band, the readings
that findings cited, and when each finding was raised and cleared.

A nurse reading an amber "drift from own baseline" finding needs to see what the method saw:
the band it considers normal for *this* patient (the learned mean ± the control limit, in the
SD the z-score divides by) and the readings that left it. Every other finding (NEWS2 band,
single parameter 3, SpO2 below target, threshold) is traced the same way: its cited readings
ringed on the chart of their sign, its active stretch a bar above the plot, raise and clear
marked by vertical lines. Colour is never the only carrier: every mark has a ``<title>`` (the
browser's tooltip, read out by screen readers) and the chart's caption says the same in
words. Times in the display zone (Europe/London).

Data comes from :mod:`ward.hub.queries.evidence`; this module only draws.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from ward.hub.queries.evidence import BaselineOut, FindingTraceOut

SEVERITY_RANK = {"info": 0, "low": 1, "low_medium": 2, "medium": 3, "high": 4}
SEVERITY_NAME = {"info": "info", "low": "amber", "low_medium": "low-medium",
                 "medium": "medium", "high": "high"}
#: Finding lanes above the plot: one per finding drawn, at most this many (the caption lists
#: every finding; a chart with more than four active findings is read from the list).
MAX_LANES = 4
LANE_H = 7


@dataclass(frozen=True, slots=True)
class Frame:
    """Where the plot sits in the drawing and how times and values map onto it."""

    left: float
    right: float  # x of the plot's right edge
    top: float
    bottom: float  # y of the plot's bottom edge
    lo: float
    hi: float
    start: dt.datetime
    end: dt.datetime
    x: Callable[[dt.datetime], float]
    y: Callable[[float], float]


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def local(at: dt.datetime, tz: zoneinfo.ZoneInfo) -> str:
    return f"{at.astimezone(tz):%a %d %b %H:%M}"


def _clock(at: dt.datetime, tz: zoneinfo.ZoneInfo) -> str:
    return f"{at.astimezone(tz):%H:%M}"


def lanes_needed(findings: Sequence[FindingTraceOut]) -> int:
    return min(len(findings), MAX_LANES)


def baseline_band(band: BaselineOut, f: Frame, unit: str) -> list[str]:
    """The band the trend method considers normal for this patient, its mean, and the span
    of the readings it was learned from."""
    high, low = min(band.high, f.hi), max(band.low, f.lo)
    if high <= low:
        return []
    y1, y2 = f.y(high), f.y(low)
    width = f.right - f.left
    limit = f"±{_fmt(band.z_limit)} SD of {_fmt(band.sd_used)}"
    title = (f"Own baseline {_fmt(band.mean)} {unit}: normal band {_fmt(band.low)}–"
             f"{_fmt(band.high)} ({limit})"
             + (f", learned from {band.n} readings" if band.n else ""))
    parts = [f'<g class="baseline" data-code="{escape(band.code)}">'
             f'<rect x="{f.left}" y="{y1:.1f}" width="{width:.1f}" height="{y2 - y1:.1f}" '
             f'class="baseline-band"><title>{escape(title)}</title></rect>']
    if f.lo <= band.mean <= f.hi:
        parts.append(f'<line x1="{f.left}" x2="{f.right:.1f}" y1="{f.y(band.mean):.1f}" '
                     f'y2="{f.y(band.mean):.1f}" class="baseline-mean"/>')
    # The label sits just above the band's upper edge (inside it when that is the plot's
    # top), at the left: recent readings, the ones a nurse looks at, are on the right.
    label_y = y1 - 3 if y1 - 3 >= f.top + 10 else y1 + 11
    parts.append(f'<text x="{f.left + 3}" y="{label_y:.1f}" class="baseline-label">'
                 f'own baseline {_fmt(band.mean)} (normal {_fmt(band.low)}–'
                 f'{_fmt(band.high)})</text>')
    if band.learned_from is not None and band.learned_to is not None \
            and band.learned_to >= f.start and band.learned_from <= f.end:
        x1 = f.x(max(band.learned_from, f.start))
        x2 = max(f.x(min(band.learned_to, f.end)), x1 + 2)
        parts.append(f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{f.bottom - 2:.1f}" '
                     f'y2="{f.bottom - 2:.1f}" class="baseline-learned"><title>baseline '
                     f"learned from these readings</title></line>")
    parts.append("</g>")
    return parts


def finding_marks(code: str, findings: Sequence[FindingTraceOut], f: Frame, *, unit: str,
                  tz: zoneinfo.ZoneInfo, now: dt.datetime) -> list[str]:
    """Each finding's active stretch (a lane above the plot), its raise and clear lines, and
    the readings of ``code`` it cited, ringed in its severity's colour."""
    parts: list[str] = []
    for lane, finding in enumerate(findings[:MAX_LANES]):
        y_lane = f.top - (lane + 1) * LANE_H + 1
        sev = escape(finding.severity)
        for span in finding.spans:
            end = span.end or now
            if span.start > f.end or end < f.start:
                continue
            x1, x2 = f.x(max(span.start, f.start)), f.x(min(end, f.end))
            state = (f"{span.end_reason or 'cleared'} {local(span.end, tz)}"
                     if span.end else "still active")
            title = (f"{finding.name} ({SEVERITY_NAME.get(finding.severity, finding.severity)})"
                     f": raised {local(span.start, tz)}, {state} — {finding.summary}")
            parts.append(
                f'<g class="finding sev-{sev}" data-finding="{escape(finding.kind)}">'
                f'<rect x="{x1:.1f}" y="{y_lane:.1f}" width="{max(x2 - x1, 2):.1f}" '
                f'height="{LANE_H - 2}" class="finding-span"><title>{escape(title)}</title>'
                "</rect>")
            if span.start >= f.start:
                parts.append(f'<line x1="{x1:.1f}" x2="{x1:.1f}" y1="{y_lane:.1f}" '
                             f'y2="{f.bottom:.1f}" class="finding-raised"><title>'
                             f"{escape(finding.name)} raised {escape(local(span.start, tz))}"
                             "</title></line>")
            if span.end is not None and span.end <= f.end:
                parts.append(f'<line x1="{x2:.1f}" x2="{x2:.1f}" y1="{y_lane:.1f}" '
                             f'y2="{f.bottom:.1f}" class="finding-cleared"><title>'
                             f"{escape(finding.name)} {escape(span.end_reason or 'cleared')} "
                             f"{escape(local(span.end, tz))}</title></line>")
            parts.append("</g>")
    # One ring per reading, in the colour of the most severe finding citing it.
    cited: dict[tuple[dt.datetime, float], list[FindingTraceOut]] = {}
    for finding in findings:
        for r in finding.readings:
            if r.code == code and f.start <= r.measured_at <= f.end:
                cited.setdefault((r.measured_at, r.value), []).append(finding)
    for (at, value), by in sorted(cited.items(), key=lambda item: item[0]):
        top = max(by, key=lambda g: SEVERITY_RANK.get(g.severity, 0))
        names = "; ".join(dict.fromkeys(
            f"{g.name} (raised {_clock(g.first_at, tz)})" for g in by))
        kinds = " ".join(dict.fromkeys(g.kind for g in by))
        parts.append(
            f'<circle cx="{f.x(at):.1f}" cy="{f.y(min(max(value, f.lo), f.hi)):.1f}" r="4.5" '
            f'class="evidence sev-{escape(top.severity)}" data-findings="{escape(kinds)}">'
            f"<title>{escape(_fmt(value))} {escape(unit)} at {escape(local(at, tz))} — "
            f"cited by {escape(names)}</title></circle>")
    return parts


def caption(code: str, title: str, unit: str, band: BaselineOut | None, *,
            findings: Sequence[FindingTraceOut], tz: zoneinfo.ZoneInfo) -> Markup:
    """The chart's evidence in words (a ``<figcaption>``): never colour alone."""
    if band is None and not findings:
        return Markup("")
    items: list[str] = []
    if band is not None:
        learned = ""
        if band.learned_from is not None and band.learned_to is not None:
            same_day = band.learned_from.astimezone(tz).date() == \
                band.learned_to.astimezone(tz).date()
            to = _clock(band.learned_to, tz) if same_day else local(band.learned_to, tz)
            learned = f" learned {local(band.learned_from, tz)}–{to} (bar under the plot)"
        now_part = (f"; level {_fmt(band.level)} {unit}, {band.z:+.1f} SD"
                    if band.level is not None and band.z is not None else "")
        items.append(f'<li class="ev-baseline">Own baseline {_fmt(band.mean)} {escape(unit)}'
                     f"{escape(learned)}{' from ' + str(band.n) + ' readings' if band.n else ''}"
                     f": normal band {_fmt(band.low)}–{_fmt(band.high)} "
                     f"(±{_fmt(band.z_limit)} SD){escape(now_part)}"
                     f"{' — flagged' if band.flagged else ''}</li>")
    for finding in findings:
        spans = ", ".join(
            f"raised {local(s.start, tz)}"
            + (f", {s.end_reason or 'cleared'} {local(s.end, tz)}" if s.end else ", active")
            for s in finding.spans)
        n = sum(1 for r in finding.readings if r.code == code)
        items.append(f'<li class="ev-finding sev-{escape(finding.severity)}" '
                     f'data-finding="{escape(finding.kind)}"><strong>{escape(finding.name)}'
                     f"</strong> ({escape(SEVERITY_NAME.get(finding.severity, finding.severity))}"
                     f"): {escape(spans)}; {n} {escape(title)} reading{'s' if n != 1 else ''} "
                     f"cited</li>")
    return Markup(  # noqa: S704 - every interpolated text is escaped or a number
        f'<figcaption class="evidence-caption"><ul>{"".join(items)}</ul></figcaption>')
