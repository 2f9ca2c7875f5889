"""Small server-rendered SVG charts: no JavaScript, no CDN, nothing to vendor.

Vital-sign charts shade the NEWS2 bands behind the line the way the RCP observation chart
does (yellow scores 1, orange 2, red 3), taken from `alerting.news2`'s band tables so the
shading can never disagree with the score. Colours come with text: every chart has a title
and axis labels, and the band a value falls in is also printed in the page's tables.
Styling is by presentation attributes and CSS classes only (the CSP forbids inline styles).
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Sequence
from decimal import Decimal

from markupsafe import Markup, escape

from alerting.news2 import BANDS, SPO2_BANDS, Band, Parameter
from ward.hub import chart_overlays
from ward.hub.queries.evidence import BaselineOut, FindingTraceOut

# RCP chart tints for 1, 2 and 3 points (lightened so the line stays readable).
BAND_FILL = {1: "#fff3b0", 2: "#ffd8a8", 3: "#ffc9c9"}
# Axis ranges per vital: wide enough for the chart's extreme bands, tight enough to read.
AXIS: dict[str, tuple[float, float]] = {
    "spo2": (80, 100), "pulse": (30, 160), "resp_rate": (4, 36), "temperature": (34, 41),
    "systolic_bp": (70, 230), "diastolic_bp": (40, 130), "o2_flow": (0, 15),
    "infusion_volume_infused": (0, 500), "infusion_volume_remaining": (0, 500),
    "infusion_rate": (0, 200),
}
PARAMETER_OF = {"pulse": Parameter.PULSE, "resp_rate": Parameter.RESP_RATE,
                "temperature": Parameter.TEMPERATURE, "systolic_bp": Parameter.SYSTOLIC_BP}


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def bands_for(code: str, *, spo2_scale: int = 1, on_oxygen: bool = False) -> tuple[Band, ...]:
    if code == "spo2":
        return SPO2_BANDS[(spo2_scale, on_oxygen)]
    parameter = PARAMETER_OF.get(code)
    return BANDS[parameter] if parameter is not None else ()


def _band_edges(band: Band, resolution: Decimal) -> tuple[float | None, float | None]:
    # Bands are inclusive at chart resolution: 91–100 covers 90.5 ≤ x < 100.5 on a line.
    half = float(resolution) / 2
    low = None if band.low is None else float(band.low) - half
    high = None if band.high is None else float(band.high) + half
    return low, high


def vital_chart(
    code: str, title: str, unit: str, points: Sequence[tuple[dt.datetime, float]], *,
    start: dt.datetime, end: dt.datetime, tz: zoneinfo.ZoneInfo, spo2_scale: int = 1,
    width: int = 640, height: int = 170, axis: tuple[float, float] | None = None,
    baseline: BaselineOut | None = None, findings: Sequence[FindingTraceOut] = (),
    now: dt.datetime | None = None,
) -> Markup:
    """A line chart of one vital with its NEWS2 bands shaded; with ``baseline`` and
    ``findings``, the evidence of the patient's findings over it (:mod:`chart_overlays`)."""
    lanes = chart_overlays.lanes_needed(findings)
    left, right, top, bottom = 44, 8, 22 + lanes * chart_overlays.LANE_H, 22
    height += lanes * chart_overlays.LANE_H
    lo, hi = axis or AXIS.get(code, (min((v for _, v in points), default=0.0),
                                     max((v for _, v in points), default=1.0) or 1.0))
    if points:
        lo = min(lo, *(v for _, v in points))
        hi = max(hi, *(v for _, v in points))
    span_t = max((end - start).total_seconds(), 1.0)
    span_v = max(hi - lo, 1e-9)
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: dt.datetime) -> float:
        return left + plot_w * (t - start).total_seconds() / span_t

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / span_v)

    frame = chart_overlays.Frame(left, width - right, top, height - bottom, lo, hi, start,
                                 end, x, y)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)} chart" data-code="{escape(code)}">',
             f'<title>{escape(title)} ({escape(unit)})</title>',
             f'<text x="{left}" y="14" class="chart-title">{escape(title)} '
             f'<tspan class="muted">{escape(unit)}</tspan></text>']
    resolution = Decimal("0.1") if code == "temperature" else Decimal(1)
    for band in bands_for(code, spo2_scale=spo2_scale):
        if band.points == 0:
            continue
        b_lo, b_hi = _band_edges(band, resolution)
        y1 = y(min(hi, b_hi if b_hi is not None else hi))
        y2 = y(max(lo, b_lo if b_lo is not None else lo))
        if y2 - y1 > 0:
            parts.append(f'<rect x="{left}" y="{y1:.1f}" width="{plot_w}" height="{y2 - y1:.1f}" '
                         f'fill="{BAND_FILL[band.points]}"><title>scores {band.points}</title>'
                         "</rect>")
    if baseline is not None:
        parts += chart_overlays.baseline_band(baseline, frame, unit)
    for tick in _value_ticks(lo, hi):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}" class="grid"/>'
                     f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" class="tick" '
                     f'text-anchor="end">{_fmt(tick)}</text>')
    for when, label in _time_ticks(start, end, tz):
        parts.append(f'<line x1="{x(when):.1f}" x2="{x(when):.1f}" y1="{top}" '
                     f'y2="{height - bottom}" class="grid"/>'
                     f'<text x="{x(when):.1f}" y="{height - 6}" class="tick" '
                     f'text-anchor="middle">{escape(label)}</text>')
    if points:
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        parts.append(f'<polyline points="{path}" class="line"/>')
        last_t, last_v = points[-1]
        parts.append(f'<circle cx="{x(last_t):.1f}" cy="{y(last_v):.1f}" r="3.5" class="dot">'
                     f"<title>{_fmt(last_v)} {escape(unit)} at "
                     f"{last_t.astimezone(tz):%d %b %H:%M}</title></circle>")
    else:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" class="muted" '
                     'text-anchor="middle">no readings in this period</text>')
    if findings:
        parts += chart_overlays.finding_marks(code, findings, frame, unit=unit, tz=tz,
                                               now=now or end)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def _value_ticks(lo: float, hi: float) -> list[float]:
    span = hi - lo
    step = next((s for s in (0.5, 1, 2, 5, 10, 20, 25, 50, 100, 200) if span / s <= 6), 500)
    first = (int(lo / step) + (1 if lo % step else 0)) * step
    ticks, value = [], float(first)
    while value <= hi:
        ticks.append(value)
        value += step
    return ticks


