"""Scenario files: what a simulated ward looks like, validated at the edge.

A scenario is a YAML (or TOML) file naming the ward size, the mix of trajectories, the device
kits, the fault rates, the duration, the speed factor and the seed. Shipped scenarios live in
`simulators/scenarios/` and are found by name (`demo`, `quiet-ward`, …); any other argument is
a path. A bad file stops with `ScenarioError` naming the file and the offending field
(`demo.yaml: faults.duplicate: Input should be less than or equal to 1`).

Time. *Deterministic* runs (tests, `--dry-run`, replay fixtures) start at the scenario's fixed
`start` instant and run as fast as they are consumed. *Live* runs must never date a reading in
the future (the gateway rejects readings more than 5 minutes ahead), so the simulated clock
starts `backfill` before now, runs at `speed` × real time until it catches up with the wall
clock, then continues at 1× (see `simulators.clock`).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from simulators.physiology import Trajectory

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; the message names the file and the field."""


def parse_duration(value: object) -> dt.timedelta:
    """`90`, `"90s"`, `"15m"`, `"2h"`, `"1.5d"` → timedelta (numbers are seconds)."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        msg = f"expected a duration such as 90, '15m', '2h' or '1d', got {value!r}"
        raise ValueError(msg)
    if seconds < 0:
        msg = f"a duration cannot be negative, got {value!r}"
        raise ValueError(msg)
    return dt.timedelta(seconds=seconds)


Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class DeviceType(enum.StrEnum):
    """What a kit may contain (a wearable is a pulse oximeter measuring every minute)."""

    PULSE_OXIMETER = "pulse_oximeter"
    WEARABLE_OXIMETER = "wearable_oximeter"
    BP_CUFF = "bp_cuff"
    THERMOMETER = "thermometer"
    INFUSION_PUMP = "infusion_pump"
    HOME_HUB = "home_hub"


class WireFormat(enum.StrEnum):
    JSON = "json"
    SENML = "senml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Kit(_Model):
    """A set of devices given to a share of the patients."""

    name: str
    share: float = Field(gt=0.0)  # relative weight among kits
    devices: tuple[DeviceType, ...] = Field(min_length=1)
    # Spot checks a day for non-wearable devices (NEWS2 1–4 asks for 4–6-hourly observations).
    spot_checks_per_day: int = Field(default=4, ge=1, le=48)
    wearable_interval: Duration = dt.timedelta(minutes=1)


class Faults(_Model):
    """Fault rates: per message unless said otherwise. All default to 0 (a clean ward)."""

    # Share of devices whose battery drains fast enough to die during a day (status messages
    # report the level; a flat device measures nothing until recharged).
    battery_drain: Rate = 0.0
    # Chance per device per simulated hour of an offline spell (store-and-forward afterwards).
    offline_spell: Rate = 0.0
    offline_minutes: tuple[float, float] = (20.0, 180.0)
    duplicate: Rate = 0.0  # the same message (same bytes, same msg_id) sent twice
    # Share of devices whose clock is wrong; half within the gateway's 5-min future tolerance,
    # half beyond it (those readings must be rejected as clock errors).
    clock_drift: Rate = 0.0
    late: Rate = 0.0  # delivered 15–90 min after measurement (past the gateway's "late" mark)
    out_of_order: Rate = 0.0  # delayed 5 s – 3 min, so a newer reading overtakes it
    malformed: Rate = 0.0  # replaced by one of many kinds of bad payload
    # Oximeter motion artefacts: SpO2 reads 4–12 points low for one reading.
    artefact: Rate = 0.0
    # Multiplier of every device's measurement noise (1 = typical consumer devices).
    noise: float = Field(default=1.0, ge=0.0, le=10.0)


class Onset(_Model):
    """When deteriorations start, counted from the scenario's first simulated instant."""

    earliest: Duration = dt.timedelta(hours=1)
    latest: Duration = dt.timedelta(hours=12)
    # How long a course takes from onset to its worst, in hours (drawn uniformly).
    ramp_hours: tuple[float, float] = (3.0, 8.0)

    @model_validator(mode="after")
    def _ordered(self) -> Onset:
        if self.latest < self.earliest:
            msg = "latest must not be before earliest"
            raise ValueError(msg)
        if not 0 < self.ramp_hours[0] <= self.ramp_hours[1]:
            msg = "ramp_hours must be two positive numbers, low ≤ high"
            raise ValueError(msg)
        return self


