"""The ward row's HTML (`/ward/rows` and the ward page's table), written by Python, not Jinja.

The Jinja template this replaces (`_ward_row.html`, kept as the reference the tests compare
against: tests/hub/test_ward_row_html.py) cost ~0.2-0.4 ms a row, ~10 x the row's JSON: at
2,000 readings/s a browser on the ward page fetches ~500 changed rows per request, and
rendering them was most of the hub's CPU (py-spy under benchmarks/bench_latency.py --fetch
html: Jinja's Context.call, macros, map/join/unique filters, Markup). Here a row is a few
f-strings; its parts that depend only on the row (its names, score, alerts, the values and
their local times) are written once per computed row and kept in the cache entry's memo, so
N open screens and repeated fetches of one row version pay for them once. What moves with
time (overdue, ages, stale values, devices offline, day of admission, the sparkline's
window), with the user (`data-mine`) or with the stored risk tier is written per request.

Same markup as the template, whitespace aside; every text and attribute value is escaped
(markupsafe). Times are shown in the hub's zone (`tz`, Europe/London).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from markupsafe import escape

from alerting.observations import Latest
from ward.domain import nhs_number
from ward.domain.vitals import display_name, display_text
from ward.hub import acuity, charts, wardcache
from ward.hub.wardview import SPARK_WINDOW, WardRow

# (code, label, unit, digits) of the vitals cell, in the order shown.
VITALS: tuple[tuple[str, str, str, int], ...] = (
    ("spo2", "SpO2", "%", 0), ("pulse", "HR", "", 0), ("resp_rate", "RR", "", 0),
    ("systolic_bp", "SBP", "", 0), ("temperature", "T", " °C", 1))
_TIER_RANK = {"high": 3, "rising": 2, "low": 1}
_MEMO = "html"
PERSON_MEMO = wardcache.KEPT_MEMO + "person"
VITALS_MEMO = wardcache.KEPT_MEMO + "vitals"
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
           "Dec")


_SPECIAL = re.compile(r"[&<>\"']")


def _e(value: object) -> str:
    """`value` escaped for HTML text and attributes (markupsafe's escaping; most values have
    nothing to escape, and the search is ~10 x cheaper than the escape)."""
    text = str(value)
    return str(escape(text)) if _SPECIAL.search(text) else text


def local(when: dt.datetime, tz: zoneinfo.ZoneInfo) -> str:
    """`when` in the hub's zone as "28 Mar 23:29": templating's `local` filter (strftime's
    "%d %b %H:%M" in the C locale the hub runs in), written out: strftime was ~a tenth of
    writing a row's fixed parts."""
    t = when.astimezone(tz)
    return f"{t.day:02d} {_MONTHS[t.month]} {t.hour:02d}:{t.minute:02d}"


@functools.lru_cache(maxsize=4096)
def _nhs(value: str) -> str:
    """The NHS number's display form, escaped (one per patient: kept)."""
    return _e(nhs_number.display(value))


def age(when: dt.datetime, now: dt.datetime) -> str:
    """A value's age, short enough for the ward row: "4 min", "6 h", "2 d" (also templating's
    `age` filter)."""
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _band_cell(r: WardRow) -> str:
    s = r.score
    risk = r.band
    label = (s.label if s is not None and not s.complete and risk == s.band
             else acuity.RISK_LABEL[risk])
    band = [f'<td class="band"><div class="c"><span class="badge risk-{_e(risk)}">'
            f"{_e(label)}</span>"]
    if s is not None and not s.complete and risk != s.band:
        band.append(f' <span class="incomplete-note">{_e(s.label)}</span>')
    if r.alert_band and r.alert_band != (s.band if s is not None else "none"):
        named = _e(acuity.RISK_LABEL[r.alert_band])
        band.append(f' <span class="flag alert-band" title="NEWS2 alert open: {named}">'
                    f"alert {named}</span>")
    if s is not None and s.oxygen_unknown:
        band.append(' <span class="flag oxygen-unknown" title="air/oxygen unknown '
                    '(Scale 2)">O₂?</span>')
    if s is not None and s.any_single_3:
        band.append(' <span class="flag" title="single parameter scoring 3">single 3</span>')
    band.append("</div></td>\n  ")
    return "".join(band)


def _news2_cell(r: WardRow) -> str:
    s = r.score
    if s is None:
        news2 = ('<td class="news2 n-none"><div class="c"><span class="total none">–</span>'
                 "</div>\n  </td>\n  ")
    else:
        cls = charts.news2_class(s.total) if s.complete else "n-incomplete"
        news2 = (f'<td class="news2 {cls}"><div class="c"><span class="total">'
                 f'{"" if s.complete else "≥"}{s.total}</span>')
        if not s.complete:
            missing = ", ".join(_e(display_name(c)) for c in s.missing)
            news2 += (f' <span class="partial" title="missing: {missing}">'
                      f"{_e(s.label)}</span>")
        news2 += "</div>\n  </td>\n  "
    return news2


