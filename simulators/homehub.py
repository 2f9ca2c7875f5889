"""The patient's side of a full-set request: does the home hub's prompt get answered, and when.

The platform publishes a ``full_set`` command (wire contract ``CommandPayload``) to the
patient's home hub; the hub prompts the patient, who takes every measurement of their kit —
or does not. :func:`answer_at` decides, deterministically from (seed, hub, command id), so a
redelivered command gets the same answer and a run is reproducible whatever order commands
arrive in.

Behaviour, each figure justified:

* **Compliance.** By day 80 % of prompts are answered: adherence to prompted home
  observations in remote-monitoring programmes runs at roughly 70–90 % (COVID Oximetry @home
  evaluations and telemonitoring reviews report submission rates in that range); we take the
  middle. A night-time command with ``wake`` is a phone call from the hub: 90 % are answered
  (a ringing phone wakes most people; some are missed).
* **Delay.** Log-normal, median 10 min (σ 0.6: ~95 % within 30 min), at least 3 min — the
  time to notice the prompt, find the kit and take six measurements. A wake call is quicker
  (median 6 min): someone is on the line.
* **Night.** 22:00–07:00 Europe/London the patient sleeps: a prompt without ``wake`` is seen
  on waking (07:00–08:00), then answered with the same compliance and delay — long after its
  due time.

Imports only the wire contract (and the simulator's own clock helpers).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from gateway.contract import CommandKind, CommandPayload
from simulators.physiology import LONDON

NIGHT_START: Final = dt.time(22, 0)
NIGHT_END: Final = dt.time(7, 0)


@dataclass(frozen=True, slots=True)
class Compliance:
    """How the simulated patients answer prompts (defaults justified in the module doc)."""

    day_rate: float = 0.80
    wake_rate: float = 0.90
    median_delay_min: float = 10.0
    wake_median_delay_min: float = 6.0
    sigma: float = 0.6
    min_delay_min: float = 3.0


def _rng(seed: int, device_id: str, command_id: str) -> np.random.Generator:
    digest = hashlib.blake2b(f"{seed}/{device_id}/{command_id}".encode(), digest_size=16).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "big")])


def asleep(when: dt.datetime) -> bool:
    local = when.astimezone(LONDON).time()
    return local >= NIGHT_START or local < NIGHT_END


def _wake_up(when: dt.datetime, rng: np.random.Generator) -> dt.datetime:
    """The next 07:00–08:00 local after ``when`` (uniform within the hour)."""
    local = when.astimezone(LONDON)
    day = local.date() if local.time() < NIGHT_END else local.date() + dt.timedelta(days=1)
    seven = dt.datetime(day.year, day.month, day.day, 7, 0, tzinfo=LONDON)
    return (seven + dt.timedelta(minutes=float(rng.uniform(0.0, 60.0)))).astimezone(dt.UTC)


def answer_at(command: CommandPayload, device_id: str, seed: int,
              compliance: Compliance = Compliance()) -> dt.datetime | None:
    """When the patient takes the full set the command asks for, or None (never)."""
    if command.kind is not CommandKind.FULL_SET:
        return None
    rng = _rng(seed, device_id, command.command_id)
    issued = command.issued_at.astimezone(dt.UTC)
    seen = issued
    woken = command.wake and asleep(issued)
    if asleep(issued) and not command.wake:
        seen = _wake_up(issued, rng)
    rate = compliance.wake_rate if woken else compliance.day_rate
    if rng.random() >= rate:
        return None
    median = compliance.wake_median_delay_min if woken else compliance.median_delay_min
    delay = max(compliance.min_delay_min,
                float(rng.lognormal(math.log(median), compliance.sigma)))
    return seen + dt.timedelta(minutes=delay)
