"""The evidence trace reads stored findings defensively (ward.hub.queries.evidence).

The trend's details may gain, lose or rename fields (the method evolves); a missing or
malformed field must draw less, never a wrong band; raise/clear events pair into spans.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from alerting import trend
from ward.hub.queries import evidence

T = dt.datetime(2025, 7, 10, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
PULSE = {"code": "pulse", "level": 94, "z": 6.2, "baseline_mean": 63.0, "baseline_sd": 0.8,
         "baseline_n": 7, "learned_from": (T - 9 * H).isoformat(),
         "learned_to": (T - 3 * H).isoformat()}


def bands(details: dict[str, Any]) -> dict[str, evidence.BaselineOut]:
    return {b.code: b for b in evidence._baselines(1, details, first_at=T, cleared_at=None)}


def test_the_band_is_the_mean_plus_minus_the_stored_limit_of_floored_sds() -> None:
    (band,) = bands({"charted": [PULSE], "flagged": ["pulse"], "z_limit": 2.5}).values()
    floor = trend.SD_FLOOR["pulse"]
    assert floor > 0.8  # the learned 0.8 is floored
    assert band.sd_used == floor
    assert (band.low, band.high) == pytest.approx((63 - 2.5 * floor, 63 + 2.5 * floor))
    assert band.flagged
    assert band.learned_from == T - 9 * H


@pytest.mark.parametrize(("details", "expected"), [
    ({}, {}),  # no charted list: nothing drawn
    ({"charted": "pulse"}, {}),
    ({"charted": [{**PULSE, "baseline_mean": None}]}, {}),  # no mean: no band
    ({"charted": [{**PULSE, "baseline_sd": "x"}]}, {}),
    ({"charted": [{k: v for k, v in PULSE.items() if k != "code"}]}, {}),
    ({"charted": [{**PULSE, "learned_from": "yesterday", "baseline_n": None}]},
     {"pulse": (63 - trend.Z_LIMIT * trend.SD_FLOOR["pulse"],
                63 + trend.Z_LIMIT * trend.SD_FLOOR["pulse"])}),  # what is there is drawn
    ({"charted": [{**PULSE, "sd_used": 2.0}], "z_limit": 3.0},
     {"pulse": (57.0, 69.0)}),  # a stored SD and limit win over the module's
    ({"charted": [{**PULSE, "code": "urine_output", "baseline_sd": 0.0}]}, {}),  # SD 0: none
])
def test_missing_or_odd_fields_draw_less_never_a_wrong_band(
        details: dict[str, Any], expected: dict[str, tuple[float, float]]) -> None:
    got = bands(details)
    assert {c: (b.low, b.high) for c, b in got.items()} == pytest.approx(expected)
    assert all(b.learned_from is None for b in got.values()
               if details["charted"][0].get("learned_from") == "yesterday")


def test_readings_skip_malformed_items() -> None:
    items = [{"code": "pulse", "measured_at": T.isoformat(), "value": 90, "device_id": "d"},
             {"code": "pulse", "measured_at": "2025-07-10T12:00:00", "value": 1},  # naive
             {"code": "pulse", "measured_at": T.isoformat(), "value": True},
             {"measured_at": T.isoformat(), "value": 1}, "junk"]
    assert [(r.code, r.value) for r in evidence._readings(items)] == [("pulse", 90.0)]
    assert evidence._readings({"not": "a list"}) == []


@pytest.mark.parametrize(("starts", "ends", "cleared", "resolved", "expected"), [
    ([T], [], None, None, [(T, None, None)]),
    ([T], [T + H], T + H, T + H, [(T, T + H, "cleared")]),
    # cleared, then raised again in the same episode: two stretches
    ([T, T + 2 * H], [T + H], None, None, [(T, T + H, "cleared"), (T + 2 * H, None, None)]),
    # no events (stored before 0070): the row's first_at starts it
    ([], [], None, T + 3 * H, [(T - H, T + 3 * H, "episode resolved")]),
])
def test_spans_pair_raises_and_clears(starts: list[dt.datetime], ends: list[dt.datetime],
                                      cleared: dt.datetime | None, resolved: dt.datetime | None,
                                      expected: list[tuple[Any, Any, Any]]) -> None:
    spans = evidence._spans(starts, ends, first_at=T - H, cleared_at=cleared,
                            resolved_at=resolved)
    assert [(s.start, s.end, s.end_reason) for s in spans] == expected
