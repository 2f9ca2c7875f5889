"""An elastomeric infusion pump with a flow monitor: the physics of one day's infusion.

A nurse visits once a day (about 10:00 local time) and connects a new 240 mL elastomeric
reservoir prescribed to run at 10 mL/h over 24 h. Such mechanical pumps' flow varies by about
±15 % (VIRTUAL_WARD.md), so some finish early and some are still running when the next nurse
comes (incomplete — one UK cohort saw 38 % of episodes with at least one). The flow falls as the
reservoir empties (the balloon's pressure drops in the last tenth). Occlusions (a kinked line)
stop the flow for a while; a disconnection stops it until the next visit.

Pure: the caller passes instants and its generator.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from simulators.physiology import LONDON

RESERVOIR_ML = 240.0
PRESCRIBED_RATE_ML_H = 10.0
NURSE_VISIT_HOUR = 10  # local time the daily reservoir is changed
# Elastomeric flow accuracy: ±15 % around the nominal rate.
FLOW_SPREAD = 0.15
# The last tenth of the reservoir runs slower as the balloon's pressure falls, down to 30 %.
TAPER_FRACTION = 0.1
TAPER_FLOOR = 0.3
OCCLUSION_CHANCE = 0.2  # per infusion
DISCONNECTION_CHANCE = 0.07  # per infusion


@dataclass(frozen=True, slots=True)
class Infusion:
    """One reservoir's course, drawn when the nurse connects it."""

    started: float  # epoch seconds
    ends_by: float  # the next nurse visit
    factor: float  # flow accuracy of this reservoir
    occluded: tuple[float, float] | None  # [from, to)
    disconnected_at: float | None


@dataclass(frozen=True, slots=True)
class PumpReading:
    infused: float
    remaining: float
    rate: float
    state: str  # one of ward.domain.vitals.PUMP_STATES


def next_visit(after: float) -> float:
    """The first nurse visit (10:00 Europe/London) strictly after `after`."""
    local = dt.datetime.fromtimestamp(after, LONDON)
    visit = local.replace(hour=NURSE_VISIT_HOUR, minute=0, second=0, microsecond=0)
    if visit.timestamp() <= after:
        visit = (local + dt.timedelta(days=1)).replace(
            hour=NURSE_VISIT_HOUR, minute=0, second=0, microsecond=0)
    return visit.timestamp()


def draw_infusion(started: float, rng: np.random.Generator) -> Infusion:
    ends_by = next_visit(started + 3600.0)
    span = ends_by - started
    occluded = None
    if rng.random() < OCCLUSION_CHANCE:
        begin = started + float(rng.uniform(0.1, 0.8)) * span
        occluded = (begin, begin + float(rng.uniform(0.3, 3.0)) * 3600.0)
    disconnected = None
    if rng.random() < DISCONNECTION_CHANCE:
        disconnected = started + float(rng.uniform(0.1, 0.9)) * span
    return Infusion(started, ends_by, float(rng.uniform(1 - FLOW_SPREAD, 1 + FLOW_SPREAD)),
                    occluded, disconnected)


def flow(infusion: Infusion, remaining: float, at: float) -> tuple[float, str]:
    """Flow rate (mL/h) and state label at `at` with `remaining` mL left."""
    if remaining <= 0.0:
        return 0.0, "complete"
    if infusion.disconnected_at is not None and at >= infusion.disconnected_at:
        return 0.0, "disconnected"
    if infusion.occluded is not None and infusion.occluded[0] <= at < infusion.occluded[1]:
        return 0.0, "occluded"
    taper = min(1.0, max(TAPER_FLOOR, remaining / (TAPER_FRACTION * RESERVOIR_ML)))
    return PRESCRIBED_RATE_ML_H * infusion.factor * taper, "running"


def advance(infusion: Infusion, remaining: float, since: float, until: float) -> float:
    """Volume remaining at `until`, integrating the flow in one-minute steps from `since`."""
    t = since
    while t < until and remaining > 0.0:
        step = min(60.0, until - t)
        rate, _ = flow(infusion, remaining, t)
        remaining = max(0.0, remaining - rate * step / 3600.0)
        t += step
    return remaining


def events(infusion: Infusion) -> list[float]:
    """Instants where the state changes on its own (reports are sent right then)."""
    marks = [infusion.ends_by]
    if infusion.occluded is not None:
        marks.extend(infusion.occluded)
    if infusion.disconnected_at is not None:
        marks.append(infusion.disconnected_at)
    return sorted(marks)
