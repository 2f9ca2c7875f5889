"""The ward row written by `ward.hub.wardrow_html` is the Jinja template's row, whitespace aside.

`wardrow_html` replaced `_ward_row.html` on `/ward/rows` and the ward page (~10 x cheaper a
row); the template stays as the reference. Every case renders both at several instants (ages,
stale values, overdue, devices offline and the day of admission move with time), for a user
who acknowledged one of the alerts and for one who did not, with and without a risk tier,
and again from the kept parts of an earlier instant (the cache entry's memo)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import re
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from alerting.observations import Latest
from ward.domain import nhs_number
from ward.hub import acuity, charts, templating, wardcache, wardrow_html, wardview
from ward.hub.acuity import DeviceHealth, StoredScore
from ward.hub.wardview import OpenAlert, WardRow
from ward.settings import Settings

NOW = dt.datetime(2026, 3, 28, 23, 30, 15, 123456, tzinfo=dt.UTC)  # BST starts next day
SETTINGS = Settings(database_url=SecretStr("postgresql://unused@127.0.0.1/unused"))
TEMPLATES = templating.build(SETTINGS)


def _latest(minutes: Mapping[str, tuple[float, float]]) -> dict[str, Latest]:
    return {code: Latest(code, NOW - dt.timedelta(minutes=m), v, "dev-1")
            for code, (v, m) in minutes.items()}


def _row(latest: dict[str, Latest], *, stored: StoredScore | None = None,
         devices: tuple[DeviceHealth, ...] = (), alerts: tuple[OpenAlert, ...] = (),
         scale: int = 1, admitted_at: dt.datetime = NOW - dt.timedelta(days=2),
         kit: tuple[tuple[str, str], ...] = (("dev-1", "home_hub"),),
         alert_band: str | None = None, **names: Any) -> WardRow:
    score = acuity.current_score(latest, stored, spo2_scale=scale, now=NOW)
    last = acuity.last_observation_at(latest)
    report = acuity.due_report(latest, last=None, kit=kit, admitted_at=admitted_at,
                               spo2_scale=scale, now=NOW)
    if score is not None and report is not None and report.oxygen_unknown:
        score = dataclasses.replace(score, oxygen_unknown=True)
    trend = ((NOW - dt.timedelta(hours=3), 2), (NOW - dt.timedelta(hours=1, seconds=1), 5))
    person = {"patient_id": 7, "nhs_number": "9434765919", "given_name": "Ada",
              "family_name": "Lovelace", "ceiling_of_care": "full_escalation",
              "pathway": "step_up", **names}
    return WardRow(
        date_of_birth=dt.date(1941, 5, 3), admission_id=11, source="gp",
        admitted_at=admitted_at, spo2_scale=scale, score=score, last_observation_at=last,
        overdue=acuity.is_overdue_at(None if report is None else report.next_overdue_at, NOW),
        latest=latest, devices=devices, infusion=acuity.infusion_from(latest), alerts=alerts,
        trend=trend if latest else (), sort_key=acuity.sort_key(score, last, alert_band),
        overdue_at=None if report is None else report.next_overdue_at, computed_at=NOW,
        due=report, alert_band=alert_band, **person)


FULL = {"resp_rate": (26.0, 3), "spo2": (91.0, 3), "systolic_bp": (101.0, 3),
        "pulse": (112.0, 3), "temperature": (38.44, 3), "consciousness": (0.0, 3),
        "on_oxygen": (0.0, 3)}
CALM = {"resp_rate": (16.0, 1), "spo2": (97.0, 1), "systolic_bp": (124.0, 1),
        "pulse": (72.0, 1), "temperature": (36.8, 1), "consciousness": (0.0, 1),
        "on_oxygen": (1.0, 1)}


def _alert(i: int, severity: str, state: str, summary: str, by: str | None = None
           ) -> OpenAlert:
    return OpenAlert(i, "news2", severity, state, summary, NOW - dt.timedelta(minutes=20 + i),
                     by, NOW + dt.timedelta(minutes=10), None)


CASES = {
    "never observed, no device": _row({}, kit=()),
    "live complete score, devices, open alerts, one acknowledged": _row(
        _latest(FULL),
        devices=(DeviceHealth("dev-1", "home_hub", True, 80, NOW - dt.timedelta(minutes=1)),
                 DeviceHealth("dev-2", "wearable", None, None, None),
                 DeviceHealth("dev-3", "spot_check", False, 9.5, NOW - dt.timedelta(hours=2))),
        alerts=(_alert(5, "medium", "raised", "NEWS2 6: resp_rate 3, spo2 2"),
                _alert(6, "high", "acknowledged", "NEWS2 7 <b>&</b>", "nurse"),
                _alert(8, "low", "raised", "spo2 low")),
        alert_band="high"),
    "calm, on oxygen, all values of one age": _row(_latest(CALM)),
    "partial, some values stale, scale 2, ceiling": _row(
        _latest({"pulse": (72, 30), "spo2": (95, 60 * 13), "on_oxygen": (1.0, 60 * 13)}),
        scale=2, ceiling_of_care="ward_based_care"),
    "incomplete low, a red single parameter": _row(_latest({"systolic_bp": (85, 2)})),
    "stored score newer than the readings, alert band above the score": _row(
        _latest({"pulse": (72, 30)}), stored=StoredScore(
            NOW - dt.timedelta(minutes=5), 3, "low_medium", True, False, ("temperature",),
            {"pulse": 0, "resp_rate": 3}), alert_band="medium",
        alerts=(_alert(1, "medium", "acknowledged", "NEWS2 5", "other"),)),
    "an infusion needing attention, names needing escapes": _row(_latest({
        "pulse": (72, 3), "pump_state": (3.0, 2), "infusion_volume_infused": (120, 2),
        "infusion_volume_remaining": (380, 2), "infusion_rate": (50, 2)}),
        given_name='Zoë "Z" <i>', family_name="O'Brien & Sons", pathway="step_down"),
    "overdue by phone and visit (no kit)": _row(
        _latest({"pulse": (72, 60 * 5), "resp_rate": (18, 60 * 5)}), kit=(),
        admitted_at=NOW - dt.timedelta(days=9, hours=3)),
}
TIER = {"tier": "rising", "points": 3, "assessed_at": NOW.isoformat(),
        "why": ["age 80+ +2", "COPD <moderate> +1"]}
INSTANTS = (NOW, NOW + dt.timedelta(minutes=7), NOW + dt.timedelta(hours=5),
            NOW + dt.timedelta(days=3))


def _same(html: str) -> str:
    return re.sub(r"\s+", " ", html).strip()


def _template(row: WardRow, now: dt.datetime, user: Any, tier: Any, gone: list[int]) -> str:
    return TEMPLATES.get_template("_ward_rows.html").render({
        "rows": [row], "gone": gone, "tiers": {row.patient_id: tier}, "now": now,
        "user": user, "nhs": nhs_number.display, "spark_start": now - wardview.SPARK_WINDOW})


@pytest.mark.parametrize("name", list(CASES))
def test_row_html_is_the_templates_row(name: str) -> None:
    row = CASES[name]
    memo: dict[str, Any] = {}
    for now in INSTANTS:
        shown = wardview.as_of(row, now)
        for username in ("nurse", "someone", None):
            user = SimpleNamespace(username=username) if username else None
            for tier in (TIER, None):
                expected = _template(shown, now, user, tier, [])
                for kept in (memo, None):
                    written = wardrow_html.rows_html(
                        [shown], now, tz=SETTINGS.tz, tiers={row.patient_id: tier},
                        username=username,
                        memos={row.patient_id: kept} if kept is not None else None)
                    assert _same(written) == _same(expected), (now, username, tier)


def test_gone_rows_are_marked() -> None:
    written = wardrow_html.rows_html([], NOW, tz=SETTINGS.tz, tiers={}, username=None,
                                     gone=[3, 9])
    assert _same(written) == _same(_template(CASES["never observed, no device"], NOW, None,
                                             None, [3, 9]).split("</tr>", 1)[1])


def test_times_are_shown_in_london() -> None:
    row = CASES["calm, on oxygen, all values of one age"]
    summer = NOW + dt.timedelta(days=1)  # BST: London is UTC+1
    written = wardrow_html.row_html(wardview.as_of(row, summer), summer, tz=SETTINGS.tz,
                                    tier=None, username=None)
    at = row.latest["spo2"].measured_at
    assert f"SpO2 at {at.strftime('%d %b')} 23:29" in written  # GMT when measured
    assert f'title="last observation {at.strftime("%d %b")} 23:29"' in written


def test_local_time_is_the_templates_across_the_clock_changes() -> None:
    tz = SETTINGS.tz
    for start in (dt.datetime(2026, 3, 28, 22, tzinfo=dt.UTC),
                  dt.datetime(2026, 10, 24, 22, tzinfo=dt.UTC)):
        for minutes in range(0, 60 * 30, 17):
            when = start + dt.timedelta(minutes=minutes, seconds=31)
            assert wardrow_html.local(when, tz) == when.astimezone(tz).strftime("%d %b %H:%M")


def _sparkline_before(points: list[tuple[dt.datetime, int]], start: dt.datetime,
                      end: dt.datetime, *, width: int, height: int) -> str:
    """charts.sparkline as it was written before its arithmetic was inlined."""
    top_v = max(10, max((v for _, v in points), default=0))
    span_t = max((end - start).total_seconds(), 1.0)

    def x(t: dt.datetime) -> float:
        return 2 + (width - 4) * min(max((t - start).total_seconds() / span_t, 0.0), 1.0)

    def y(v: float) -> float:
        return 2 + (height - 4) * (1 - v / top_v)

    parts = [f'<svg class="spark" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="NEWS2 over 24 hours">',
             f'<rect x="0" y="0" width="{width}" height="{y(7):.1f}" fill="#ffe3e3"/>',
             f'<rect x="0" y="{y(7):.1f}" width="{width}" height="{y(5) - y(7):.1f}" '
             'fill="#fff0db"/>']
    if points:
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        parts.append(f'<polyline points="{path}" class="spark-line"/>')
        t_last, v_last = points[-1]
        parts.append(f'<circle cx="{x(t_last):.1f}" cy="{y(v_last):.1f}" r="2.5" '
                     f'class="spark-dot {charts.news2_class(v_last)}"/>')
    parts.append(f"<title>NEWS2, last 24 h: {', '.join(str(v) for _, v in points[-12:])}"
                 "</title></svg>")
    return "".join(parts)


def test_sparkline_draws_what_it_drew_before() -> None:
    rng = random.Random(14)
    start = NOW - wardview.SPARK_WINDOW
    for size in (0, 1, 2, 13, 40):
        for _ in range(25):
            points = sorted((start + dt.timedelta(seconds=rng.uniform(-3600, 90000)),
                             rng.randint(0, 20)) for _ in range(size))
            for width, height in ((96, 28), (120, 30)):
                assert str(charts.sparkline(points, start, NOW, width=width, height=height)
                           ) == _sparkline_before(points, start, NOW, width=width,
                                                  height=height)


def test_a_rebuild_from_new_readings_keeps_only_what_still_holds() -> None:
    """A cache entry rebuilt from new readings keeps the memo's `kept:` parts (wardcache):
    the row written from them is the template's row of the new readings, never the old."""
    before = CASES["live complete score, devices, open alerts, one acknowledged"]
    memo: dict[str, Any] = {}
    wardrow_html.row_html(before, NOW, tz=SETTINGS.tz, tier=None, username="nurse", memo=memo)
    changed = dict(before.latest)
    changed["pulse"] = Latest("pulse", NOW, 131.0, "dev-1")  # the others: the same objects
    changed["spo2"] = Latest("spo2", before.latest["spo2"].measured_at, 88.0, "dev-1")
    after = dataclasses.replace(
        _row(changed, devices=before.devices, alerts=before.alerts, alert_band="high"),
        facts=before.facts)
    kept = {k: v for k, v in memo.items() if k.startswith(wardcache.KEPT_MEMO)}
    assert kept, memo.keys()
    for now in INSTANTS[:2]:
        written = wardrow_html.row_html(wardview.as_of(after, now), now, tz=SETTINGS.tz,
                                        tier=None, username="nurse", memo=kept)
        assert _same(written) == _same(_template(wardview.as_of(after, now), now,
                                                 SimpleNamespace(username="nurse"), None, []))
        assert "<abbr>HR</abbr> 131 " in written
        assert "<abbr>SpO2</abbr> 88%" in written


