"""One patient's readings of one code as columns: the rules' window reads without an object
per reading.

A :class:`Series` is a :class:`~collections.abc.Sequence` of
:class:`~alerting.candidates.Evidence`, oldest first, held as parallel tuples (measured-at,
measured-at in microseconds since the epoch, value, device id) of one code. It equals the
tuple of Evidence it stands for (``Series == tuple`` compares reading by reading), and
indexing or iterating makes an Evidence only for the readings asked for. Why: the evaluator's
:class:`alerting.store.SeriesCache` held one Evidence per reading of every patient's hour (six
hours of SpO2) and the trend and filter walked them all every pass; as columns the windows
are found by bisecting integers, the garbage collector has a few tuples to look at instead of
hundreds of thousands of objects, and the memory stays flat (issue 14).

A Series is always in measured-at order (the store loads it ``ORDER BY measured_at, …``;
:meth:`Series.of` checks), so the rules' fast paths (``alerting.artefacts``,
``alerting.trend``, ``alerting.rules``) may bisect it; a plain tuple (a replay's, a test's)
takes the rules' original path, reading by reading.

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from itertools import pairwise, repeat
from typing import Any, Final, TypeVar, cast, final, overload

from alerting.candidates import Evidence
from alerting.medians import Tie, median_value, middle_index
from alerting.observations import Latest

EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROSECOND: Final = dt.timedelta(microseconds=1)
T = TypeVar("T")


def micros(at: dt.datetime) -> int:
    """An aware instant in microseconds since the epoch (exact: datetimes hold microseconds)."""
    return (at - EPOCH) // MICROSECOND


def span_micros(span: dt.timedelta) -> int:
    return span // MICROSECOND


@final
class Series(Sequence[Evidence]):
    """Readings of one code, oldest first, as columns (see the module's note). The rules test
    ``type(x) is Series``: an ABC's ``isinstance`` of a tuple cost more than the test saved."""

    __slots__ = ("_memo", "at", "code", "device", "us", "value")

    def __init__(self, code: str, at: tuple[dt.datetime, ...], us: tuple[int, ...],
                 value: tuple[float, ...], device: tuple[str, ...]) -> None:
        self.code = code
        self.at = at
        self.us = us
        self.value = value
        self.device = device
        self._memo: dict[Hashable, Any] | None = None

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, remembered under ``key`` for the life of this Series. Only for a
        pure function of this (immutable) Series and of what ``key`` holds: then the answer
        is the one computing it again gives. Why: the evaluator keeps a window's Series
        while its rows do not change (``alerting.store._Series.tail``) and most of a
        patient's codes get no new reading in a pass, so their filter's pick is the same
        question again (issue 14)."""
        memo = self._memo
        if memo is None:
            memo = self._memo = {}
        elif key in memo:
            return cast(T, memo[key])
        elif len(memo) >= 8:  # bounded: a few questions a pass, a Series lives minutes
            memo.clear()
        got = memo[key] = compute()
        return got

    @classmethod
    def of(cls, code: str, items: Iterable[Evidence]) -> Series:
        """The Series of ``items`` (all of ``code``, in measured-at order: else ValueError)."""
        rows = tuple(items)
        us = tuple(micros(e.measured_at) for e in rows)
        if any(e.code != code for e in rows) or any(b < a for a, b in pairwise(us)):
            raise ValueError(f"not one code's readings in measured-at order: {rows!r}")
        return cls(code, tuple(e.measured_at for e in rows), us, tuple(e.value for e in rows),
                   tuple(e.device_id for e in rows))

    def __len__(self) -> int:
        return len(self.us)

    @overload
    def __getitem__(self, i: int) -> Evidence: ...

    @overload
    def __getitem__(self, i: slice) -> Series: ...

    def __getitem__(self, i: int | slice) -> Evidence | Series:
        if isinstance(i, slice):
            return Series(self.code, self.at[i], self.us[i], self.value[i], self.device[i])
        return Evidence(self.at[i], self.code, self.device[i], self.value[i])

    def __iter__(self) -> Iterator[Evidence]:
        return map(Evidence, self.at, repeat(self.code), self.device, self.value)

    def __reversed__(self) -> Iterator[Evidence]:
        return map(Evidence, reversed(self.at), repeat(self.code), reversed(self.device),
                   reversed(self.value))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Series):
            return len(self) == len(other) and (not self.us or self.code == other.code) \
                and self.at == other.at and self.value == other.value \
                and self.device == other.device
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))  # as the tuple it equals

    def __repr__(self) -> str:
        return f"Series({self.code!r}, {tuple(self)!r})"

    def upto(self, at_us: int) -> int:
        """The number of readings measured at or before ``at_us`` (µs since the epoch)."""
        return bisect.bisect_right(self.us, at_us)

    def since(self, at_us: int) -> int:
        """The index of the first reading measured at or after ``at_us``."""
        return bisect.bisect_left(self.us, at_us)

    def latest(self, i: int) -> Latest:
        return Latest(self.code, self.at[i], self.value[i], self.device[i])

    def median_index(self, indices: Sequence[int], tie: Tie = Tie.LOWER) -> int:
        """``alerting.medians.median_evidence`` over the readings at ``indices``: ordered by
        value, then time; an even count's middle by ``tie``."""
        value, us = self.value, self.us
        ordered = sorted(indices, key=lambda i: (value[i], us[i]))
        return ordered[middle_index(len(ordered), tie)]


def window_level(history: Series, newest: Latest, span: dt.timedelta, minimum: int, *,
                 tie: Tie) -> Latest | None:
    """``alerting.artefacts``' continuous filter over a Series: the median reading of the
    newest's device in the ``span`` up to it (and the newest itself), when they are at least
    ``minimum``; None otherwise. What ``artefacts._window`` + ``level_reading`` pick, found
    by bisection (the history is in measured-at order); remembered on ``history``
    (:meth:`Series.memo`: a pure function of the two and the constants)."""
    return history.memo(("window_level", newest, span, minimum, tie),
                        lambda: _window_level(history, newest, span, minimum, tie))


def _window_level(history: Series, newest: Latest, span: dt.timedelta, minimum: int,
                  tie: Tie) -> Latest | None:
    end = micros(newest.measured_at)
    lo, hi = history.upto(end - span_micros(span)), history.upto(end)
    if hi - lo + 1 < minimum:
        return None
    device, values, us = history.device, history.value, history.us
    dev, value = newest.device_id, newest.value
    # The newest reading can only be one of those at its own instant: the window's last.
    member = history.code == newest.code and any(
        device[i] == dev and values[i] == value for i in range(history.since(end), hi))
    # (value, time, index): the window ordered as medians.median_evidence orders it, equals in window
    # order; the newest, when not in the history (loaded after it), last among equals (as
    # artefacts.apply appends it to the window).
    if device[lo:hi].count(dev) == hi - lo:  # one device, the usual case: the whole window
        ordered = list(zip(values[lo:hi], us[lo:hi], range(lo, hi), strict=True))
    else:
        ordered = [(values[i], us[i], i) for i in range(lo, hi) if device[i] == dev]
    if not member:
        ordered.append((value, end, hi))
    n = len(ordered)
    if n < minimum:
        return None
    ordered.sort()
    pick = ordered[middle_index(n, tie)][2]
    return newest if pick == hi else history.latest(pick)


def level(history: Series, now: dt.datetime, span: dt.timedelta, minimum: int,
          ) -> tuple[float, tuple[Evidence, Evidence]] | None:
    """``alerting.trend.level``'s continuous case over a Series: the median value of the
    readings measured in [now − span, now] and the first and last of them, when they are at
    least ``minimum``; remembered on ``history`` by the readings it covers (the trend's looks
    fall on the same readings pass after pass)."""
    now_us = micros(now)
    hi = history.upto(now_us)
    lo = history.since(now_us - span_micros(span))
    if hi - lo < minimum:
        return None
    return history.memo(("level", lo, hi), lambda: (
        median_value(history.value[lo:hi], Tie.MIDPOINT), (history[lo], history[hi - 1])))
