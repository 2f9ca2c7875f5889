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
* **A partial score never looks like a complete one**: its band is shown as "Incomplete n/7
  — full set due" (never the green Low), unless its lower bound already reaches a higher band
  ("≥ Medium"); its monitoring advice names what is missing, not the lower bound's Chart 4
  row.
* What is due and overdue, per parameter, is `alerting.due.due` — the very function the
  `observations_overdue` alert calls, fed the same facts (latest readings, last complete
  score within 24 h, the kit's devices, admission time).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alerting import due as due_rule
from alerting import observations
from alerting.due import DueReport, LastComplete
from alerting.news2 import (
    News2Score,
    Parameter,
    Risk,
    monitoring_for,
    score,
)
from alerting.observations import Latest
from alerting.snapshot import RuleConfig
from ward.domain.vitals import PUMP_STATES, VitalCode

# Below 20 % a home device may not last the night (most kits warn at 20 %).
LOW_BATTERY_PCT = 20.0
# A device that has not been heard from for this long is shown offline even if its last
# status said online (the broker's will message may not have reached us). The same threshold
# as the alerting core's device_offline rule, so the row and the alert never disagree.
STATUS_SILENT_AFTER = RuleConfig().offline_after
# The rules' defaults, made once (frozen): a new one per ward row was ~1.6 µs a row.
_RULES = RuleConfig()

# Sort order of risk bands, most urgent first. A patient with no observations at all, or only
# an incomplete low score, sits above the low band: "no data" must never be hidden at the
# bottom of the list.
RISK_RANK: Mapping[str, int] = {"high": 5, "medium": 4, "low_medium": 3, "none": 2,
                                "incomplete": 2, "low": 1}
RISK_LABEL: Mapping[str, str] = {
    "high": "High", "medium": "Medium", "low_medium": "Low–medium (single 3)", "low": "Low",
    "none": "No data", "incomplete": "Incomplete",
}
PARAMETER_COUNT = len(Parameter)


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
    oxygen_unknown: bool = False  # Scale 2 and no fresh air/oxygen reading (alerting.due)

    @property
    def present(self) -> int:
        return PARAMETER_COUNT - len(self.missing)

    @property
    def band(self) -> str:
        """The band to show and sort by: an incomplete low score is never "low" (green)."""
        return "incomplete" if not self.complete and self.risk == "low" else self.risk

    @property
    def label(self) -> str:
        """E.g. "Medium", "Incomplete 2/7 — full set due", "≥ Medium (incomplete 5/7)"."""
        if self.complete:
            return RISK_LABEL[self.risk]
        if self.risk == "low":
            return f"Incomplete {self.present}/{PARAMETER_COUNT} — full set due"
        return f"≥ {RISK_LABEL[self.risk]} (incomplete {self.present}/{PARAMETER_COUNT})"


def monitoring_advice(total: int, risk: Risk, missing: tuple[str, ...]
                      ) -> tuple[str, dt.timedelta | None]:
    """Chart 4 frequency for a complete score; for a partial one, what is missing is due."""
    if missing:
        names = ", ".join(_PARAMETER_NAMES.get(m, m) for m in missing)
        return f"full set due now (missing {names})", None
    monitoring = monitoring_for(total, risk)
    return monitoring.frequency, monitoring.interval


_PARAMETER_NAMES: Mapping[str, str] = {
    "resp_rate": "RR", "spo2": "SpO2", "air_or_oxygen": "air/oxygen", "systolic_bp": "BP",
    "pulse": "pulse", "consciousness": "consciousness", "temperature": "temperature",
}


@dataclass(frozen=True, slots=True)
class StoredScore:
    computed_at: dt.datetime
    total: int
    risk: str
    any_single_3: bool
    complete: bool
    missing: tuple[str, ...]
    sub_scores: Mapping[str, int]


# Iterating an Enum class runs a generator over its member names each time (~3 µs); the
# rows do it twice each.
_PARAMETERS: tuple[Parameter, ...] = tuple(Parameter)


def _view_of(result: News2Score, computed_at: dt.datetime) -> ScoreView:
    missing = tuple(p.value for p in _PARAMETERS if p in result.missing)
    frequency, interval = monitoring_advice(result.total, result.risk, missing)
    return ScoreView(
        total=result.total, risk=result.risk.value, complete=result.complete,
        missing=missing,
        any_single_3=result.any_single_3, computed_at=computed_at, source="live",
        sub_scores={p.value: s for p, s in result.sub_scores.items()},
        monitoring_frequency=frequency, monitoring_interval=interval,
    )


# Scores of identical fresh inputs are identical: remember the last few thousand so a ward of
# 1,000 patients is not re-scored on every refresh (NEWS2 with Decimal quantisation costs
# ~60 µs a patient). Keys hold values only, never patient identifiers.
_SCORE_CACHE_SIZE = 8192
_score_cache: dict[tuple[int, tuple[tuple[str, float], ...]], News2Score] = {}


# Staleness windows by code string: `observations.is_fresh` turns each code into a VitalCode
# (an enum call, ~2 µs) and the ward rows ask ~30 times a row; same windows, same rule.
STALENESS_BY_CODE: Mapping[str, dt.timedelta] = {c.value: w for c, w in observations.STALENESS.items()}


def _fresh(code: str, measured_at: dt.datetime, now: dt.datetime) -> bool:
    """`observations.is_fresh` for a NEWS2 code (None window: never fresh)."""
    window = STALENESS_BY_CODE.get(code)
    return window is not None and now - measured_at <= window


def _live_score(latest: Mapping[str, Latest], *, spo2_scale: int, now: dt.datetime
                ) -> News2Score:
    fresh = tuple(sorted(
        (code, reading.value) for code, reading in latest.items()
        if code in STALENESS_BY_CODE and _fresh(code, reading.measured_at, now)))
    key = (spo2_scale, fresh)
    cached = _score_cache.get(key)
    if cached is None:
        cached = score(observations.build(latest, now, spo2_scale=spo2_scale).observations)
        if len(_score_cache) >= _SCORE_CACHE_SIZE:
            _score_cache.clear()
        _score_cache[key] = cached
    return cached


def is_stale(code: str, measured_at: dt.datetime, now: dt.datetime) -> bool:
    """A NEWS2 value past its staleness window (other codes are never stale here)."""
    return code in STALENESS_BY_CODE and not _fresh(code, measured_at, now)


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
        missing = tuple(p.value for p in _PARAMETERS if p.value in stored.missing)
        frequency, interval = monitoring_advice(stored.total, Risk(stored.risk), missing)
        return ScoreView(
            total=stored.total, risk=stored.risk, complete=stored.complete,
            missing=missing, any_single_3=stored.any_single_3,
            computed_at=stored.computed_at, source="stored", sub_scores=stored.sub_scores,
            monitoring_frequency=frequency, monitoring_interval=interval,
        )
    if newest is None:
        return None
    result = _live_score(latest, spo2_scale=spo2_scale, now=now)
    if len(result.missing) == len(Parameter):
        return None  # every parameter stale: there is nothing to score
    return _view_of(result, newest)


def due_report(latest: Mapping[str, Latest], *, last: LastComplete | None,
               kit: Sequence[tuple[str, str]], admitted_at: dt.datetime | None,
               spo2_scale: int, now: dt.datetime) -> DueReport | None:
    """Per-parameter due and overdue times: `alerting.due.due`, exactly as the alert rule
    calls it (`kit` is the (device id, kind) of each active device assigned now)."""
    fresh = any(_fresh(code, reading.measured_at, now) for code, reading in latest.items())
    # The same score alerting.due.current_score would compute, from this module's cache.
    scored = _live_score(latest, spo2_scale=spo2_scale, now=now) if fresh else None
    return due_rule.due(latest, last=last, kit=due_rule.kit_codes(kit, latest),
                        admitted_at=admitted_at, scored=scored,
                        spo2_scale=spo2_scale, now=now, config=_RULES)


def is_overdue_at(deadline: dt.datetime | None, now: dt.datetime) -> bool:
    return deadline is None or now > deadline


def fresh_until(latest: Mapping[str, Latest], now: dt.datetime) -> dt.datetime | None:
    """When the first NEWS2 parameter fresh at `now` goes stale (a live score then changes)."""
    ends = [reading.measured_at + STALENESS_BY_CODE[code] for code, reading in latest.items()
            if _fresh(code, reading.measured_at, now)]
    return min(ends) if ends else None


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


def sort_key(current: ScoreView | None, last_obs: dt.datetime | None,
             alert_band: str | None = None) -> tuple[int, int, float]:
    """Ascending sort key, most acute first: band, total, then longest without observations.

    The band is the higher of the score's and the open NEWS2 alert's (`alert_band`), so a
    row never sorts below the alert it carries. No `now`: the oldest last observation is the
    longest unobserved at every instant, so a cached row's key never goes stale."""
    band = RISK_RANK[current.band] if current is not None else RISK_RANK["none"]
    if alert_band is not None:
        band = max(band, RISK_RANK.get(alert_band, 0))
    total = current.total if current is not None else -1
    last = last_obs.timestamp() if last_obs is not None else float("-inf")
    return (-band, -total, last)


#: Alert kinds whose severity is a NEWS2 band (Chart 2): the row's band may not sit below them.
BAND_ALERT_KINDS = frozenset({"news2"})


def alert_band(alerts: Sequence[tuple[str, str]]) -> str | None:
    """The highest band among open NEWS2 alerts, from (kind, severity) pairs."""
    bands = [sev for kind, sev in alerts if kind in BAND_ALERT_KINDS and sev in RISK_RANK]
    return max(bands, key=lambda b: RISK_RANK[b]) if bands else None


def ordered(rows: Sequence[tuple[tuple[int, int, float], int]]) -> list[int]:
    """Patient ids ordered by their sort keys (ties by id, for a stable screen)."""
    return [pid for _, pid in sorted(rows)]