class _Person:
    """The parts written from the row's admission and open alerts alone (`RowFacts`): a
    rebuild from new readings keeps the facts, and the cache entry's memo keeps these
    (`wardcache.KEPT_MEMO`)."""

    __slots__ = ("acked_by", "alerts", "search", "who_a", "who_b")

    def __init__(self, r: WardRow) -> None:
        pid = r.patient_id
        self.search = _e(f"{r.family_name} {r.given_name} {r.nhs_number}".lower())
        self.who_a = (f'<td class="who"><div class="c">\n    <a href="/patients/{pid}" '
                      f'class="name">{_e(r.family_name.upper())}, {_e(r.given_name)}</a>\n    '
                      f'<div class="muted line">{_nhs(r.nhs_number)} · '
                      f'{_e(r.pathway.replace("_", "-"))} · day ')
        tail = []
        if r.ceiling_of_care != "full_escalation":
            tail.append(f' · <span class="ceiling">{_e(r.ceiling_of_care.replace("_", " "))}'
                        "</span>")
        if r.spo2_scale == 2:
            tail.append(' · <span class="scale2">SpO2 scale 2</span>')
        self.who_b = "".join(tail) + "</div></div>\n  </td>\n  "
        alerts = ['<td class="alerts"><div class="c">']
        for a in r.alerts[:2]:
            text = _e(display_text(a.summary))
            alerts.append(f'\n      <div class="mini sev-{_e(a.severity)}" title="{text}">{text}')
            if a.state == "acknowledged":
                alerts.append(f' <span class="acked">✓ {_e(a.acknowledged_by)}</span>')
            alerts.append("</div>")
        if len(r.alerts) > 2:
            alerts.append(f'<span class="muted">+{len(r.alerts) - 2} more</span>')
        alerts.append("</div>\n  </td>\n</tr>")
        self.alerts = "".join(alerts)
        self.acked_by = frozenset(a.acknowledged_by for a in r.alerts
                                  if a.acknowledged_by is not None)


_Vital = tuple[str, Latest, str, str]


class _Static:
    """The parts of a row that depend on the row alone (not on `now`, the user or tier)."""

    __slots__ = ("band", "head", "last_title", "news2", "person", "vitals")

    def __init__(self, r: WardRow, tz: zoneinfo.ZoneInfo, person: _Person,
                 cells: dict[str, _Vital] | None = None) -> None:
        last = r.last_observation_at
        self.person = person
        self.head = f'<tr id="p-{r.patient_id}" class="patient risk-{_e(r.band)}'
        self.band = _band_cell(r)
        self.news2 = _news2_cell(r)
        self.last_title = "never" if last is None else local(last, tz)
        # Per shown vital: (code, latest, the span's opening up to its class's end, the rest
        # up to the age) — stale and the age are filled in per request. `cells`: the last
        # written per code (a rebuild from new readings changes one or two of them).
        vitals: list[_Vital] = []
        for code, lab, unit, digits in VITALS:
            v = r.latest.get(code)
            if v is None:
                continue
            cell = cells.get(code) if cells is not None else None
            if cell is None or cell[1] is not v:
                at = local(v.measured_at, tz)
                value = f"%.{digits}f" % v.value
                cell = (code, v, f'" data-code="{code}" title="{lab} at {at}',
                        f'"><abbr>{lab}</abbr> {_e(value)}{_e(unit)} <small class="age">')
                if cells is not None:
                    cells[code] = cell
            vitals.append(cell)
        self.vitals = tuple(vitals)


def _person(r: WardRow, memo: MutableMapping[str, Any] | None) -> _Person:
    if memo is None or r.facts is None:
        return _Person(r)
    kept = memo.get(PERSON_MEMO)
    # Kept with the facts it was written from: a full rebuild reads new facts.
    if kept is None or kept[0] is not r.facts:
        kept = (r.facts, _Person(r))
        memo[PERSON_MEMO] = kept
    part: _Person = kept[1]
    return part


def _static(r: WardRow, memo: MutableMapping[str, Any] | None, tz: zoneinfo.ZoneInfo
            ) -> _Static:
    if memo is None:
        return _Static(r, tz, _Person(r))
    kept = memo.get(_MEMO)
    # The memo belongs to one computed row (its cache entry); `as_of` copies differ only
    # in `overdue`, which is written per request.
    if kept is None or kept[0] is not tz:
        cells = memo.get(VITALS_MEMO)
        if cells is None or cells[0] is not tz:
            cells = (tz, {})
            memo[VITALS_MEMO] = cells
        kept = (tz, _Static(r, tz, _person(r, memo), cells[1]))
        memo[_MEMO] = kept
    part: _Static = kept[1]
    return part


