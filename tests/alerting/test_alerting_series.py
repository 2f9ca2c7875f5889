"""The evaluator's readings windows as columns (alerting.series, issue 14): the store holds no
Evidence per reading between passes, its snapshots equal the tuples of Evidence a cold load
gives, and every rule decides on the columns exactly as on those tuples."""

from __future__ import annotations

import datetime as dt
import gc
from typing import Any

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting import rules, store
from alerting.candidates import Evidence
from alerting.care_plan import CarePlan
from alerting.observations import Latest
from alerting.series import Series
from alerting.snapshot import BaselineStat, PatientSnapshot

T0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)


def _evidence_alive() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is Evidence)


def test_the_kept_windows_hold_no_evidence_per_reading_and_equal_a_cold_load(
        db: psycopg.Connection[Any], add_patients: Any, readings: Any,
        write_readings: Any) -> None:
    ids = add_patients(db, 4, T0 - dt.timedelta(days=1))
    # Three hours of one-a-minute readings of four codes: 720 a patient.
    write_readings(db, [r for m in range(180, 0, -1) for pid in ids for r in readings(
        pid, T0 - m * MIN, spo2=95 + m % 3, pulse=70 + m % 5, resp_rate=16, temperature=36.8)])
    cache = store.EpisodeCache()
    before = _evidence_alive()
    kept: dict[int, PatientSnapshot] = {}
    for k in range(3):  # a cold pass, then two brought up to date
        at = T0 + k * MIN
        if k:
            write_readings(db, [r for pid in ids for r in readings(pid, at, spo2=94, pulse=75)])
        with db.transaction():
            kept, _ = store.load_batch(db, ids, at, cache)
        with db.transaction():
            cold, _ = store.load_batch(db, ids, at)
        assert kept == cold
        assert kept.keys() == cold.keys()
        for pid in ids:
            assert kept[pid].recent.keys() == cold[pid].recent.keys()
            for code, got in kept[pid].recent.items():
                assert isinstance(got, Series)
                assert tuple(got) == cold[pid].recent[code]
            assert isinstance(kept[pid].spo2_history, Series)
            assert tuple(kept[pid].spo2_history) == cold[pid].spo2_history
        del cold
    held = sum(len(e.ats) for codes in cache.series._by_patient.values() for e in codes.values())
    assert held > 1000  # the windows are held (an hour of each code, SpO2 three)...
    del kept
    # ...as columns: the cache adds no Evidence per reading (a few made while loading are
    # garbage by now; the old store held one per held reading).
    assert _evidence_alive() - before < 50


def _series(code: str, start: dt.datetime, values: list[float], devices: list[str],
            gaps: list[int]) -> tuple[Evidence, ...]:
    at, out = start, []
    for value, device, gap in zip(values, devices, gaps, strict=False):
        at += dt.timedelta(seconds=gap)
        out.append(Evidence(at, code, device, value))
    return tuple(sorted(out))


READINGS = st.integers(min_value=0, max_value=120)


@settings(max_examples=200, deadline=None)
@given(n=READINGS, spo2=st.lists(st.sampled_from([84.0, 88.0, 91.0, 94.0, 95.0, 96.0, 97.0]),
                                 min_size=120, max_size=120),
       pulse=st.lists(st.integers(55, 140), min_size=120, max_size=120),
       devices=st.lists(st.sampled_from(["a", "b"]), min_size=120, max_size=120),
       gaps=st.lists(st.sampled_from([0, 20, 60, 60, 60, 60, 60, 61, 300, 1800]),
                     min_size=120, max_size=120),
       newest_in=st.booleans(), baseline=st.booleans(), falling=st.booleans())
