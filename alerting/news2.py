"""NEWS2 scoring: the chart as data, and a pure scalar scorer over it.

Source: Royal College of Physicians, *National Early Warning Score (NEWS) 2*, December 2017 —
Chart 1 (scoring), Chart 2 (thresholds and triggers), Chart 4 (clinical response), as restated
in ``shared/clinical/NEWS2.md``. The band tables below are meant to be checked line by line
against Chart 1 by a clinician; every band is inclusive at both ends.

This module must never do I/O, read a clock, or log. It is imported by the hub, the
vectorised scorer (:mod:`alerting.news2_vector`, which derives its thresholds from the tables
here) and the CSV audit tool.

Rules that are ours rather than the chart's, and are shown wherever a score is shown:

* **Quantisation.** A raw value is first brought to chart resolution (whole numbers for
  respiration rate, SpO2, systolic BP and pulse; 0.1 °C for temperature) by *round half up on
  the decimal value*; see :func:`quantise`. The raw value is kept by the caller; the quantised
  value is scored and reported in :attr:`News2Score.quantised`.
* **Missing is never normal.** A parameter given as ``None`` is listed in
  :attr:`News2Score.missing` and contributes nothing; the total of such a *partial* score is a
  lower bound on the true total, and its risk band and monitoring frequency are computed from
  that partial total, so missing data can never lower a band below what the present data show.
* **Scale 2 with unknown air/oxygen.** On Scale 2, SpO2 ≥ 93 % scores 0 on air but 1-3 on
  oxygen. When ``on_oxygen`` is ``None`` the SpO2 sub-score is taken from the *on air* row —
  the lowest value consistent with the data (identical to the oxygen row below 93 %) — and
  air/oxygen is reported missing, so the score is partial and its total still a lower bound.
"""

from __future__ import annotations

import datetime
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from types import MappingProxyType
from typing import Final


class News2Error(ValueError):
    """Base class for errors raised by the NEWS2 scorer."""


class ObservationError(News2Error):
    """An observation value the scorer cannot accept (wrong type, non-finite, bad scale)."""


class Consciousness(enum.StrEnum):
    """ACVPU. ``C`` is *new* confusion; it scores 3 like V, P and U."""

    A = "A"
    C = "C"
    V = "V"
    P = "P"
    U = "U"


class Risk(enum.StrEnum):
    """Chart 2 clinical risk, lowest first."""

    LOW = "low"
    LOW_MEDIUM = "low_medium"
    MEDIUM = "medium"
    HIGH = "high"


class Parameter(enum.StrEnum):
    """The seven NEWS2 parameters, in chart order."""

    RESP_RATE = "resp_rate"
    SPO2 = "spo2"
    AIR_OR_OXYGEN = "air_or_oxygen"
    SYSTOLIC_BP = "systolic_bp"
    PULSE = "pulse"
    CONSCIOUSNESS = "consciousness"
    TEMPERATURE = "temperature"


@dataclass(frozen=True)
class Band:
    """One cell of Chart 1: ``low <= value <= high`` scores ``points``; ``None`` is open-ended."""

    low: Decimal | None
    high: Decimal | None
    points: int


Bands = tuple[Band, ...]


def _band(low: str | None, high: str | None, points: int) -> Band:
    return Band(
        None if low is None else Decimal(low),
        None if high is None else Decimal(high),
        points,
    )


