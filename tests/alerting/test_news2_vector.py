"""Vectorised NEWS2 scorer: agrees with the scalar scorer everywhere, including quantisation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.news2 import Consciousness, Observations, Parameter, Risk, score
from alerting.news2_vector import (
    CONSCIOUSNESS_CODES,
    MISSING,
    RISK_CODES,
    News2Arrays,
    ObservationArrays,
    VectorInputError,
    score_arrays,
)

NUMERIC = ("resp_rate", "spo2", "systolic_bp", "pulse", "temperature")


def to_arrays(sets: list[Observations]) -> ObservationArrays:
    def column(name: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        values = [getattr(o, name) for o in sets]
        return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)

    return ObservationArrays(
        **{name: column(name) for name in NUMERIC},
        on_oxygen=np.array([math.nan if o.on_oxygen is None else float(o.on_oxygen) for o in sets]),
        consciousness=np.array(
            [
                MISSING if o.consciousness is None else CONSCIOUSNESS_CODES.index(o.consciousness)
                for o in sets
            ],
            dtype=np.int8,
        ),
        spo2_scale=np.array([o.spo2_scale for o in sets], dtype=np.int8),
    )


def assert_agrees(sets: list[Observations]) -> None:
    result = score_arrays(to_arrays(sets))
    for i, obs in enumerate(sets):
        expected = score(obs)
        got = {p: int(result.sub_scores[p][i]) for p in Parameter}
        want = {p: expected.sub_scores.get(p, MISSING) for p in Parameter}
        assert got == want, obs
        assert int(result.total[i]) == expected.total, obs
        assert RISK_CODES[int(result.risk[i])] is expected.risk, obs
        assert bool(result.any_single_3[i]) == expected.any_single_3, obs
        assert bool(result.complete[i]) == expected.complete, obs


def floats_near_chart(low: int, high: int) -> st.SearchStrategy[float | None]:
    """Missing, whole, half, hundredth (38.05) and arbitrary floats, and their neighbours."""
    base = st.one_of(
        st.integers(low, high).map(float),
        st.integers(low * 2, high * 2).map(lambda i: i / 2),
        st.integers(low * 100, high * 100).map(lambda i: i / 100),
        st.floats(low, high),
    )
    nudged = st.tuples(base, st.sampled_from([-math.inf, math.inf])).map(
        lambda pair: math.nextafter(*pair)
    )
    return st.none() | base | nudged


observation_sets = st.builds(
    Observations,
    resp_rate=floats_near_chart(-5, 60),
    spo2=floats_near_chart(50, 100),
    on_oxygen=st.none() | st.booleans(),
    systolic_bp=floats_near_chart(40, 260),
    pulse=floats_near_chart(20, 200),
    consciousness=st.none() | st.sampled_from(Consciousness),
    temperature=floats_near_chart(30, 44),
    spo2_scale=st.sampled_from([1, 2]),
)


@settings(max_examples=300)
@given(st.lists(observation_sets, min_size=1, max_size=40))
def test_vector_agrees_with_scalar_on_random_inputs(sets: list[Observations]) -> None:
    assert_agrees(sets)


def test_vector_agrees_on_every_hundredth_and_its_float_neighbours() -> None:
    """Exhaustive sweep over the chart at 0.01 resolution, including both float neighbours."""
    grid = [i / 100 for i in range(2_000, 26_000)]
    values = [*grid, *(math.nextafter(v, math.inf) for v in grid)]
    values += [math.nextafter(v, -math.inf) for v in grid]
    sets = [
        Observations(
            resp_rate=v / 4,
            spo2=v / 2.2,
            on_oxygen=i % 3 != 0,
            systolic_bp=v,
            pulse=v * 0.6,
            consciousness=None,
            temperature=30 + v / 17 if i % 2 else v / 6,
            spo2_scale=1 + i % 2,
        )
        for i, v in enumerate(values)
    ]
    # v / 4 etc. give arbitrary floats; add the exact hundredths for every parameter too.
    sets += [Observations(resp_rate=v / 10, spo2=v / 10, pulse=v / 10) for v in grid[::7]]
    sets += [
        Observations(temperature=i / 100, spo2_scale=2, spo2=i / 100) for i in range(3000, 4400)
    ]
    assert_agrees(sets)


@pytest.mark.parametrize(
    ("temperature", "points"),
    [(38.05, 1), (38.049999, 0), (35.05, 1), (35.049999, 3), (36.05, 0), (39.05, 2)],
)
def test_temperature_half_tenths_round_up(temperature: float, points: int) -> None:
    result = score_arrays(to_arrays([Observations(temperature=temperature)]))
    assert result.sub_scores[Parameter.TEMPERATURE].tolist() == [points]


@pytest.mark.parametrize(("resp_rate", "points"), [(20.5, 2), (20.4, 0), (8.5, 1), (24.5, 3)])
def test_resp_rate_halves_round_up(resp_rate: float, points: int) -> None:
    result = score_arrays(to_arrays([Observations(resp_rate=resp_rate)]))
    assert result.sub_scores[Parameter.RESP_RATE].tolist() == [points]


def test_worked_examples_and_missing_codes() -> None:
    sets = [
        Observations(spo2=94, on_oxygen=True),
        Observations(spo2=97, on_oxygen=True, spo2_scale=2),
        Observations(spo2=97, spo2_scale=2),
    ]
    result = score_arrays(to_arrays(sets))
    assert result.total.tolist() == [3, 5, 0]
    assert result.any_single_3.tolist() == [False, True, False]
    assert result.risks() == [Risk.LOW, Risk.MEDIUM, Risk.LOW]
    assert result.sub_scores[Parameter.AIR_OR_OXYGEN].tolist() == [2, 2, MISSING]
    assert result.sub_scores[Parameter.PULSE].tolist() == [MISSING] * 3
    assert not result.complete.any()


def test_shape_is_preserved_and_empty_input_is_fine() -> None:
    flat = to_arrays([Observations(pulse=p) for p in (30.0, 60.0, 95.0, 140.0)])
    grid = ObservationArrays(**{k: v.reshape(2, 2) for k, v in vars(flat).items()})
    result = score_arrays(grid)
    assert result.total.tolist() == [[3, 0], [1, 3]]
    assert result.risk.shape == (2, 2)
    empty = score_arrays(ObservationArrays(**{k: v[:0] for k, v in vars(flat).items()}))
    assert empty.total.shape == (0,)


def _one(**changes: Any) -> ObservationArrays:
    base = vars(to_arrays([Observations(spo2=95)]))
    return ObservationArrays(**(base | changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pulse": np.array([1.0, 2.0])}, "pulse has shape"),
        ({"spo2_scale": np.array([3], dtype=np.int8)}, "spo2_scale"),
        ({"on_oxygen": np.array([0.5])}, "on_oxygen"),
        ({"consciousness": np.array([5], dtype=np.int8)}, "consciousness"),
        ({"consciousness": np.array([-2], dtype=np.int8)}, "consciousness"),
    ],
)
def test_bad_arrays_are_rejected_with_a_reason(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(VectorInputError, match=message):
        score_arrays(_one(**changes))


def test_large_input_spans_chunks() -> None:
    rng = np.random.default_rng(7)
    n = 200_003  # not a multiple of the chunk size
    big = ObservationArrays(
        **{name: rng.uniform(0, 250, n) for name in NUMERIC},
        on_oxygen=rng.choice([0.0, 1.0, math.nan], n),
        consciousness=rng.integers(-1, 5, n).astype(np.int8),
        spo2_scale=rng.choice([1, 2], n).astype(np.int8),
    )
    result: News2Arrays = score_arrays(big)
    assert result.total.shape == (n,)
    stacked = np.stack([result.sub_scores[p] for p in Parameter])
    assert (result.total == np.where(stacked > 0, stacked, 0).sum(axis=0)).all()
    sample = rng.choice(n, 500, replace=False)
    picked = [
        Observations(
            **{name: float(getattr(big, name)[i]) for name in NUMERIC},
            on_oxygen=None if math.isnan(big.on_oxygen[i]) else bool(big.on_oxygen[i]),
            consciousness=(
                None
                if big.consciousness[i] == MISSING
                else CONSCIOUSNESS_CODES[int(big.consciousness[i])]
            ),
            spo2_scale=int(big.spo2_scale[i]),
        )
        for i in sample
    ]
    chosen = score_arrays(ObservationArrays(**{k: v[sample] for k, v in vars(big).items()}))
    assert [int(t) for t in chosen.total] == [score(o).total for o in picked]
