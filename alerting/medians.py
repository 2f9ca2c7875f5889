"""The one median of the alerting core, with its tie rules named.

An odd window has one middle. An even window has two, and which one a rule takes is a clinical
choice, not an implementation detail, so every median in the core (the 5-minute artefact
filter and the 15-minute SpO2 target level, :mod:`alerting.artefacts`; the trend's levels,
:mod:`alerting.trend`) is computed here and names its :class:`Tie`:

* :attr:`Tie.LOWER` — the lower middle, a real reading. For a sign harmful in both directions
  (pulse, respiration rate: NEWS2 scores both ends) neither middle is the safer one; the
  lower is the convention kept since the filter was written. Also the 15-minute SpO2 target
  level on purpose: there a tie is half a quarter-hour of low readings, a sustained
  desaturation (measured, branch ``doubt``: the upper middle lost a deterioration's catch).
* :attr:`Tie.UPPER` — the upper middle, a real reading. For a sign harmful in one direction
  only, low (SpO2, ``artefacts.SAFER_HIGH``), in the 5-minute filter: a low value then
  reaches the rules only when a strict majority of the window holds it — the persistence the
  filter is for (two artefacts among four readings are not a majority).
* :attr:`Tie.MIDPOINT` — the mean of the two middles (``statistics.median``): not a reading
  but a number, for a level that is charted as a statistic (the trend's 15-minute levels and
  its baseline), where evidence is the window's first and last readings and the textbook
  median is what the chart's in-control model assumes.

Readings are ordered by value, then by time (an earlier reading first among equal values),
so the middle reading is the same whatever order the window came in.

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

from alerting.candidates import Evidence


class Tie(enum.Enum):
    """Which middle an even window's median takes (see the module doc for each one's reason)."""

    LOWER = "lower"
    UPPER = "upper"
    MIDPOINT = "midpoint"


def middle_index(n: int, tie: Tie) -> int:
    """Index of the middle of ``n`` (> 0) ordered items: for an even ``n`` the lower or upper
    middle (:attr:`Tie.MIDPOINT` has no single index: ValueError)."""
    if n <= 0:
        raise ValueError("the median of nothing")
    if tie is Tie.LOWER:
        return (n - 1) // 2
    if tie is Tie.UPPER:
        return n // 2
    raise ValueError(f"{tie} is not one reading; use median_value")


def median_evidence(window: Iterable[Evidence], tie: Tie) -> Evidence:
    """The middle reading of ``window`` ordered by value, then time (``tie``: LOWER or UPPER,
    a real reading, so the evidence stays traceable)."""
    ordered = sorted(window, key=lambda e: (e.value, e.measured_at))
    return ordered[middle_index(len(ordered), tie)]


def median_value(values: Iterable[float], tie: Tie = Tie.MIDPOINT) -> float:
    """The median of ``values``; :attr:`Tie.MIDPOINT` is exactly ``statistics.median``."""
    ordered: Sequence[float] = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("the median of nothing")
    if tie is Tie.MIDPOINT and n % 2 == 0:
        i = n // 2
        return (ordered[i - 1] + ordered[i]) / 2
    return ordered[middle_index(n, Tie.LOWER if tie is Tie.MIDPOINT else tie)]