# --- Chart 1, one table per printed row, lowest values first ---------------------------------
#                  low      high     points
RESP_RATE_BANDS: Final[Bands] = (
    _band(None,   "8",     3),
    _band("9",    "11",    1),
    _band("12",   "20",    0),
    _band("21",   "24",    2),
    _band("25",   None,    3),
)  # fmt: skip
SPO2_SCALE_1_BANDS: Final[Bands] = (
    _band(None,   "91",    3),
    _band("92",   "93",    2),
    _band("94",   "95",    1),
    _band("96",   None,    0),
)  # fmt: skip
SPO2_SCALE_2_AIR_BANDS: Final[Bands] = (
    _band(None,   "83",    3),
    _band("84",   "85",    2),
    _band("86",   "87",    1),
    _band("88",   None,    0),  # 88-92, or >= 93 on air
)  # fmt: skip
SPO2_SCALE_2_OXYGEN_BANDS: Final[Bands] = (
    _band(None,   "83",    3),
    _band("84",   "85",    2),
    _band("86",   "87",    1),
    _band("88",   "92",    0),
    _band("93",   "94",    1),  # on oxygen
    _band("95",   "96",    2),  # on oxygen
    _band("97",   None,    3),  # on oxygen
)  # fmt: skip
SYSTOLIC_BP_BANDS: Final[Bands] = (
    _band(None,   "90",    3),
    _band("91",   "100",   2),
    _band("101",  "110",   1),
    _band("111",  "219",   0),
    _band("220",  None,    3),
)  # fmt: skip
PULSE_BANDS: Final[Bands] = (
    _band(None,   "40",    3),
    _band("41",   "50",    1),
    _band("51",   "90",    0),
    _band("91",   "110",   1),
    _band("111",  "130",   2),
    _band("131",  None,    3),
)  # fmt: skip
TEMPERATURE_BANDS: Final[Bands] = (
    _band(None,   "35.0",  3),
    _band("35.1", "36.0",  1),
    _band("36.1", "38.0",  0),
    _band("38.1", "39.0",  1),
    _band("39.1", None,    2),
)  # fmt: skip

#: Air or oxygen is its own parameter, worth 2 on oxygen. It is never a "3".
AIR_OR_OXYGEN_POINTS: Final[Mapping[bool, int]] = MappingProxyType({False: 0, True: 2})
CONSCIOUSNESS_POINTS: Final[Mapping[Consciousness, int]] = MappingProxyType(
    {
        Consciousness.A: 0,
        Consciousness.C: 3,
        Consciousness.V: 3,
        Consciousness.P: 3,
        Consciousness.U: 3,
    }
)

#: Bands of the parameters scored from a single row, whatever the SpO2 scale.
BANDS: Final[Mapping[Parameter, Bands]] = MappingProxyType(
    {
        Parameter.RESP_RATE: RESP_RATE_BANDS,
        Parameter.SYSTOLIC_BP: SYSTOLIC_BP_BANDS,
        Parameter.PULSE: PULSE_BANDS,
        Parameter.TEMPERATURE: TEMPERATURE_BANDS,
    }
)
#: SpO2 rows keyed by (scale, on_oxygen). Scale 1 ignores oxygen; an unknown ``on_oxygen``
#: uses the ``False`` (on air) row, the lowest score consistent with the data.
SPO2_BANDS: Final[Mapping[tuple[int, bool], Bands]] = MappingProxyType(
    {
        (1, False): SPO2_SCALE_1_BANDS,
        (1, True): SPO2_SCALE_1_BANDS,
        (2, False): SPO2_SCALE_2_AIR_BANDS,
        (2, True): SPO2_SCALE_2_OXYGEN_BANDS,
    }
)
SPO2_SCALES: Final[frozenset[int]] = frozenset({1, 2})

#: Chart resolution: the step at which Chart 1 is printed.
RESOLUTION: Final[Mapping[Parameter, Decimal]] = MappingProxyType(
    {
        Parameter.RESP_RATE: Decimal(1),
        Parameter.SPO2: Decimal(1),
        Parameter.SYSTOLIC_BP: Decimal(1),
        Parameter.PULSE: Decimal(1),
        Parameter.TEMPERATURE: Decimal("0.1"),
    }
)

# --- Chart 2: clinical risk, evaluated in this order ------------------------------------------
HIGH_RISK_TOTAL: Final = 7  # total >= 7 -> high
MEDIUM_RISK_TOTAL: Final = 5  # total 5-6 -> medium
SINGLE_PARAMETER_TRIGGER: Final = 3  # any single parameter = 3 -> low-medium

RESPONSE: Final[Mapping[Risk, str]] = MappingProxyType(
    {
        Risk.HIGH: "emergency response",
        Risk.MEDIUM: "key threshold for urgent response",
        Risk.LOW_MEDIUM: "urgent ward-based response",
        Risk.LOW: "ward-based response",
    }
)


# --- Chart 4: minimum monitoring frequency ----------------------------------------------------
@dataclass(frozen=True)
class Monitoring:
    """A Chart 4 row. ``interval`` is the longest allowed gap; ``None`` means continuous."""

    frequency: str
    interval: datetime.timedelta | None