def _time_ticks(start: dt.datetime, end: dt.datetime, tz: zoneinfo.ZoneInfo
                ) -> list[tuple[dt.datetime, str]]:
    hours = (end - start).total_seconds() / 3600
    step_h = next((s for s in (1, 3, 6, 12, 24, 48, 168) if hours / s <= 8), 336)
    local = start.astimezone(tz).replace(minute=0, second=0, microsecond=0)
    local = local.replace(hour=local.hour - local.hour % step_h) if step_h < 24 else \
        local.replace(hour=0)
    ticks = []
    while local <= end.astimezone(tz):
        when = local.astimezone(dt.UTC)
        if when >= start:
            label = f"{local:%a %d}" if step_h >= 24 or local.hour == 0 else f"{local:%H:%M}"
            ticks.append((when, label))
        local = (local + dt.timedelta(hours=step_h)).astimezone(tz)
    return ticks


def news2_class(total: int | None) -> str:
    """CSS class of a NEWS2 total (RCP Chart 2 colours: 0–4, 5–6, 7+)."""
    if total is None:
        return "n-none"
    return "n-high" if total >= 7 else "n-medium" if total >= 5 else "n-low"


@functools.lru_cache(maxsize=64)
def _spark_head(width: int, height: int, top_v: int) -> str:
    """The sparkline's opening and its two bands (the 5 and 7 thresholds): fixed per size."""
    y7 = 2 + (height - 4) * (1 - 7 / top_v)
    y5 = 2 + (height - 4) * (1 - 5 / top_v)
    return (f'<svg class="spark" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="NEWS2 over 24 hours">'
            f'<rect x="0" y="0" width="{width}" height="{y7:.1f}" fill="#ffe3e3"/>'
            f'<rect x="0" y="{y7:.1f}" width="{width}" height="{y5 - y7:.1f}" '
            'fill="#fff0db"/>')


def sparkline(points: Sequence[tuple[dt.datetime, int]], start: dt.datetime, end: dt.datetime,
              *, width: int = 120, height: int = 30) -> Markup:
    """NEWS2 totals over a window, with the 5 and 7 thresholds marked.

    A ward row draws one on every fetch (~4 µs a point through nested x()/y() calls, ~10 % of
    the hub's CPU under benchmarks/bench_latency.py --fetch html); the same arithmetic is
    inlined here, each total's y written once, the fixed head kept per size."""
    top_v = max(10, max((v for _, v in points), default=0))
    span_t = max((end - start).total_seconds(), 1.0)
    parts = [_spark_head(width, height, top_v)]
    if points:
        w4, h4 = width - 4, height - 4
        ys: dict[int, str] = {}
        coords = []
        for t, v in points:
            f = (t - start).total_seconds() / span_t
            x = 2 + w4 * (0.0 if f < 0.0 else 1.0 if f > 1.0 else f)
            y = ys.get(v)
            if y is None:
                y = ys[v] = f"{2 + h4 * (1 - v / top_v):.1f}"
            coords.append(f"{x:.1f},{y}")
        parts.append(f'<polyline points="{" ".join(coords)}" class="spark-line"/>')
        v_last = points[-1][1]
        parts.append(f'<circle cx="{coords[-1].partition(",")[0]}" cy="{ys[v_last]}" r="2.5" '
                     f'class="spark-dot {news2_class(v_last)}"/>')
    parts.append(f"<title>NEWS2, last 24 h: {', '.join(str(v) for _, v in points[-12:])}"
                 "</title></svg>")
    return Markup("".join(parts))  # noqa: S704 - only numbers are interpolated


