"""Acuity for the ward view: a patient's current NEWS2, how overdue they are, device health.

Pure functions over plain values (no SQL, no clock of their own): the ward view and the
patient page hand in latest readings, the stored score and `now`.

Rules that are the hub's, not the chart's (shown on screen where they apply):

* The stored score (written by the alerting runner) is used when it is at least as new as the
  newest NEWS2 reading; otherwise the score is computed here from the latest readings, so a
  reading shows on the ward the moment it is stored, before the runner has caught up.
* A parameter counts only while its latest reading is fresh, by the alerting core's own
  staleness windows (`alerting.observations.STALENESS`); a stale or absent parameter is
  *missing* and the score is shown as partial (a lower bound).
* Observations are overdue when the newest one is older than the Chart 4 interval of the
  current band; "continuous" (total ≥ 7) is taken as `CONTINUOUS_GAP`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alerting import observations
from alerting.news2 import (
    MONITORING_TOTAL_ZERO,
    News2Score,
    Parameter,
    Risk,
    monitoring_for,
    score,
)
from alerting.observations import Latest
from alerting.snapshot import RuleConfig
from ward.domain.vitals import PUMP_STATES, VitalCode

# "Continuous" monitoring at home means a wearable reporting every few minutes; a quarter of
# an hour of silence at NEWS2 ≥ 7 is a gap a nurse must hear about.
CONTINUOUS_GAP = dt.timedelta(minutes=15)
# Below 20 % a home device may not last the night (most kits warn at 20 %).
LOW_BATTERY_PCT = 20.0
# A device that has not been heard from for this long is shown offline even if its last
# status said online (the broker's will message may not have reached us). The same threshold
# as the alerting core's device_offline rule, so the row and the alert never disagree.
STATUS_SILENT_AFTER = RuleConfig().offline_after

# Sort order of risk bands, most urgent first. A patient with no observations at all sits
# above the low band: "no data" must never be hidden at the bottom of the list.
RISK_RANK: Mapping[str, int] = {"high": 5, "medium": 4, "low_medium": 3, "none": 2, "low": 1}
RISK_LABEL: Mapping[str, str] = {
    "high": "High", "medium": "Medium", "low_medium": "Low–medium (single 3)", "low": "Low",
    "none": "No data",
}


@dataclass(frozen=True, slots=True)
class ScoreView:
    total: int
    risk: str
    complete: bool
    missing: tuple[str, ...]
    any_single_3: bool
    computed_at: dt.datetime
    source: str  # "stored" (alerting runner) or "live" (computed here from latest readings)
    sub_scores: Mapping[str, int]
    monitoring_frequency: str
    monitoring_interval: dt.timedelta | None


@dataclass(frozen=True, slots=True)
class StoredScore:
    computed_at: dt.datetime
    total: int
    risk: str
    any_single_3: bool
    complete: bool
    missing: tuple[str, ...]
    sub_scores: Mapping[str, int]


def _view_of(result: News2Score, computed_at: dt.datetime) -> ScoreView:
    return ScoreView(
        total=result.total, risk=result.risk.value, complete=result.complete,
        missing=tuple(p.value for p in Parameter if p in result.missing),
        any_single_3=result.any_single_3, computed_at=computed_at, source="live",
        sub_scores={p.value: s for p, s in result.sub_scores.items()},
        monitoring_frequency=result.monitoring_frequency,
        monitoring_interval=result.monitoring_interval,
    )


# Scores of identical fresh inputs are identical: remember the last few thousand so a ward of
# 1,000 patients is not re-scored on every refresh (NEWS2 with Decimal quantisation costs
# ~60 µs a patient). Keys hold values only, never patient identifiers.
_SCORE_CACHE_SIZE = 8192
_score_cache: dict[tuple[int, tuple[tuple[str, float], ...]], News2Score] = {}


def _live_score(latest: Mapping[str, Latest], *, spo2_scale: int, now: dt.datetime
                ) -> News2Score:
    fresh = tuple(sorted(
        (code, reading.value) for code, reading in latest.items()
        if code in observations.NEWS2_CODES
        and observations.is_fresh(code, reading.measured_at, now)))
    key = (spo2_scale, fresh)
    cached = _score_cache.get(key)
    if cached is None:
        cached = score(observations.build(latest, now, spo2_scale=spo2_scale).observations)
        if len(_score_cache) >= _SCORE_CACHE_SIZE:
            _score_cache.clear()
        _score_cache[key] = cached
    return cached


def last_observation_at(latest: Mapping[str, Latest]) -> dt.datetime | None:
    times = [v.measured_at for c, v in latest.items() if c in observations.NEWS2_CODES]
    return max(times) if times else None


def current_score(
    latest: Mapping[str, Latest], stored: StoredScore | None, *, spo2_scale: int,
    now: dt.datetime,
) -> ScoreView | None:
    """The score to show: stored if it is up to date, else computed from the latest readings."""
    newest = last_observation_at(latest)
    if stored is not None and (newest is None or stored.computed_at >= newest):
        monitoring = (MONITORING_TOTAL_ZERO if stored.total == 0
                      else monitoring_for(stored.total, Risk(stored.risk)))
        return ScoreView(
            total=stored.total, risk=stored.risk, complete=stored.complete,
            missing=stored.missing, any_single_3=stored.any_single_3,
            computed_at=stored.computed_at, source="stored", sub_scores=stored.sub_scores,
            monitoring_frequency=monitoring.frequency, monitoring_interval=monitoring.interval,
        )
    if newest is None:
        return None
    result = _live_score(latest, spo2_scale=spo2_scale, now=now)
    if len(result.missing) == len(Parameter):
        return None  # every parameter stale: there is nothing to score
    return _view_of(result, newest)


def is_overdue(
    last_obs: dt.datetime | None, current: ScoreView | None, *, now: dt.datetime
) -> bool:
    """Chart 4: no observation within the current band's interval (or none ever)."""
    if last_obs is None:
        return True
    interval = current.monitoring_interval if current is not None else None
    if current is not None and interval is None:
        interval = CONTINUOUS_GAP
    if interval is None:  # no current score: the strictest non-continuous rule, 1 hour
        interval = dt.timedelta(hours=1)
    return now - last_obs > interval


