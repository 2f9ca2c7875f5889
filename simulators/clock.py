"""The simulated clock of a live run: fast while catching up, then real time.

The gateway rejects readings dated more than 5 minutes in the future, so a live simulation may
never run ahead of the wall clock. A live run therefore starts its simulated clock `backfill`
before now and runs at `speed` × real time until it has caught up with the wall clock; from
then on simulated time *is* wall time (1×). With speed 1 and a backfill it simply lags by the
backfill for ever.

Pure: the wall-clock instants are parameters; the publisher reads the real clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# A catch-up further away than a century is "never" (and beyond datetime's range).
_NEVER_S = 100 * 365.25 * 86400


@dataclass(frozen=True, slots=True)
class LiveClock:
    sim_start: dt.datetime  # first simulated instant (= wall_start − backfill)
    wall_start: dt.datetime  # the wall-clock instant the run began
    speed: float  # simulated seconds per wall second while catching up (≥ 1)

    def __post_init__(self) -> None:
        if self.speed < 1.0:
            msg = f"speed must be ≥ 1, got {self.speed}"
            raise ValueError(msg)
        if self.sim_start > self.wall_start:
            msg = "a live run cannot start in the future"
            raise ValueError(msg)

    @classmethod
    def starting(cls, wall_now: dt.datetime, backfill: dt.timedelta, speed: float) -> LiveClock:
        return cls(wall_now - backfill, wall_now, speed)

    @property
    def caught_up_at(self) -> dt.datetime | None:
        """The wall instant at which simulated time meets wall time (None: never)."""
        lag = (self.wall_start - self.sim_start).total_seconds()
        if lag == 0:
            return self.wall_start
        seconds = lag / (self.speed - 1.0) if self.speed > 1.0 else float("inf")
        if seconds > _NEVER_S:  # speed 1 (or a hair above it): the lag stays for ever
            return None
        return self.wall_start + dt.timedelta(seconds=seconds)

    def sim_at(self, wall: dt.datetime) -> dt.datetime:
        """Simulated time at wall instant `wall`: never later than `wall` itself."""
        elapsed = max(0.0, (wall - self.wall_start).total_seconds())
        fast = self.sim_start + dt.timedelta(seconds=elapsed * self.speed)
        return min(fast, max(wall, self.sim_start))

    def wall_at(self, sim: dt.datetime) -> dt.datetime:
        """The wall instant at which simulated instant `sim` is reached."""
        if sim <= self.sim_start:
            return self.wall_start
        caught = self.caught_up_at
        fast = self.wall_start + (sim - self.sim_start) / self.speed
        if caught is None or fast <= caught:
            return fast
        return sim
