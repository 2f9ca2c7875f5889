"""Throughput of the NEWS2 scorers: scalar (Decimal, per set) and vectorised (NumPy arrays).

Run as ``python benchmarks/bench_news2.py [N]`` from the repository root. Inputs are random
observation sets at 0.1 resolution with about 5 % of each parameter missing; they are built
before the clock starts, so only scoring is timed. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

# Importable without installing the package: the repository root holds ``alerting``.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting.news2 import Observations, score
from alerting.news2_vector import (
    CONSCIOUSNESS_CODES,
    MISSING,
    ObservationArrays,
    score_arrays,
)

VECTOR_SETS = 10_000_000
SCALAR_SETS = 100_000  # the scalar path is ~100x slower; this keeps the run under a minute
MISSING_FRACTION = 0.05
RANGES = {
    "resp_rate": (5.0, 30.0),
    "spo2": (80.0, 100.0),
    "systolic_bp": (80.0, 230.0),
    "pulse": (35.0, 140.0),
    "temperature": (34.0, 40.5),
}


def random_arrays(n: int, rng: np.random.Generator) -> ObservationArrays:
    def column(low: float, high: float) -> NDArray[np.float64]:
        values = np.round(rng.uniform(low, high, n), 1)
        values[rng.random(n) < MISSING_FRACTION] = np.nan
        return values

    return ObservationArrays(
        **{name: column(*bounds) for name, bounds in RANGES.items()},
        on_oxygen=rng.choice([0.0, 1.0, np.nan], n, p=[0.75, 0.2, 0.05]),
        consciousness=rng.integers(MISSING, len(CONSCIOUSNESS_CODES), n).astype(np.int8),
        spo2_scale=rng.choice(np.array([1, 2], dtype=np.int8), n, p=[0.9, 0.1]),
    )


def as_observations(arrays: ObservationArrays, n: int) -> list[Observations]:
    def number(name: str, i: int) -> float | None:
        value = float(getattr(arrays, name)[i])
        return None if np.isnan(value) else value

    return [
        Observations(
            **{name: number(name, i) for name in RANGES},
            on_oxygen=None if np.isnan(arrays.on_oxygen[i]) else bool(arrays.on_oxygen[i]),
            consciousness=(
                None
                if arrays.consciousness[i] == MISSING
                else CONSCIOUSNESS_CODES[int(arrays.consciousness[i])]
            ),
            spo2_scale=int(arrays.spo2_scale[i]),
        )
        for i in range(n)
    ]


def main() -> None:
    vector_sets = int(sys.argv[1]) if len(sys.argv) > 1 else VECTOR_SETS
    rng = np.random.default_rng(2017)
    arrays = random_arrays(vector_sets, rng)
    scalar_sets = min(SCALAR_SETS, vector_sets)
    observations = as_observations(arrays, scalar_sets)

    start = time.perf_counter()
    for obs in observations:
        score(obs)
    scalar_seconds = time.perf_counter() - start
    print(
        f"scalar:     {scalar_sets:>11,} sets in {scalar_seconds:7.3f} s = "
        f"{scalar_sets / scalar_seconds:>13,.0f} scores/s"
    )

    score_arrays(random_arrays(1000, rng))  # warm-up
    start = time.perf_counter()
    result = score_arrays(arrays)
    vector_seconds = time.perf_counter() - start
    print(
        f"vectorised: {vector_sets:>11,} sets in {vector_seconds:7.3f} s = "
        f"{vector_sets / vector_seconds:>13,.0f} scores/s"
    )
    print(
        f"(mean total {result.total.mean():.3f}; {(~result.complete).mean():.1%} of sets partial)"
    )


if __name__ == "__main__":
    main()
