"""The message stream: byte-identical for a seed, ordered, partitionable; the live clock."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.clock import LiveClock
from simulators.engine import Engine, stream_digest
from simulators.scenario import load
from simulators.ward import build_ward
from ward.domain.nhs_number import is_valid
from ward.domain.patients import Pathway, ReferralSource

SPAN = dt.timedelta(hours=3)


def _digest(name: str, seed: int | None = None) -> tuple[str, int]:
    return stream_digest(Engine(load(name), seed=seed, duration=SPAN).messages())


def test_same_scenario_and_seed_give_a_byte_identical_stream() -> None:
    first, count = _digest("noisy-devices")
    again, count_again = _digest("noisy-devices")
    assert count > 1000
    assert (first, count) == (again, count_again)


def test_a_different_seed_gives_a_different_stream() -> None:
    assert _digest("noisy-devices")[0] != _digest("noisy-devices", seed=99)[0]


def test_messages_come_in_delivery_order_and_qos_1() -> None:
    messages = list(Engine(load("demo"), duration=SPAN).messages())
    assert [m.at for m in messages] == sorted(m.at for m in messages)
    assert {m.qos for m in messages} == {1}
    assert all(m.retain == m.topic.endswith("/status") for m in messages)


def test_partitions_together_make_exactly_the_whole_run() -> None:
    scenario = load("noisy-devices")
    whole = Counter((m.at, m.topic, m.payload) for m in Engine(scenario, duration=SPAN).messages())
    parts: Counter[tuple[float, str, bytes]] = Counter()
    for k in range(3):
        parts.update((m.at, m.topic, m.payload)
                     for m in Engine(scenario, duration=SPAN, partition=(k, 3)).messages())
    assert parts == whole


def test_ward_uses_unique_valid_nhs_test_numbers_and_a_step_up_majority() -> None:
    scenario = load("load-10k")
    patients = build_ward(scenario, scenario.seed, scenario.start)
    numbers = [p.nhs_number for p in patients]
    assert len(set(numbers)) == len(numbers) == 2500
    assert all(n.startswith("999") and is_valid(n) for n in numbers)
    devices = [d.device_id for p in patients for d in p.devices]
    assert len(set(devices)) == len(devices) == 10_000
    step_down = sum(p.pathway is Pathway.STEP_DOWN for p in patients)
    assert step_down == 500  # 20 %
    assert all(p.source is ReferralSource.HOSPITAL_WARD for p in patients
               if p.pathway is Pathway.STEP_DOWN)


def test_live_clock_catches_up_then_runs_at_one_x() -> None:
    wall0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    clock = LiveClock.starting(wall0, dt.timedelta(hours=2), speed=10)
    caught = clock.caught_up_at
    assert caught == wall0 + dt.timedelta(seconds=7200 / 9)
    assert clock.sim_at(wall0) == wall0 - dt.timedelta(hours=2)
    assert clock.sim_at(wall0 + dt.timedelta(minutes=6)) == wall0 - dt.timedelta(hours=1)
    later = caught + dt.timedelta(hours=5)
    assert clock.sim_at(later) == later
    assert clock.wall_at(clock.sim_at(wall0 + dt.timedelta(minutes=6))) == (
        wall0 + dt.timedelta(minutes=6))
    assert clock.wall_at(later) == later
    assert LiveClock.starting(wall0, dt.timedelta(hours=1), speed=1).caught_up_at is None
    with pytest.raises(ValueError, match="speed"):
        LiveClock.starting(wall0, dt.timedelta(0), speed=0.5)


@given(backfill_s=st.integers(0, 3 * 86400), speed=st.floats(1.0, 1000.0),
       elapsed_s=st.integers(0, 10 * 86400))
def test_live_simulated_time_never_runs_ahead_of_the_wall_clock(
    backfill_s: int, speed: float, elapsed_s: int
) -> None:
    wall0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    clock = LiveClock.starting(wall0, dt.timedelta(seconds=backfill_s), speed)
    wall = wall0 + dt.timedelta(seconds=elapsed_s)
    assert clock.sim_at(wall) <= wall
    # …and the pacing puts every simulated instant at or after itself on the wall clock.
    sim = clock.sim_at(wall)
    assert clock.wall_at(sim) >= sim - dt.timedelta(microseconds=1)