class Scenario(_Model):
    """A whole simulated ward."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,23}$")
    description: str = ""
    seed: int = Field(default=0, ge=0)
    patients: int = Field(ge=1, le=100_000)
    # Relative weights of the trajectories (normalised; missing ones are 0).
    trajectories: dict[Trajectory, float] = Field(min_length=1)
    onset: Onset = Onset()
    home_oxygen: Rate = 0.05  # share of non-COPD patients on home oxygen
    kits: tuple[Kit, ...] = Field(min_length=1)
    infusion_pumps: int = Field(default=0, ge=0)  # patients with an elastomeric pump
    senml: Rate = 0.0  # share of devices speaking SenML instead of native JSON
    faults: Faults = Faults()
    # None: run until stopped (live); else the simulated span to produce.
    duration: Duration | None = None
    speed: float = Field(default=1.0, ge=1.0, le=100_000.0)
    backfill: Duration = dt.timedelta(0)
    # The fixed first instant of deterministic runs (tests, dry runs, replay fixtures).
    start: dt.datetime = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)
    # How often the true state of every patient is sampled for ground truth.
    truth_interval: Duration = dt.timedelta(minutes=5)
    status_interval: Duration = dt.timedelta(hours=1)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if sum(self.trajectories.values()) <= 0 or any(w < 0 for w in self.trajectories.values()):
            msg = "trajectories: weights must be ≥ 0 and not all 0"
            raise ValueError(msg)
        if self.infusion_pumps > self.patients:
            msg = f"infusion_pumps ({self.infusion_pumps}) exceeds patients ({self.patients})"
            raise ValueError(msg)
        if self.start.tzinfo is None:
            msg = "start must carry a timezone (e.g. 2026-01-05T06:00:00Z)"
            raise ValueError(msg)
        if self.truth_interval <= dt.timedelta(0) or self.status_interval <= dt.timedelta(0):
            msg = "truth_interval and status_interval must be positive"
            raise ValueError(msg)
        return self


def shipped_names() -> list[str]:
    folder = resources.files("simulators") / "scenarios"
    return sorted(p.name.rsplit(".", 1)[0] for p in folder.iterdir()
                  if p.name.endswith((".yaml", ".yml", ".toml")))


def _format_error(source: str, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"{source}: {where}: {error['msg']}")
    return "\n".join(lines)


def parse(text: str, *, source: str, toml: bool = False) -> Scenario:
    """Validate scenario text; `ScenarioError` names `source` and each bad field."""
    try:
        data: Any = tomllib.loads(text) if toml else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        msg = f"{source}: not valid {'TOML' if toml else 'YAML'}: {exc}"
        raise ScenarioError(msg) from exc
    if not isinstance(data, dict):
        msg = f"{source}: (top level): expected a mapping of scenario fields, got {type(data).__name__}"
        raise ScenarioError(msg)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_format_error(source, exc)) from exc


def load(name_or_path: str) -> Scenario:
    """A shipped scenario by name, or a scenario file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".toml") or path.exists():
        if not path.is_file():
            msg = f"{name_or_path}: no such scenario file"
            raise ScenarioError(msg)
        return parse(path.read_text(encoding="utf-8"), source=str(path),
                     toml=path.suffix == ".toml")
    resource = resources.files("simulators") / "scenarios" / f"{name_or_path}.yaml"
    if not resource.is_file():
        known = ", ".join(shipped_names())
        msg = f"{name_or_path}: no shipped scenario of that name (shipped: {known}) and no such file"
        raise ScenarioError(msg)
    return parse(resource.read_text(encoding="utf-8"), source=f"{name_or_path}.yaml")