MONITORING_TOTAL_ZERO: Final = Monitoring("12-hourly", datetime.timedelta(hours=12))
#: "4-6-hourly" is a range; overdue alerts use its strict end (4 h), so a partial or borderline
#: patient is never left longer than the chart allows for any member of the band.
MONITORING: Final[Mapping[Risk, Monitoring]] = MappingProxyType(
    {
        Risk.LOW: Monitoring("4\N{EN DASH}6-hourly", datetime.timedelta(hours=4)),
        Risk.LOW_MEDIUM: Monitoring("1-hourly", datetime.timedelta(hours=1)),
        Risk.MEDIUM: Monitoring("1-hourly", datetime.timedelta(hours=1)),
        Risk.HIGH: Monitoring("continuous", None),
    }
)

Number = Decimal | float | int
#: Every parameter in Chart 1's order (iterating the enum class itself is slower).
_PARAMETERS: Final = tuple(Parameter)
_NUMERIC_FIELDS: Final = (
    Parameter.RESP_RATE,
    Parameter.SPO2,
    Parameter.SYSTOLIC_BP,
    Parameter.PULSE,
    Parameter.TEMPERATURE,
)
_NUMERIC_NAMES: Final = tuple((p, p.value) for p in _NUMERIC_FIELDS)


@dataclass(frozen=True)
class Observations:
    """One set of observations; ``None`` means the parameter is missing (never normal)."""

    resp_rate: Number | None = None
    spo2: Number | None = None
    on_oxygen: bool | None = None
    systolic_bp: Number | None = None
    pulse: Number | None = None
    consciousness: Consciousness | None = None
    temperature: Number | None = None
    spo2_scale: int = 1

    def __post_init__(self) -> None:
        for parameter, name in _NUMERIC_NAMES:
            _check_number(parameter, getattr(self, name))
        if self.on_oxygen is not None and not isinstance(self.on_oxygen, bool):
            raise ObservationError(f"on_oxygen must be a bool or None, got {self.on_oxygen!r}")
        if self.consciousness is not None and not isinstance(self.consciousness, Consciousness):
            raise ObservationError(
                f"consciousness must be a Consciousness or None, got {self.consciousness!r}"
            )
        if isinstance(self.spo2_scale, bool) or self.spo2_scale not in SPO2_SCALES:
            raise ObservationError(f"spo2_scale must be 1 or 2, got {self.spo2_scale!r}")


