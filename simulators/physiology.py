"""Virtual patients: the *true* physiology a simulated ward's devices measure.

A patient's true state is a pure function of (profile, instant): the profile is drawn once from
a seeded `numpy.random.Generator` (baseline vitals, trajectory, onset, slow-wander phases), and
`true_state(profile, at)` can then be asked for any instant, in any order, with the same answer.
Measurement noise belongs to the devices (`simulators.sensors`), not here.

Trajectories (the mix is set by the scenario):

* **stable** — normal adult vitals with slow wander and day/night variation.
* **sepsis** — slow sepsis-like deterioration from a random onset: pulse, respiration and
  temperature rise, systolic pressure and SpO2 fall, new confusion late in the course.
* **copd_exacerbation** — a COPD patient on a Scale 2 target (88–92 %), often on home oxygen,
  whose exacerbation drops SpO2 below target and raises respiration and pulse.
* **step_down_recovery** — a patient discharged early from hospital, a little abnormal at the
  start and recovering exponentially towards baseline.

Day/night variation follows Europe/London local time (the patients live there): pulse,
systolic pressure and temperature are lowest in the small hours (nadir ~04:00) and highest in
the late afternoon, the normal circadian pattern.

Never uses global random state, never reads a clock, never does I/O.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

LONDON = ZoneInfo("Europe/London")

# Circadian nadir at 04:00 local time, peak twelve hours later: the textbook core-temperature and
# heart-rate rhythm. Amplitudes (half peak-to-trough) below are typical healthy-adult values.
_CIRCADIAN_PEAK_HOUR = 16.0
_CIRCADIAN_PULSE = 5.0  # beats/min
_CIRCADIAN_SBP = 6.0  # mmHg (nocturnal "dipping" of ~10 %)
_CIRCADIAN_TEMP = 0.3  # °C

# Slow wander: three sinusoids with periods of hours give a patient's vitals a realistic drift
# that is still a pure function of time (no random walk to replay).
_WANDER_PERIODS_H = (2.7, 7.3, 17.9)


class Trajectory(enum.StrEnum):
    STABLE = "stable"
    SEPSIS = "sepsis"
    COPD_EXACERBATION = "copd_exacerbation"
    STEP_DOWN_RECOVERY = "step_down_recovery"

    @property
    def deteriorates(self) -> bool:
        return self in (Trajectory.SEPSIS, Trajectory.COPD_EXACERBATION)


@dataclass(frozen=True, slots=True)
class Baseline:
    """A patient's own normal values (adult ranges scoring 0 on NEWS2, or the COPD norm)."""

    spo2: float
    pulse: float
    resp_rate: float
    temperature: float
    systolic_bp: float
    diastolic_bp: float


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything random about one virtual patient, drawn once."""

    index: int
    trajectory: Trajectory
    baseline: Baseline
    spo2_scale: int  # 2 only for COPD patients with a prescribed 88–92 % target
    home_oxygen: bool
    o2_flow: float  # L/min when on home oxygen, else 0
    onset: dt.datetime | None  # deterioration start (deteriorating trajectories only)
    discharged_at: dt.datetime | None  # step-down: left hospital, recovery starts here
    ramp: dt.timedelta  # time from onset to the worst of the course (or recovery time constant)
    severity: float  # 0.8–1.2: how far this patient's course goes
    wander_phase: tuple[float, float, float]

    def progress(self, at: dt.datetime) -> float:
        """Deterioration progress in [0, 1] at `at` (0 before onset; smoothstep over `ramp`)."""
        if self.onset is None or at <= self.onset:
            return 0.0
        x = min(1.0, (at - self.onset) / self.ramp)
        return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True, slots=True)
class TrueState:
    """The patient's true vitals at one instant (what a perfect device would read)."""

    at: dt.datetime
    spo2: float
    pulse: float
    resp_rate: float
    temperature: float
    systolic_bp: float
    diastolic_bp: float
    on_oxygen: bool
    o2_flow: float
    consciousness: str  # ACVPU letter
    progress: float  # 0 = baseline course, 1 = worst of a deterioration


# Full-course changes for a sepsis-like deterioration at severity 1.0: enough to reach NEWS2 ≥ 7
# (pulse ~130, RR ~28, T ~39.3, SBP ~90, SpO2 ~90) as the NEWS2 chart's "high" band describes.
_SEPSIS_DELTA = Baseline(spo2=-7.0, pulse=45.0, resp_rate=13.0, temperature=2.4,
                         systolic_bp=-42.0, diastolic_bp=-20.0)
# COPD exacerbation on a 88–92 % target: SpO2 falls well below target, breathing and pulse rise.
_COPD_DELTA = Baseline(spo2=-9.0, pulse=32.0, resp_rate=12.0, temperature=1.0,
                       systolic_bp=-12.0, diastolic_bp=-5.0)
# Step-down recovery starts this far from baseline and decays with time constant `ramp`.
_RECOVERY_START = Baseline(spo2=-3.0, pulse=18.0, resp_rate=5.0, temperature=0.9,
                           systolic_bp=-8.0, diastolic_bp=-4.0)
# New confusion appears late in a severe course.
_CONFUSION_PROGRESS = 0.85