# Bar charts are drawn horizontally at the size they are shown (about 360 px wide in a
# report card), so their 13-px text stays at least 11 px on screen even when a narrow card
# scales the drawing down (the old vertical chart's 10-px ticks shrank to 6 px there).
BAR_FONT = 13
BAR_ROW = 26  # px per bar: the 13-px label plus room to breathe
# An upper bound of one character's width at 13 px in the system sans-serif fonts (average
# ≈ 7 px, capitals and digits ≈ 8): label and value columns are sized from it, so the longest
# label and the longest value always fit inside the drawing.
BAR_CHAR_W = 8.5


def _text_w(text: str) -> float:
    return len(text) * BAR_CHAR_W


def _bar_fmt(value: float) -> str:
    # Rates below 1 (alerts per patient-day) keep two significant figures: 0.027, not 0.
    return f"{value:.2g}" if 0 < abs(value) < 1 else _fmt(value)


def bar_chart(title: str, bars: Sequence[tuple[str, float]], *, width: int = 360,
              unit: str = "") -> Markup:
    """Horizontal bars, label left, value printed right of each bar (readable without
    colour). The label column fits the longest label, and the longest bar ends short of the
    edge by the longest value's width, so no text leaves the drawing."""
    top = 30
    height = top + BAR_ROW * max(len(bars), 1) + 6
    top_v = max((v for _, v in bars), default=1.0) or 1.0
    label_w = max((_text_w(label) for label, _ in bars), default=0.0) + 12
    value_w = max((_text_w(f"{_bar_fmt(v)}{unit}") for _, v in bars), default=0.0) + 10
    width = max(width, int(label_w + value_w + 80))  # at least 80 px of bar
    plot_w = width - label_w - value_w
    parts = [f'<svg class="chart bars" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(title)}">'
             f"<title>{escape(title)}</title>",
             f'<text x="4" y="18" class="chart-title bar-text">{escape(title)}</text>']
    for i, (label, value) in enumerate(bars):
        y = top + i * BAR_ROW
        w = plot_w * max(value, 0.0) / top_v
        parts.append(
            f'<text x="{label_w - 8:.1f}" y="{y + 17}" class="bar-text bar-label" '
            f'text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w:.1f}" y="{y + 4}" width="{w:.1f}" height="{BAR_ROW - 8}" '
            f'class="bar"/>'
            f'<text x="{label_w + w + 5:.1f}" y="{y + 17}" class="bar-text bar-value">'
            f"{_bar_fmt(value)}{escape(unit)}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - labels are escaped


def line_chart(title: str, points: Sequence[tuple[dt.datetime, float]], start: dt.datetime,
               end: dt.datetime, tz: zoneinfo.ZoneInfo, *, unit: str = "",
               target: float | None = None, width: int = 640, height: int = 180,
               findings: Sequence[FindingTraceOut] = (), now: dt.datetime | None = None
               ) -> Markup:
    """A plain time series (occupancy), with an optional target line (e.g. 80 %) and
    optionally the active stretches of ``findings`` (the NEWS2 chart's bands)."""
    lo = 0.0
    hi = max(target or 0.0, max((v for _, v in points), default=0.0), 1.0) * 1.1
    chart = vital_chart("", title, unit, points, start=start, end=end, tz=tz, width=width,
                        height=height, axis=(lo, hi), findings=findings, now=now)
    if target is None or not points:
        return chart
    y = 22 + (height - 44) * (1 - (target - lo) / (hi - lo))
    marker = (f'<line x1="44" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="target"/>'
              f'<text x="{width - 10}" y="{y - 4:.1f}" class="tick" text-anchor="end">'
              f"target {_fmt(target)}{escape(unit)}</text></svg>")
    return Markup(str(chart)[: -len("</svg>")] + marker)  # noqa: S704