def _check_number(parameter: Parameter, value: object) -> None:
    if value is None:
        return
    if type(value) is float:  # the usual case, checked first (as below)
        if not math.isfinite(value):
            raise ObservationError(f"{parameter} must be finite, got {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, Decimal | float | int):
        raise ObservationError(f"{parameter} must be a number or None, got {value!r}")
    finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
    if not finite:
        raise ObservationError(f"{parameter} must be finite, got {value!r}")


def quantise(parameter: Parameter, value: Number) -> Decimal:
    """Bring ``value`` to Chart 1 resolution by round half up on its decimal value.

    Whole numbers for respiration rate, SpO2, systolic BP and pulse; 0.1 °C for temperature.
    A float is read as its shortest round-tripping decimal (``Decimal(str(x))``, i.e. what
    ``repr`` prints), not its exact binary value, so ``38.05`` -> ``38.1`` and ``20.5`` ->
    ``21`` although ``round()`` would give 38.0 and 20. Halves round away from zero.
    """
    # A float's result is kept (its decimal is a function of the float alone): vitals repeat
    # the same few values, and building the Decimal and its context was ~5 % of an alert
    # evaluation (issue 14). Not ±0.0 (equal keys, results of two signs), not ints or
    # Decimals (equal to floats as keys); bounded by clearing.
    if type(value) is float and value and parameter in RESOLUTION:
        key = (parameter, value)
        got = _QUANTISED.get(key)
        if got is None:
            got = _quantise(parameter, value)
            if len(_QUANTISED) >= QUANTISED_KEPT:
                _QUANTISED.clear()
            _QUANTISED[key] = got
        return got
    return _quantise(parameter, value)


#: How many (parameter, float) results :func:`quantise` keeps: a ward's vitals take a few
#: hundred distinct values per parameter at chart resolution (far fewer at the device's).
QUANTISED_KEPT: Final = 4096
_QUANTISED: dict[tuple[Parameter, float], Decimal] = {}


def _quantise(parameter: Parameter, value: Number) -> Decimal:
    step = RESOLUTION.get(parameter)
    if step is None:
        raise News2Error(f"{parameter} is not a numeric parameter")
    decimal = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not decimal.is_finite():
        raise ObservationError(f"{parameter} must be finite, got {value!r}")
    # Enough digits for the integer part of any finite value, so quantize never overflows.
    context = Context(prec=max(28, decimal.adjusted() + 3), rounding=ROUND_HALF_UP)
    return decimal.quantize(step, context=context)


def points_in(bands: Bands, value: Decimal) -> int:
    """Points of the band holding ``value`` (already at chart resolution)."""
    for band in bands:
        if (band.low is None or value >= band.low) and (band.high is None or value <= band.high):
            return band.points
    raise News2Error(f"no band holds {value}")  # the tables are contiguous; see the tests


@dataclass(frozen=True)
class News2Score:
    """A NEWS2 result. When ``complete`` is False the total is a lower bound (see module doc)."""

    total: int
    sub_scores: Mapping[Parameter, int]
    missing: frozenset[Parameter]
    complete: bool
    risk: Risk
    any_single_3: bool
    response: str
    monitoring_interval: datetime.timedelta | None
    monitoring_frequency: str
    spo2_scale: int
    quantised: Mapping[Parameter, Decimal]


def risk_of(total: int, *, any_single_3: bool) -> Risk:
    """Chart 2, evaluated in order. A single 3 never lowers a band."""
    if total >= HIGH_RISK_TOTAL:
        return Risk.HIGH
    if total >= MEDIUM_RISK_TOTAL:
        return Risk.MEDIUM
    if any_single_3:
        return Risk.LOW_MEDIUM
    return Risk.LOW


def monitoring_for(total: int, risk: Risk) -> Monitoring:
    """Chart 4 minimum monitoring frequency for a total and its Chart 2 risk."""
    return MONITORING_TOTAL_ZERO if total == 0 else MONITORING[risk]


def _numeric_values(obs: Observations) -> dict[Parameter, Number]:
    values: dict[Parameter, Number | None] = {p: getattr(obs, name) for p, name in _NUMERIC_NAMES}
    return {p: v for p, v in values.items() if v is not None}


def score(obs: Observations) -> News2Score:
    """Score one set of observations (quantised first; missing parameters reported)."""
    quantised = {p: quantise(p, v) for p, v in _numeric_values(obs).items()}
    sub_scores: dict[Parameter, int] = {
        p: points_in(BANDS[p], q) for p, q in quantised.items() if p in BANDS
    }
    if Parameter.SPO2 in quantised:
        spo2_bands = SPO2_BANDS[(obs.spo2_scale, bool(obs.on_oxygen))]
        sub_scores[Parameter.SPO2] = points_in(spo2_bands, quantised[Parameter.SPO2])
    if obs.on_oxygen is not None:
        sub_scores[Parameter.AIR_OR_OXYGEN] = AIR_OR_OXYGEN_POINTS[obs.on_oxygen]
    if obs.consciousness is not None:
        sub_scores[Parameter.CONSCIOUSNESS] = CONSCIOUSNESS_POINTS[obs.consciousness]
    ordered = {p: sub_scores[p] for p in _PARAMETERS if p in sub_scores}
    total = sum(ordered.values())
    any_single_3 = SINGLE_PARAMETER_TRIGGER in ordered.values()
    risk = risk_of(total, any_single_3=any_single_3)
    monitoring = monitoring_for(total, risk)
    missing = frozenset(p for p in _PARAMETERS if p not in ordered)
    return News2Score(
        total=total,
        sub_scores=MappingProxyType(ordered),
        missing=missing,
        complete=not missing,
        risk=risk,
        any_single_3=any_single_3,
        response=RESPONSE[risk],
        monitoring_interval=monitoring.interval,
        monitoring_frequency=monitoring.frequency,
        spo2_scale=obs.spo2_scale,
        quantised=MappingProxyType({p: quantised[p] for p in _PARAMETERS if p in quantised}),
    )