def test_the_rules_decide_on_columns_as_on_tuples(
        n: int, spo2: list[float], pulse: list[int], devices: list[str], gaps: list[int],
        newest_in: bool, baseline: bool, falling: bool) -> None:
    """Random windows (dense and sparse, two devices, readings at one instant, the newest
    reading in the window or not): the same evaluation from columns as from tuples."""
    start = T0 - dt.timedelta(hours=8)
    if falling:  # a steady fall (the falling-SpO2 rule's Firing)
        spo2 = sorted(spo2, reverse=True)
    recent = {"spo2": _series("spo2", start, spo2[:n], devices, gaps),
              "pulse": _series("pulse", start, [float(p) for p in pulse[:n]], devices, gaps)}
    latest = {}
    for code, rows in recent.items():
        if rows:
            e = rows[-1] if newest_in else Evidence(T0, code, rows[-1].device_id, rows[-1].value)
            latest[code] = Latest(code, e.measured_at, e.value, e.device_id)
    now = max([T0, *(e.measured_at for rows in recent.values() for e in rows)]) \
        - dt.timedelta(minutes=3 if newest_in else 0)
    bases = {} if not baseline else {
        "pulse": BaselineStat("pulse", 80.0, 4.0, 100, start, start),
        "spo2": BaselineStat("spo2", 96.0, 1.0, 100, start, start)}
    plain = PatientSnapshot(1, latest, CarePlan(1), spo2_history=recent["spo2"], recent=recent,
                            baselines=bases)
    columns = PatientSnapshot(
        1, latest, CarePlan(1), spo2_history=Series.of("spo2", recent["spo2"]),
        recent={code: Series.of(code, rows) for code, rows in recent.items()}, baselines=bases)
    assert columns == plain
    assert rules.evaluate(columns, now) == rules.evaluate(plain, now)
    # The same Series again (as the evaluator's kept windows are), at other instants: what a
    # rule remembered on them (Series.memo) answers only the question it was asked.
    for later in (dt.timedelta(seconds=1), dt.timedelta(minutes=16), -dt.timedelta(minutes=15),
                  dt.timedelta(0)):
        assert rules.evaluate(columns, now + later) == rules.evaluate(plain, now + later)


def test_a_series_is_the_sequence_it_stands_for() -> None:
    rows = _series("spo2", T0, [95.0, 94.0, 96.0, 93.0], ["a", "b", "a", "a"], [0, 60, 0, 60])
    s = Series.of("spo2", rows)
    assert s == rows
    assert rows == s
    assert list(s) == list(rows)
    assert list(reversed(s)) == list(reversed(rows))
    assert s[1:3] == rows[1:3]
    assert s[-1] == rows[-1]
    assert hash(s) == hash(rows)
    assert s != rows[:3]
    assert rows[2] in s