_CODES = ("resp_rate", "spo2", "systolic_bp", "pulse", "temperature", "consciousness",
          "on_oxygen")
_TEXT = st.text(alphabet=st.sampled_from("aZé _-'\"<>&;·—"), min_size=1, max_size=12)


@st.composite
def _rows(draw: st.DrawFn) -> WardRow:
    readings = {}
    for code in draw(st.sets(st.sampled_from(_CODES))):
        value = (draw(st.integers(0, 4)) if code == "consciousness"
                 else draw(st.sampled_from([0, 1])) if code == "on_oxygen"
                 else draw(st.floats(1, 200, allow_nan=False)))
        readings[code] = (float(value), draw(st.floats(0, 60 * 30)))
    devices = tuple(
        DeviceHealth(f"dev-{i}", draw(st.sampled_from(["home_hub", "spot_check"])),
                     draw(st.one_of(st.none(), st.booleans())),
                     draw(st.one_of(st.none(), st.floats(0, 100))),
                     NOW - dt.timedelta(minutes=draw(st.integers(0, 200))))
        for i in range(draw(st.integers(0, 2))))
    alerts = tuple(
        _alert(i, draw(st.sampled_from(["low", "medium", "high"])),
               draw(st.sampled_from(["raised", "acknowledged"])), draw(_TEXT),
               draw(st.one_of(st.none(), st.sampled_from(["nurse", "a<b"]))))
        for i in range(draw(st.integers(0, 3))))
    return _row(_latest(readings), devices=devices, alerts=alerts,
                scale=draw(st.sampled_from([1, 2])),
                kit=draw(st.sampled_from([(), (("dev-1", "home_hub"),)])),
                alert_band=draw(st.sampled_from([None, "low_medium", "medium", "high"])),
                given_name=draw(_TEXT), family_name=draw(_TEXT),
                ceiling_of_care=draw(st.sampled_from(["full_escalation", "ward_based_care"])),
                admitted_at=NOW - dt.timedelta(hours=draw(st.integers(0, 24 * 20))))


@settings(max_examples=150, deadline=None)
@given(row=_rows(), later=st.integers(0, 60 * 24 * 2), username=st.sampled_from(
    ["nurse", "a<b", None]), tier=st.sampled_from([None, TIER]))
def test_any_row_is_the_templates_row(row: WardRow, later: int, username: str | None,
                                      tier: dict[str, Any] | None) -> None:
    now = NOW + dt.timedelta(minutes=later)
    shown = wardview.as_of(row, now)
    user = SimpleNamespace(username=username) if username else None
    written = wardrow_html.row_html(shown, now, tz=SETTINGS.tz, tier=tier, username=username)
    assert _same(written) == _same(_template(shown, now, user, tier, []))
