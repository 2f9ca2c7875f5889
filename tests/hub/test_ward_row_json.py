"""The ward row's direct JSON writer (`row_json`) says exactly what the API's models say.

`row_json` replaced `row_out(row, now).model_dump(mode="json")` on the ward cache's hot path
(it recomputes a row per reading); the models stay the schema. Each case here is a row built
the way `ward.hub.wardview.load` builds it, with every optional part present and absent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import orjson
import pytest

from alerting.observations import Latest
from ward.hub import acuity
from ward.hub.acuity import DeviceHealth, StoredScore
from ward.hub.queries.ward import ROW_JSON_OPTIONS, row_json, row_out
from ward.hub.wardview import OpenAlert, WardRow

NOW = dt.datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=dt.UTC)


def _latest(minutes: Mapping[str, tuple[float, float]]) -> dict[str, Latest]:
    return {code: Latest(code, NOW - dt.timedelta(minutes=m), v, "dev-1")
            for code, (v, m) in minutes.items()}


def _row(latest: dict[str, Latest], *, stored: StoredScore | None = None,
         devices: tuple[DeviceHealth, ...] = (), alerts: tuple[OpenAlert, ...] = (),
         scale: int = 1, admitted_at: dt.datetime = NOW - dt.timedelta(days=2)) -> WardRow:
    score = acuity.current_score(latest, stored, spo2_scale=scale, now=NOW)
    last = acuity.last_observation_at(latest)
    report = acuity.due_report(latest, last=None, kit=[("dev-1", "home_hub")],
                               admitted_at=admitted_at, spo2_scale=scale, now=NOW)
    trend = ((NOW - dt.timedelta(hours=3), 2), (NOW - dt.timedelta(hours=1, seconds=1), 5))
    return WardRow(
        patient_id=7, nhs_number="9434765919", given_name="Ada", family_name="Lovelace",
        date_of_birth=dt.date(1941, 5, 3), admission_id=11, pathway="step_up", source="gp",
        admitted_at=admitted_at, spo2_scale=scale, ceiling_of_care="full_escalation",
        score=score, last_observation_at=last,
        overdue=acuity.is_overdue_at(None if report is None else report.next_overdue_at, NOW),
        latest=latest, devices=devices, infusion=acuity.infusion_from(latest), alerts=alerts,
        trend=trend, sort_key=acuity.sort_key(score, last, None),
        overdue_at=None if report is None else report.next_overdue_at, computed_at=NOW,
        due=report, alert_band="medium" if alerts else None)


FULL = {"resp_rate": (26.0, 3), "spo2": (91.0, 3), "systolic_bp": (101.0, 3),
        "pulse": (112.0, 3), "temperature": (38.4, 3), "consciousness": (0.0, 3),
        "on_oxygen": (0.0, 3)}

CASES = {
    "never observed": _row({}),
    "live complete score, devices, an open alert": _row(
        _latest(FULL),
        devices=(DeviceHealth("dev-1", "home_hub", True, 80, NOW - dt.timedelta(minutes=1)),
                 DeviceHealth("dev-2", "wearable", None, None, None),
                 DeviceHealth("dev-3", "spot", False, 9.5, NOW - dt.timedelta(hours=2))),
        alerts=(OpenAlert(5, "news2", "medium", "raised", "NEWS2 6", NOW - dt.timedelta(
            minutes=20), None, NOW + dt.timedelta(minutes=10), None),
                OpenAlert(6, "news2", "high", "acknowledged", "NEWS2 7", NOW.replace(
                    microsecond=0), "nurse", None, None))),
    "partial, some values stale, scale 2": _row(
        _latest({"pulse": (72, 30), "spo2": (95, 60 * 13)}), scale=2),
    "stored score newer than the readings": _row(
        _latest({"pulse": (72, 30)}), stored=StoredScore(
            NOW - dt.timedelta(minutes=5), 3, "low_medium", True, False, ("temperature",),
            {"pulse": 0, "resp_rate": 3})),
    "an infusion running": _row(_latest({
        "pulse": (72, 3), "pump_state": (1.0, 2), "infusion_volume_infused": (120, 2),
        "infusion_volume_remaining": (380, 2), "infusion_rate": (50, 2)})),
}


@pytest.mark.parametrize("name", list(CASES))
def test_row_json_is_the_models_json(name: str) -> None:
    row = CASES[name]
    for now in (NOW, NOW + dt.timedelta(hours=5)):
        written = orjson.loads(orjson.dumps(row_json(row, now), option=ROW_JSON_OPTIONS))
        assert written == row_out(row, now).model_dump(mode="json")


@pytest.mark.parametrize("name", list(CASES))
def test_kit_sets_kept_per_row_are_those_made_afresh(name: str) -> None:
    """The worklist keeps each row's kit set in its cache entry until it changes; at every
    instant it must be the set `kit_items` makes from the row then."""
    from ward.hub.queries import worklist as wl
    from ward.hub.routers.worklist import _kit_sets
    from ward.hub.wardcache import Entry

    row = CASES[name]
    entry = Entry(row, 0)
    seen = set()
    for step in range(0, 13 * 60, 3):  # every 3 minutes for 13 hours
        now = NOW + dt.timedelta(minutes=step, seconds=step % 7)
        kept = _kit_sets([entry], now)
        assert kept == wl.kit_items([row], now), now
        seen.add(tuple(sorted((k, str(v)) for i in kept for k, v in i.items()
                              if k != "seconds_to_due")))
    if row.due is not None and any(p.method == "kit" and not p.overdue(NOW)
                                   for p in row.due.parameters):
        assert len(seen) > 1, "the set never changed over 13 hours: a weak case"


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("first_gap_s", [0, 20, 100, 7 * 60 + 5])
def test_the_api_row_kept_per_entry_is_the_row_written_afresh(name: str, first_gap_s: int
                                                              ) -> None:
    """`/api/ward` writes a row once when computed and patches its timed fields (ages,
    staleness, overdue flags) only when the first of them changes; when that is comes from
    the instant the row was written, worked out only when a later request asks (the first
    one `first_gap_s` later, past several changes or none). At every instant the answer is the
    row written afresh then."""
    from ward.hub import wardview
    from ward.hub.routers.ward import _row_json
    from ward.hub.wardcache import Entry

    row = CASES[name]
    entry = Entry(row, 0)

    def fresh(now: dt.datetime) -> object:
        return orjson.loads(orjson.dumps(row_json(wardview.as_of(row, now), now),
                                         option=ROW_JSON_OPTIONS))

    def kept(now: dt.datetime) -> object:
        return orjson.loads(orjson.dumps(_row_json(entry, now), option=ROW_JSON_OPTIONS))

    assert kept(NOW) == fresh(NOW)
    ages = set()
    for step in range(0, 5 * 3600, 37):  # every 37 s for 5 hours, from the first gap on
        now = NOW + dt.timedelta(seconds=first_gap_s + step)
        written = kept(now)
        assert written == fresh(now), now
        ages.add(tuple(v["age_minutes"] for v in written["latest"].values()))  # type: ignore[index]
    if row.latest:
        assert len(ages) > 1, "no age ever moved: a weak case"