def test_a_kept_window_is_the_same_series_until_its_rows_change_and_an_empty_one_sees_a_first(
        db: psycopg.Connection[Any], add_patients: Any, readings: Any,
        write_readings: Any) -> None:
    """The cache hands out the very Series of a window whose rows did not change (what a
    rule may memoise on), a new one equal to a cold load's once they do (a new reading, the
    window sliding past one), and a code held with no reading at all (no perfusion index
    yet) is not loaded again each pass but still sees its first reading."""
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    write_readings(db, [r for m in range(30, 0, -1) for r in readings(
        pid, T0 - m * MIN, spo2=95 + m % 3, pulse=70 + m % 5)])
    cache = store.EpisodeCache()

    def load(at: dt.datetime) -> PatientSnapshot:
        with db.transaction():
            kept, _ = store.load_batch(db, [pid], at, cache)
        with db.transaction():
            cold, _ = store.load_batch(db, [pid], at)
        assert kept == cold
        return kept[pid]

    first = load(T0)
    assert "perfusion_index" not in first.recent
    loaded = cache.series.loaded
    again = load(T0 + dt.timedelta(seconds=1))  # nothing new, no reading leaves a window
    assert again.recent["spo2"] is first.recent["spo2"]
    assert again.recent["pulse"] is first.recent["pulse"]
    assert again.spo2_history is first.spo2_history
    assert again.latest["spo2"] is first.latest["spo2"]  # the same latest reading, reused
    assert cache.series.loaded == loaded  # the empty perfusion index was not loaded again
    assert cache.series.unchanged > 0
    write_readings(db, readings(pid, T0 + 2 * MIN, pulse=99, perfusion_index=0.2))
    later = load(T0 + 2 * MIN)
    assert later.recent["spo2"] is first.recent["spo2"]  # no new SpO2
    assert later.recent["pulse"] is not first.recent["pulse"]
    assert later.recent["pulse"][-1].value == 99
    assert later.latest["pulse"].value == 99
    assert later.latest["spo2"] is first.latest["spo2"]
    assert [e.value for e in later.recent["perfusion_index"]] == [0.2]
    assert cache.series.loaded == loaded + 1
    # An hour on, the first readings have left the window: new Series, equal to a cold load.
    slid = load(T0 + 60 * MIN - 15 * MIN // 10)
    assert slid.recent["spo2"] is not first.recent["spo2"]


def test_a_remembered_answer_is_the_answer_to_the_same_question_only() -> None:
    """Series.memo (the continuous filter's pick remembered on a kept window): asked again with
    an equal newest reading it is the computed answer; with another newest it is computed
    for that one, as a Series without a memo answers."""
    from alerting.artefacts import CONTINUOUS_MIN, MEDIAN_WINDOW
    from alerting.medians import Tie
    from alerting.series import window_level
    rows = _series("pulse", T0, [70.0, 90.0, 71.0, 72.0, 95.0], ["a"] * 5, [60] * 5)
    s = Series.of("pulse", rows)
    newest = Latest("pulse", rows[-1].measured_at, rows[-1].value, "a")
    first = window_level(s, newest, MEDIAN_WINDOW, CONTINUOUS_MIN, tie=Tie.LOWER)
    assert first is not None
    assert first.value == 72.0
    same = Latest("pulse", rows[-1].measured_at, rows[-1].value, "a")
    assert window_level(s, same, MEDIAN_WINDOW, CONTINUOUS_MIN, tie=Tie.LOWER) is first
    later = Latest("pulse", rows[-1].measured_at + 2 * MIN, 40.0, "a")  # not in the series yet
    fresh = Series.of("pulse", rows)
    for newer in (later, Latest("pulse", rows[-1].measured_at, 95.0, "b")):
        got = window_level(s, newer, MEDIAN_WINDOW, CONTINUOUS_MIN, tie=Tie.LOWER)
        assert got == window_level(Series.of("pulse", rows), newer, MEDIAN_WINDOW,
                                   CONTINUOUS_MIN, tie=Tie.LOWER)
    assert window_level(s, later, MEDIAN_WINDOW, CONTINUOUS_MIN, tie=Tie.LOWER) != first
    assert window_level(s, newest, MEDIAN_WINDOW, 99, tie=Tie.LOWER) is None  # the key's minimum
    assert window_level(fresh, newest, MEDIAN_WINDOW, CONTINUOUS_MIN, tie=Tie.LOWER) == first


def test_a_remembered_level_is_that_of_the_readings_its_window_covers() -> None:
    """series.level remembered on a kept window (the trend's looks, pass after pass): each
    instant's level is that of the readings in its own window, as a fresh Series computes."""
    from alerting import series, trend
    rows = _series("pulse", T0, [70.0 + (m % 7) + m / 4 for m in range(90)], ["a"] * 90,
                   [60] * 90)
    kept = Series.of("pulse", rows)
    for minutes in (90, 89, 75, 60, 45, 90, 30, 75):
        at = T0 + minutes * MIN
        got = series.level(kept, at, trend.LEVEL_WINDOW, trend.CONTINUOUS_LEVEL)
        assert got == series.level(Series.of("pulse", rows), at, trend.LEVEL_WINDOW,
                                   trend.CONTINUOUS_LEVEL)
        assert got is not None
        assert got[1][1].measured_at == at
