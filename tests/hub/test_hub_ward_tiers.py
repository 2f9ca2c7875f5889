"""Risk tiers kept with the cached ward rows (`wardcache.tiers`): computed once per row, in one
call for all the rows that need it, again when the row is recomputed or the tier is older
than `TIER_MAX_AGE` (pure: the assess function is a recorder, the rows stand-ins)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ward.hub import wardcache
from ward.hub.wardcache import TIER_MAX_AGE, Entry

T0 = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)


@dataclass
class _Row:
    patient_id: int


class _Assess:
    """Tier "t<patient>@<minute>", or none for patients in `absent`; records each call."""

    def __init__(self, absent: frozenset[int] = frozenset()) -> None:
        self.calls: list[list[int]] = []
        self.absent = absent

    def __call__(self, conn: Any, ids: Sequence[int], now: dt.datetime) -> dict[int, str]:
        self.calls.append(list(ids))
        return {p: f"t{p}@{now.minute}" for p in ids if p not in self.absent}


def _entries(*pids: int) -> list[Entry]:
    return [Entry(_Row(p), gen=1) for p in pids]  # type: ignore[arg-type]


def test_tiers_are_computed_once_then_kept_until_they_are_too_old() -> None:
    assess, entries = _Assess(), _entries(1, 2, 3)
    tiers, fresh = wardcache.tiers(None, entries, T0, assess)  # type: ignore[arg-type]
    assert tiers == fresh == {1: "t1@0", 2: "t2@0", 3: "t3@0"}
    assert assess.calls == [[1, 2, 3]]
    almost = T0 + TIER_MAX_AGE - dt.timedelta(microseconds=1)
    assert wardcache.tiers(None, entries, almost, assess) == (  # type: ignore[arg-type]
        {1: "t1@0", 2: "t2@0", 3: "t3@0"}, {})
    assert len(assess.calls) == 1
    later = T0 + TIER_MAX_AGE
    tiers, fresh = wardcache.tiers(None, entries, later, assess)  # type: ignore[arg-type]
    assert tiers == fresh == {1: "t1@1", 2: "t2@1", 3: "t3@1"}


def test_a_recomputed_row_gets_a_new_tier_and_only_it_is_assessed() -> None:
    assess, entries = _Assess(), _entries(1, 2)
    wardcache.tiers(None, entries, T0, assess)  # type: ignore[arg-type]
    entries[1] = Entry(_Row(2), gen=2)  # the cache recomputed patient 2's row (new memo)
    now = T0 + dt.timedelta(seconds=5)
    tiers, fresh = wardcache.tiers(None, entries, now, assess)  # type: ignore[arg-type]
    assert assess.calls[-1] == [2]
    assert (tiers, fresh) == ({1: "t1@0", 2: "t2@0"}, {2: "t2@0"})


def test_no_tier_is_kept_as_none_and_a_clock_moved_back_recomputes() -> None:
    assess, entries = _Assess(absent=frozenset({2})), _entries(1, 2)
    assert wardcache.tiers(None, entries, T0, assess)[0] == {1: "t1@0"}  # type: ignore[arg-type]
    assert wardcache.tiers(None, entries, T0, assess)[1] == {}  # type: ignore[arg-type]
    earlier = T0 - dt.timedelta(minutes=1)
    wardcache.tiers(None, entries, earlier, assess)  # type: ignore[arg-type]
    assert assess.calls[-1] == [1, 2]