def row_html(r: WardRow, now: dt.datetime, *, tz: zoneinfo.ZoneInfo,
             tier: Mapping[str, Any] | None, username: str | None,
             memo: MutableMapping[str, Any] | None = None) -> str:
    """One `<tr>` of the ward table at `now` for the user `username` (None: nobody's)."""
    st = _static(r, memo, tz)
    overdue = r.overdue
    problem = any(d.offline(now) or d.low_battery for d in r.devices) or bool(
        r.infusion is not None and r.infusion.needs_attention)
    who = st.person
    mine = username is not None and username in who.acked_by
    last = r.last_observation_at
    out = [st.head, " overdue" if overdue else "",
           f'"\n    data-pid="{r.patient_id}" data-band="{-r.sort_key[0]}" '
           f'data-total="{-r.sort_key[1]}"\n    data-last="'
           f'{int(last.timestamp()) if last is not None else 0}"\n    data-risk="{_e(r.band)}" '
           f'data-overdue="{1 if overdue else 0}"\n    data-device-problem="{1 if problem else 0}"'
           f' data-mine="{1 if mine else 0}"\n    data-search="{who.search}">\n  ',
           st.band]
    if tier:
        why = "; ".join(_e(w) for w in tier["why"])
        out.append(f'<td class="tier" data-tier-rank="{_TIER_RANK.get(tier["tier"], 0)}">'
                   f'<div class="c"><span class="badge tier-{_e(tier["tier"])}" title="{why}">'
                   f'{_e(tier["tier"])}</span></div></td>\n  ')
    else:
        out.append('<td class="tier" data-tier-rank="0"><div class="c"></div></td>\n  ')
    out += [st.news2, who.who_a, str((now - r.admitted_at).days + 1), who.who_b,
            '<td class="trend"><div class="c">',
            charts.sparkline(r.trend, now - SPARK_WINDOW, now, width=96, height=28),
            "</div></td>\n  ",
            f'<td class="obs"><div class="c">\n    <span class="{"late" if overdue else ""}" '
            f'title="last observation {st.last_title}">'
            f'{age(last, now) + " ago" if last is not None else "never"}</span>\n    ']
    if overdue:
        late = r.due.overdue(now) if r.due is not None else ()
        names = [(p, _e(display_name(p.parameter.value))
                  + (f" — {_e(p.method)}" if p.hub_task else "")
                  + (" (never)" if p.last_at is None else "")) for p in late]
        title = ", ".join(n for _, n in names)
        if r.due is not None:
            title += f" (due {_e(r.due.frequency)})"
        out.append(f'<div class="line"><span class="badge overdue-badge" title="{title}">'
                   "Obs overdue</span>")
        if late:
            out.append('<span class="due-list">' + "".join(
                f'<span class="due-item {"task" if p.hub_task else "kit"}" '
                f'data-parameter="{_e(p.parameter.value)}"> {n}</span>' for p, n in names)
                + "</span>")
        out.append("</div>")
    out.append("</div>\n  </td>\n  ")
    ages = [age(v.measured_at, now) for _, v, _, _ in st.vitals]  # in st.vitals' order
    one_age = bool(ages) and len(set(ages)) == 1
    out.append(f'<td class="vitals{" one-age" if one_age else ""}"><div class="c">\n    ')
    for (code, v, mid, rest), shown_age in zip(st.vitals, ages, strict=True):
        old = acuity.is_stale(code, v.measured_at, now)
        out += ['<span class="vital', " stale" if old else "", mid,
                " — stale: not counted in NEWS2" if old else "", rest,
                shown_age, "</small></span> "]
    o2 = r.latest.get("on_oxygen")
    if o2 is not None and o2.value >= 0.5:
        stale = " stale" if acuity.is_stale("on_oxygen", o2.measured_at, now) else ""
        out.append(f'<span class="vital o2{stale}">O₂</span>')
    if one_age:
        out.append(f' <small class="age set-age">{ages[0]}</small>')
    out.append('</div>\n  </td>\n  <td class="devices"><div class="c">')
    for d in r.devices:
        if d.offline(now):
            out.append(f'<span class="chip bad" title="{_e(d.device_id)}">'
                       f'{_e(d.kind.replace("_", " "))} offline</span>')
        if d.low_battery and d.battery_pct is not None:
            out.append(f'<span class="chip warn" title="{_e(d.device_id)}">'
                       f"battery {int(d.battery_pct)}%</span>")
    inf = r.infusion
    if inf is not None:
        done = inf.percent_done
        out.append(f'<span class="chip {"bad" if inf.needs_attention else "ok"}">IV '
                   f'{_e(inf.state)}{f" {int(done)}%" if done is not None else ""}</span>')
    if not r.devices and inf is None:
        out.append('<span class="muted">no device</span>')
    elif not problem:
        out.append('<span class="muted">ok</span>')
    out += ["</div>\n  </td>\n  ", who.alerts]
    return "".join(out)


def rows_html(rows: Sequence[WardRow], now: dt.datetime, *, tz: zoneinfo.ZoneInfo,
              tiers: Mapping[int, Mapping[str, Any] | None], username: str | None,
              memos: Mapping[int, MutableMapping[str, Any]] | None = None,
              gone: Sequence[int] = ()) -> str:
    """The rows (in the order given), then an empty marked `<tr>` per patient gone."""
    memo_of = memos or {}
    parts = [row_html(r, now, tz=tz, tier=tiers.get(r.patient_id), username=username,
                      memo=memo_of.get(r.patient_id)) for r in rows]
    parts += [f'<tr id="p-{pid}" data-pid="{pid}" data-gone="1"></tr>' for pid in gone]
    return "".join(parts)

