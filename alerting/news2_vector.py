"""Vectorised NEWS2 scoring over NumPy arrays, for replays and backtests.

Same chart, same rules and same answers as the scalar scorer :func:`alerting.news2.score`
(Royal College of Physicians NEWS2, 2017, Charts 1, 2 and 4): every threshold here is
*derived* from the band tables in :mod:`alerting.news2`; there is no second copy of the chart.
This module must never do I/O, read a clock, or log.

Inputs (all the same shape):

* ``resp_rate``, ``spo2``, ``systolic_bp``, ``pulse``, ``temperature``: float arrays, NaN
  for missing. Values must otherwise be finite (±inf is not a reading).
* ``on_oxygen``: float array of 0 (air), 1 (oxygen) or NaN (missing).
* ``consciousness``: int codes 0..4 for A, C, V, P, U (:data:`CONSCIOUSNESS_CODES`), -1 missing.
* ``spo2_scale``: int array of 1 or 2.

How quantisation is matched exactly, without strings or tolerances
-------------------------------------------------------------------
The scalar scorer rounds ``Decimal(repr(x))`` half up to chart resolution, then looks the
result up in inclusive bands. A quantised value reaches band ``low`` exactly when the decimal
value is at least the midpoint ``m = low - step/2`` (e.g. 20.5, 38.05). For a float ``x`` and
any decimal ``m``::

    Decimal(repr(x)) >= m   <=>   x >= float(m)

because ``repr(x)`` is a decimal that rounds (to nearest) back to ``x``, ``float(m)`` is the
nearest float to ``m``, and rounding to nearest is monotonic: if ``x >= float(m)`` but
``repr(x) < m`` then ``x = round(repr(x)) <= round(m) = float(m)``, so ``x == float(m)``,
whose shortest repr *is* ``m`` — a contradiction; the converse is symmetric. So comparing the
raw float with ``float(midpoint)`` reproduces ``Decimal(str(x))`` + ``ROUND_HALF_UP`` exactly
(38.05 scores as 38.1; 20.5 as 21; 20.4999 as 20), for every finite float. Negative values sit
below every midpoint on both paths. The Hypothesis tests check this against the scalar scorer.

Speed: each row family is scored by counting the midpoints at or below the value (one
comparison per midpoint, which is what ``np.searchsorted(..., side="right")`` computes, but
about 3x faster than it for four to nine midpoints) and then looking the count up in a points
table. Work is done in cache-sized chunks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from types import MappingProxyType
from typing import Final

import numpy as np
from numpy.typing import NDArray

from alerting import news2
from alerting.news2 import Bands, Consciousness, Parameter, Risk

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.integer]
Int8Array = NDArray[np.int8]
BoolArray = NDArray[np.bool_]

#: Consciousness code -> level; code ``i`` is ``CONSCIOUSNESS_CODES[i]``, -1 is missing.
CONSCIOUSNESS_CODES: Final[tuple[Consciousness, ...]] = tuple(Consciousness)
#: Risk code -> risk, lowest first; code ``i`` is ``RISK_CODES[i]``.
RISK_CODES: Final[tuple[Risk, ...]] = (Risk.LOW, Risk.LOW_MEDIUM, Risk.MEDIUM, Risk.HIGH)
MISSING: Final = -1

# 65,536 rows x ~10 live temporaries of 1-8 bytes stays within a 2 MB L2 cache; larger chunks
# measured slower on the 2-core reference machine, smaller ones pay Python overhead per chunk.
CHUNK_ROWS: Final = 1 << 16


class VectorInputError(news2.News2Error):
    """Arrays the vectorised scorer cannot accept (shape mismatch, invalid codes)."""


@dataclass(frozen=True)
class ObservationArrays:
    """Column arrays of observation sets; see the module docstring for encodings."""

    resp_rate: FloatArray
    spo2: FloatArray
    on_oxygen: FloatArray
    systolic_bp: FloatArray
    pulse: FloatArray
    consciousness: IntArray
    temperature: FloatArray
    spo2_scale: IntArray


@dataclass(frozen=True)
class News2Arrays:
    """Vectorised results; ``sub_scores`` hold -1 where a parameter is missing."""

    total: Int8Array
    sub_scores: Mapping[Parameter, Int8Array]
    risk: Int8Array
    any_single_3: BoolArray
    complete: BoolArray

    def risks(self) -> list[Risk]:
        """The risk codes as :class:`Risk` values (slow; for display and tests)."""
        return [RISK_CODES[code] for code in self.risk.ravel().tolist()]


@dataclass(frozen=True)
class _Family:
    """Rows of one parameter sharing midpoints: ``table[row, count of midpoints <= x]``."""

    midpoints: tuple[float, ...]
    table: Int8Array


def _family(step: Decimal, rows: tuple[Bands, ...]) -> _Family:
    half = step / 2
    lows = sorted({b.low for bands in rows for b in bands if b.low is not None})
    midpoints = tuple(float(low - half) for low in lows)
    table = np.empty((len(rows), len(lows) + 1), dtype=np.int8)
    for r, bands in enumerate(rows):
        for i, low in enumerate([None, *lows]):
            # Any value quantising into [low, next low) scores as ``low`` does.
            value = lows[0] - step if low is None else low
            table[r, i] = news2.points_in(bands, value)
    return _Family(midpoints, table)


_FAMILIES: Final[Mapping[Parameter, _Family]] = MappingProxyType(
    {p: _family(news2.RESOLUTION[p], (bands,)) for p, bands in news2.BANDS.items()}
)
#: SpO2 row index = 2 * (scale - 1) + on_oxygen, with unknown oxygen read as air (False).
_SPO2_KEYS: Final = ((1, False), (1, True), (2, False), (2, True))
_SPO2_FAMILY: Final = _family(
    news2.RESOLUTION[Parameter.SPO2], tuple(news2.SPO2_BANDS[k] for k in _SPO2_KEYS)
)
_AIR_OR_OXYGEN_POINTS: Final = np.array(
    [news2.AIR_OR_OXYGEN_POINTS[False], news2.AIR_OR_OXYGEN_POINTS[True]], dtype=np.int8
)
# Index 0 is the missing code (-1) shifted by one.
_CONSCIOUSNESS_POINTS: Final = np.array(
    [MISSING, *(news2.CONSCIOUSNESS_POINTS[c] for c in CONSCIOUSNESS_CODES)], dtype=np.int8
)


def _midpoints_at_or_below(x: FloatArray, midpoints: tuple[float, ...]) -> Int8Array:
    count = np.zeros(x.shape, dtype=np.int8)
    for midpoint in midpoints:
        np.add(count, x >= midpoint, out=count, casting="unsafe")
    return count


def _banded(x: FloatArray, family: _Family, row: IntArray | int = 0) -> Int8Array:
    count = _midpoints_at_or_below(x, family.midpoints)
    points = np.asarray(family.table[row, count], dtype=np.int8)
    points[np.isnan(x)] = MISSING
    return points


def _sub_scores(obs: ObservationArrays, part: slice) -> dict[Parameter, Int8Array]:
    oxygen = obs.on_oxygen[part]
    oxygen_known = ~np.isnan(oxygen)
    on_oxygen = (oxygen == 1).astype(np.intp)  # NaN compares False: unknown reads as air
    spo2_row = 2 * (obs.spo2_scale[part].astype(np.intp) - 1) + on_oxygen
    air_or_oxygen = _AIR_OR_OXYGEN_POINTS[on_oxygen]
    air_or_oxygen[~oxygen_known] = MISSING
    scores = {p: _banded(getattr(obs, p.value)[part], f) for p, f in _FAMILIES.items()}
    scores[Parameter.SPO2] = _banded(obs.spo2[part], _SPO2_FAMILY, spo2_row)
    scores[Parameter.AIR_OR_OXYGEN] = air_or_oxygen
    scores[Parameter.CONSCIOUSNESS] = _CONSCIOUSNESS_POINTS[obs.consciousness[part] + 1]
    return {p: scores[p] for p in Parameter}


def _risk_codes(total: Int8Array, any_single_3: BoolArray) -> Int8Array:
    risk = any_single_3.astype(np.int8)  # LOW (0) or LOW_MEDIUM (1)
    risk[total >= news2.MEDIUM_RISK_TOTAL] = RISK_CODES.index(Risk.MEDIUM)
    risk[total >= news2.HIGH_RISK_TOTAL] = RISK_CODES.index(Risk.HIGH)
    return risk


def _validate(obs: ObservationArrays) -> int:
    shape = np.shape(obs.resp_rate)
    for name in (f.name for f in fields(obs)):
        if np.shape(getattr(obs, name)) != shape:
            raise VectorInputError(f"{name} has shape {np.shape(getattr(obs, name))}, not {shape}")
    if not np.isin(obs.spo2_scale, sorted(news2.SPO2_SCALES)).all():
        raise VectorInputError("spo2_scale values must be 1 or 2")
    oxygen = obs.on_oxygen
    if not ((oxygen == 0) | (oxygen == 1) | np.isnan(oxygen)).all():
        raise VectorInputError("on_oxygen values must be 0, 1 or NaN")
    if obs.consciousness.size and not (
        obs.consciousness.min() >= MISSING and obs.consciousness.max() < len(CONSCIOUSNESS_CODES)
    ):
        raise VectorInputError("consciousness codes must be -1 (missing) or 0..4 (A, C, V, P, U)")
    return int(np.prod(shape))


def score_arrays(obs: ObservationArrays) -> News2Arrays:
    """Score many observation sets at once; agrees with :func:`alerting.news2.score`."""
    n = _validate(obs)
    flat = ObservationArrays(**{f.name: np.ravel(getattr(obs, f.name)) for f in fields(obs)})
    total = np.empty(n, dtype=np.int8)
    any3 = np.empty(n, dtype=np.bool_)
    complete = np.empty(n, dtype=np.bool_)
    subs = {p: np.empty(n, dtype=np.int8) for p in Parameter}
    for start in range(0, n, CHUNK_ROWS):
        part = slice(start, start + CHUNK_ROWS)
        chunk = _sub_scores(flat, part)
        stacked = np.stack(list(chunk.values()))
        for p, values in chunk.items():
            subs[p][part] = values
        total[part] = np.where(stacked > 0, stacked, 0).sum(axis=0, dtype=np.int8)
        any3[part] = (stacked == news2.SINGLE_PARAMETER_TRIGGER).any(axis=0)
        complete[part] = (stacked != MISSING).all(axis=0)
    shape = obs.resp_rate.shape
    return News2Arrays(
        total=total.reshape(shape),
        sub_scores=MappingProxyType({p: a.reshape(shape) for p, a in subs.items()}),
        risk=_risk_codes(total, any3).reshape(shape),
        any_single_3=any3.reshape(shape),
        complete=complete.reshape(shape),
    )