def draw_profile(
    index: int,
    trajectory: Trajectory,
    rng: np.random.Generator,
    *,
    start: dt.datetime,
    onset_earliest: dt.timedelta,
    onset_latest: dt.timedelta,
    ramp_hours: tuple[float, float],
    home_oxygen: bool,
) -> Profile:
    """Draw one patient's profile. `start` is the scenario's first simulated instant."""
    if trajectory is Trajectory.COPD_EXACERBATION:
        baseline = Baseline(
            spo2=float(rng.uniform(89.0, 92.0)), pulse=float(rng.uniform(78.0, 90.0)),
            resp_rate=float(rng.uniform(17.0, 20.0)), temperature=float(rng.uniform(36.4, 37.0)),
            systolic_bp=float(rng.uniform(120.0, 145.0)), diastolic_bp=float(rng.uniform(70.0, 88.0)),
        )
    else:
        baseline = Baseline(
            spo2=float(rng.uniform(96.5, 98.5)), pulse=float(rng.uniform(60.0, 82.0)),
            resp_rate=float(rng.uniform(13.0, 17.0)), temperature=float(rng.uniform(36.4, 37.1)),
            systolic_bp=float(rng.uniform(118.0, 150.0)), diastolic_bp=float(rng.uniform(68.0, 88.0)),
        )
    onset: dt.datetime | None = None
    if trajectory.deteriorates:
        span = (onset_latest - onset_earliest).total_seconds()
        onset = start + onset_earliest + dt.timedelta(seconds=float(rng.uniform(0.0, max(span, 0.0))))
    ramp = dt.timedelta(hours=float(rng.uniform(*ramp_hours)))
    discharged_at: dt.datetime | None = None
    if trajectory is Trajectory.STEP_DOWN_RECOVERY:
        # Discharged from hospital up to a day before the scenario starts; recovery is slower
        # than a deterioration (time constant of a day or two, not hours).
        discharged_at = start - dt.timedelta(hours=float(rng.uniform(0.0, 24.0)))
        ramp = dt.timedelta(hours=float(rng.uniform(18.0, 48.0)))
    on_o2 = home_oxygen or (trajectory is Trajectory.COPD_EXACERBATION and bool(rng.random() < 0.6))
    phases = rng.uniform(0.0, 2.0 * math.pi, size=3)
    return Profile(
        index=index,
        trajectory=trajectory,
        baseline=baseline,
        spo2_scale=2 if trajectory is Trajectory.COPD_EXACERBATION else 1,
        home_oxygen=on_o2,
        o2_flow=float(rng.choice([1.0, 1.5, 2.0])) if on_o2 else 0.0,
        onset=onset,
        discharged_at=discharged_at,
        ramp=ramp,
        severity=float(rng.uniform(0.85, 1.2)),
        wander_phase=(float(phases[0]), float(phases[1]), float(phases[2])),
    )


def circadian(at: dt.datetime) -> float:
    """−1 at the 04:00 nadir, +1 at the 16:00 peak, Europe/London local time."""
    local = at.astimezone(LONDON)
    hour = local.hour + local.minute / 60.0 + local.second / 3600.0
    return math.cos(2.0 * math.pi * (hour - _CIRCADIAN_PEAK_HOUR) / 24.0)


def _wander(profile: Profile, at: dt.datetime) -> float:
    """A smooth value in about [−1, 1] that drifts over hours, different per patient."""
    hours = at.timestamp() / 3600.0
    return sum(
        math.sin(2.0 * math.pi * hours / period + phase)
        for period, phase in zip(_WANDER_PERIODS_H, profile.wander_phase, strict=True)
    ) / len(_WANDER_PERIODS_H)


def _course(profile: Profile, at: dt.datetime) -> tuple[Baseline, float]:
    """The trajectory's offset from baseline at `at`, and the progress driving it."""
    zero = Baseline(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    if profile.trajectory is Trajectory.STABLE:
        return zero, 0.0
    if profile.trajectory is Trajectory.STEP_DOWN_RECOVERY:
        # Recovery from the discharge instant: the offset decays with time constant `ramp`.
        since = profile.discharged_at or at
        elapsed_h = max(0.0, (at - since).total_seconds() / 3600.0)
        weight = math.exp(-elapsed_h / (profile.ramp.total_seconds() / 3600.0))
        return _scaled(_RECOVERY_START, weight * profile.severity), 0.0
    delta = _SEPSIS_DELTA if profile.trajectory is Trajectory.SEPSIS else _COPD_DELTA
    progress = profile.progress(at)
    return _scaled(delta, progress * profile.severity), progress


def _scaled(delta: Baseline, k: float) -> Baseline:
    return Baseline(delta.spo2 * k, delta.pulse * k, delta.resp_rate * k,
                    delta.temperature * k, delta.systolic_bp * k, delta.diastolic_bp * k)


def true_state(profile: Profile, at: dt.datetime) -> TrueState:
    """The patient's true vitals at `at` (pure: same profile and instant, same answer)."""
    base = profile.baseline
    course, progress = _course(profile, at)
    day = circadian(at)
    wander = _wander(profile, at)
    on_oxygen = profile.home_oxygen
    spo2 = base.spo2 + course.spo2 + 0.6 * wander
    if on_oxygen and profile.trajectory is not Trajectory.COPD_EXACERBATION:
        spo2 += 1.0  # supplemental oxygen lifts saturation a little in a non-COPD patient
    consciousness = "C" if progress >= _CONFUSION_PROGRESS and profile.severity >= 0.95 else "A"
    return TrueState(
        at=at,
        spo2=min(100.0, spo2),
        pulse=base.pulse + course.pulse + _CIRCADIAN_PULSE * day + 3.0 * wander,
        resp_rate=max(6.0, base.resp_rate + course.resp_rate + 1.0 * wander),
        temperature=base.temperature + course.temperature + _CIRCADIAN_TEMP * day + 0.1 * wander,
        systolic_bp=base.systolic_bp + course.systolic_bp + _CIRCADIAN_SBP * day + 4.0 * wander,
        diastolic_bp=base.diastolic_bp + course.diastolic_bp + 0.5 * _CIRCADIAN_SBP * day
        + 2.0 * wander,
        on_oxygen=on_oxygen,
        o2_flow=profile.o2_flow,
        consciousness=consciousness,
        progress=progress,
    )