def overdue_at(latest: Mapping[str, Latest], stored: StoredScore | None, *, spo2_scale: int
               ) -> dt.datetime | None:
    """The instant after which observations are overdue; None when never observed (overdue).

    Judged by the band at the last observation (see `overdue`), so it does not move with
    `now`: a cached ward row can tell whether it is overdue at any later instant.
    """
    last = last_observation_at(latest)
    if last is None:
        return None
    at_obs = current_score(latest, stored, spo2_scale=spo2_scale, now=last)
    interval = at_obs.monitoring_interval if at_obs is not None else None
    if at_obs is not None and interval is None:
        interval = CONTINUOUS_GAP
    if interval is None:
        interval = dt.timedelta(hours=1)
    return last + interval


def is_overdue_at(deadline: dt.datetime | None, now: dt.datetime) -> bool:
    return deadline is None or now > deadline


def fresh_until(latest: Mapping[str, Latest], now: dt.datetime) -> dt.datetime | None:
    """When the first NEWS2 parameter fresh at `now` goes stale (a live score then changes)."""
    ends = [reading.measured_at + observations.STALENESS[VitalCode(code)]
            for code, reading in latest.items()
            if code in observations.NEWS2_CODES
            and observations.is_fresh(code, reading.measured_at, now)]
    return min(ends) if ends else None


def overdue(latest: Mapping[str, Latest], stored: StoredScore | None, *, spo2_scale: int,
            now: dt.datetime) -> bool:
    """Overdue by the band the patient was in *when last observed*.

    Scoring at `now` would let stale parameters drop out, the total fall to 0 and the interval
    stretch to 12 hours: the longer nobody looks, the less overdue a patient would seem.
    """
    last = last_observation_at(latest)
    if last is None:
        return True
    at_obs = current_score(latest, stored, spo2_scale=spo2_scale, now=last)
    return is_overdue(last, at_obs, now=now)


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    device_id: str
    kind: str
    online: bool | None  # None: the device never reported status
    battery_pct: float | None
    reported_at: dt.datetime | None

    def offline(self, now: dt.datetime) -> bool:
        if self.online is None or self.reported_at is None:
            return False  # unknown is not offline; readings arriving show it is alive
        return (not self.online) or now - self.reported_at > STATUS_SILENT_AFTER

    @property
    def low_battery(self) -> bool:
        return self.battery_pct is not None and self.battery_pct < LOW_BATTERY_PCT


@dataclass(frozen=True, slots=True)
class Infusion:
    state: str
    volume_infused_ml: float | None
    volume_remaining_ml: float | None
    rate_ml_h: float | None
    at: dt.datetime

    @property
    def percent_done(self) -> float | None:
        if self.volume_infused_ml is None or self.volume_remaining_ml is None:
            return None
        total = self.volume_infused_ml + self.volume_remaining_ml
        return None if total <= 0 else 100.0 * self.volume_infused_ml / total

    @property
    def needs_attention(self) -> bool:
        return self.state in {"occluded", "disconnected", "paused"}


def infusion_from(latest: Mapping[str, Latest]) -> Infusion | None:
    state = latest.get(VitalCode.PUMP_STATE)
    if state is None:
        return None

    def value(code: VitalCode) -> float | None:
        reading = latest.get(code)
        return None if reading is None else reading.value

    index = int(state.value)
    return Infusion(
        state=PUMP_STATES[index] if 0 <= index < len(PUMP_STATES) else "unknown",
        volume_infused_ml=value(VitalCode.INFUSION_VOLUME_INFUSED),
        volume_remaining_ml=value(VitalCode.INFUSION_VOLUME_REMAINING),
        rate_ml_h=value(VitalCode.INFUSION_RATE), at=state.measured_at,
    )


def sort_key(current: ScoreView | None, last_obs: dt.datetime | None
                    ) -> tuple[int, int, float]:
    """Ascending sort key, most acute first: band, total, then longest without observations.

    No `now`: the oldest last observation is the longest unobserved at every instant, so a
    cached row's key never goes stale."""
    band = RISK_RANK[current.risk] if current is not None else RISK_RANK["none"]
    total = current.total if current is not None else -1
    last = last_obs.timestamp() if last_obs is not None else float("-inf")
    return (-band, -total, last)


def ordered(rows: Sequence[tuple[tuple[int, int, float], int]]) -> list[int]:
    """Patient ids ordered by their sort keys (ties by id, for a stable screen)."""
    return [pid for _, pid in sorted(rows)]
