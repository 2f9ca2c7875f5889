"""The trend chart's decision interval from its in-control run length (not from a seed).

Run as ``python benchmarks/bench_trend_arl.py [--looks N] [--seed S]`` from the repository root.

In-control model (``alerting.trend``): a wearable's index, looked at every 15 min, is standard
normal with lag-one autocorrelation :data:`alerting.trend.IN_CONTROL_RHO` between looks (an
AR(1) process). Under that model this prints the false-signal rate per 14 days (one signal per
excursion; an excursion ends when the index falls below ``Z_CLEAR``) of

* the run rule the CUSUM replaced: the index beyond ``Z_LIMIT`` at this look and the one before;
* the tabular CUSUM over the last ``LOOKS`` looks (``alerting.trend.cusum``) with
  ``k = CUSUM_K`` for a range of ``h``, and the smallest ``h`` (0.1 steps) that is no noisier
  than the run rule — the value ``alerting.trend.CUSUM_H`` must be at least;

and, for linear drifts of the index (0.5–3.5 SD an hour, from 0, with in-control noise scaled
by 0.6), the median time each chart takes to signal. Pure numpy; a measurement, not a test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting import trend

LOOKS_PER_14D = 14 * 24 * 4


def ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> NDArray[np.float64]:
    e = rng.standard_normal(shape)
    z = np.empty(shape)
    z[..., 0] = e[..., 0]
    s = np.sqrt(1.0 - rho * rho)
    for i in range(1, shape[-1]):
        z[..., i] = rho * z[..., i - 1] + s * e[..., i]
    return z


def cusum_stat(z: NDArray[np.float64], k: float, looks: int) -> NDArray[np.float64]:
    """The CUSUM over the last ``looks`` looks, started at 0, at every look (last axis)."""
    c = np.zeros_like(z)
    for lag in range(looks - 1, -1, -1):
        shifted = np.full_like(z, -np.inf if lag else 0.0)
        shifted[..., lag:] = z[..., :z.shape[-1] - lag] if lag else z
        c = np.maximum(0.0, c + shifted - k)
    c[..., :looks - 1] = 0.0
    return c


def old_fire(z: NDArray[np.float64]) -> NDArray[np.bool_]:
    prev = np.concatenate([np.full((*z.shape[:-1], 1), -np.inf), z[..., :-1]], axis=-1)
    return np.asarray((z >= trend.Z_LIMIT) & (prev >= trend.Z_LIMIT))


def onsets(fire: NDArray[np.bool_], z: NDArray[np.float64]) -> int:
    n, on = 0, False
    clear = z < trend.Z_CLEAR
    for f, c in zip(fire.tolist(), clear.tolist(), strict=True):
        if on:
            on = not c
        elif f:
            on, n = True, n + 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--looks", type=int, default=2_000_000, help="in-control looks")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rho, k = trend.IN_CONTROL_RHO, trend.CUSUM_K
    z = ar1(rng, (args.looks,), rho)
    per = LOOKS_PER_14D / args.looks
    old = onsets(old_fire(z), z) * per
    print(f"in-control model: N(0,1) looks every {trend.LOOK}, AR(1) rho {rho}; "
          f"{args.looks:,} looks ({args.looks / LOOKS_PER_14D:.0f} x 14 days)")
    print(f"run rule (Z >= {trend.Z_LIMIT:.2f} at two looks): {old:.3f} false signals / 14 d")
    c = cusum_stat(z, k, trend.LOOKS)
    chosen = None
    for h in np.arange(3.0, 8.01, 0.1):
        rate = onsets((c >= h) & (z >= trend.Z_CLEAR), z) * per
        if chosen is None and rate <= old:
            chosen = round(float(h), 1)
        if abs(h * 2 - round(h * 2)) < 1e-9:
            print(f"CUSUM k={k:g} h={h:.1f}: {rate:.3f} / 14 d")
    print(f"smallest h no noisier than the run rule: {chosen} (trend.CUSUM_H = {trend.CUSUM_H:g})")
    h = trend.CUSUM_H
    t = np.arange(48) * 0.25
    for slope in (0.5, 1.0, 2.0, 3.5):
        noise = ar1(rng, (4000, 48), rho) * 0.6
        zz = slope * t + noise
        f_old = old_fire(zz)
        f_new = (cusum_stat(zz, k, trend.LOOKS) >= h) & (zz >= trend.Z_CLEAR)
        d_old = float(np.median(t[np.argmax(f_old, axis=1)]))
        d_new = float(np.median(t[np.argmax(f_new, axis=1)]))
        print(f"drift {slope:.1f} SD/h: run rule signals after {d_old:.2f} h, "
              f"CUSUM after {d_new:.2f} h")


if __name__ == "__main__":
    main()
