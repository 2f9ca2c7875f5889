"""The escalation policy: YAML in ``deploy/escalation/``, validated by pydantic at start-up.

The YAML is an edge format; :func:`load_policy` validates it (with errors naming the file and
the field) and converts it into the frozen :class:`Policy` the pure escalation logic reads.
Besides field types, validation checks what would otherwise fail at 3 a.m.: every tier and
ceiling-of-care target has contacts, and the on-call rota covers every minute of the week in
the policy's local time zone (checked at 15-minute steps, the granularity shifts are written in).
:func:`unserved_channels` names every channel a contact uses that no notifier delivers (the
check ``vward alerting --check-policy`` runs against the notifiers it would start).

``notifiers:`` configures delivery plug-ins per channel (SMS, pager; see
:mod:`alerting.plugins`); ``out_of_hours:`` says which severities may page outside hub hours.
Hub hours come from the file unless ``VW_HUB_OPENS``/``VW_HUB_CLOSES`` are set
(:func:`configured_policy`).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alerting.candidates import Severity
from alerting.errors import PolicyError
from ward.settings import Settings

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ON_CALL: Final = "on_call_clinician"  # the tier whose contacts come from the rota
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
Channel = Literal["dashboard", "webhook", "mqtt", "sms", "pager"]
#: Channels built into ``vward alerting`` (each still needs its setting: a webhook secret, an
#: MQTT URL); any other channel a contact names needs a ``notifiers:`` plug-in entry.
BUILT_IN_CHANNELS: Final = frozenset({"dashboard", "webhook", "mqtt"})


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


# --- edge models (pydantic) ------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContactModel(_Strict):
    channel: Channel
    recipient: Annotated[str, Field(min_length=1)]


class ShiftModel(_Strict):
    name: Annotated[str, Field(min_length=1)]
    contacts: Annotated[list[ContactModel], Field(min_length=1)]
    days: Annotated[list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]], Field(min_length=1)]
    start: str
    end: str
    date: dt.date | None = None  # a one-off override for this local date (bank holidays)

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"must be HH:MM (00:00–24:00), got {value!r}")
        return value


class HoursModel(_Strict):
    opens: str = "08:00"
    closes: str = "20:00"

    @field_validator("opens", "closes")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"must be HH:MM, got {value!r}")
        return value


class NotifierModel(_Strict):
    """A delivery plug-in for one channel: ``http`` (the generic provider adapter), an entry
    point name of group ``vward.notifiers``, or an import path ``package.module:factory``."""

    plugin: Annotated[str, Field(min_length=1)]
    settings: dict[str, Any] = {}


class OutOfHoursModel(_Strict):
    # NEWS2 low (aggregate 1–4, no single 3) asks for a ward-based assessment at the next
    # observation round, not an urgent one: out of hours it waits on the dashboard for the
    # hub to open. Low-medium (a single 3) asks for an *urgent* ward-based response, so it
    # pages like medium and high (RCP NEWS2 2017, Chart 3).
    page_from: Severity = Severity.LOW_MEDIUM
    # Channels that wake someone up (a phone or pager); dashboard, MQTT and webhooks to other
    # systems are not "paging" and always receive every finding.
    paging_channels: Annotated[list[Channel], Field(min_length=1)] = ["sms", "pager"]


class TiersModel(_Strict):
    in_hours: Annotated[list[str], Field(min_length=1)]
    out_of_hours: Annotated[list[str], Field(min_length=1)]


class PolicyModel(_Strict):
    version: Literal[1]
    name: str
    timezone: str = "Europe/London"
    hub_hours: HoursModel = HoursModel()
    time_to_acknowledge_minutes: dict[Severity, Annotated[int, Field(gt=0, le=24 * 60)]]
    highest_tier: dict[Severity, Annotated[int, Field(ge=0)]]
    max_snooze_minutes: Annotated[int, Field(gt=0, le=240)] = 240
    tiers: TiersModel
    ceiling_of_care: dict[Literal["not_for_conveyance", "palliative"], dict[str, str]] = {}
    contacts: dict[str, list[ContactModel]]
    rota: Annotated[list[ShiftModel], Field(min_length=1)]
    mqtt_topic_prefix: str = "vw/v1/alerts"
    infusion_tolerance: dict[str, Annotated[float, Field(gt=0, lt=1)]] = {}
    out_of_hours: OutOfHoursModel = OutOfHoursModel()
    notifiers: dict[Channel, NotifierModel] = {}

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PolicyModel:
        targets = {*self.tiers.in_hours, *self.tiers.out_of_hours}
        for replaced in self.ceiling_of_care.values():
            targets |= set(replaced.values())
        missing = sorted(t for t in targets if t != ON_CALL and not self.contacts.get(t))
        if missing:
            raise ValueError(f"no contacts for escalation target(s) {missing}")
        if len(self.tiers.in_hours) != len(self.tiers.out_of_hours):
            raise ValueError("tiers.in_hours and tiers.out_of_hours must have the same length")
        top = len(self.tiers.in_hours) - 1
        for severity, tier in self.highest_tier.items():
            if tier > top:
                raise ValueError(f"highest_tier.{severity} = {tier} but the last tier is {top}")
        if _minutes(self.hub_hours.opens) >= _minutes(self.hub_hours.closes):
            raise ValueError("hub_hours.opens must be before hub_hours.closes")
        return self


# --- domain (frozen) ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Contact:
    channel: str
    recipient: str


@dataclass(frozen=True, slots=True)
class Shift:
    """Someone on call on ``days`` from ``start`` to ``end`` minutes of local day (may wrap)."""

    name: str
    contacts: tuple[Contact, ...]
    days: frozenset[int]  # 0 = Monday
    start: int
    end: int
    date: dt.date | None = None

    def covers(self, local: dt.datetime) -> bool:
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self.date is not None:
            return local.date() == self.date and self.start <= minute < self.end
        if self.start < self.end:
            return day in self.days and self.start <= minute < self.end
        # Overnight shift: belongs to the day it starts on.
        return (day in self.days and minute >= self.start) or (
            (day - 1) % 7 in self.days and minute < self.end)


@dataclass(frozen=True, slots=True)
class NotifierSpec:
    """How to build the notifier of one channel (resolved by :mod:`alerting.plugins`)."""

    channel: str
    plugin: str
    settings: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    tz: zoneinfo.ZoneInfo
    opens: int
    closes: int
    ack_within: Mapping[Severity, dt.timedelta | None]
    highest_tier: Mapping[Severity, int]
    max_snooze: dt.timedelta
    in_hours: tuple[str, ...]
    out_of_hours: tuple[str, ...]
    ceiling_of_care: Mapping[str, Mapping[str, str]]
    contacts: Mapping[str, tuple[Contact, ...]]
    rota: tuple[Shift, ...]
    mqtt_topic_prefix: str
    infusion_tolerance: Mapping[str, float]
    page_from: Severity = Severity.LOW_MEDIUM
    paging_channels: frozenset[str] = frozenset({"sms", "pager"})
    notifiers: Mapping[str, NotifierSpec] = field(default_factory=lambda: MappingProxyType({}))

    def channels(self) -> frozenset[str]:
        """Every channel a contact of this policy (or its rota) names."""
        named = {c.channel for group in self.contacts.values() for c in group}
        named |= {c.channel for shift in self.rota for c in shift.contacts}
        return frozenset(named)


def with_hub_hours(policy: Policy, opens: dt.time | None, closes: dt.time | None) -> Policy:
    """``policy`` with hub hours from ``VW_HUB_OPENS``/``VW_HUB_CLOSES`` when those are set."""
    start = policy.opens if opens is None else opens.hour * 60 + opens.minute
    end = policy.closes if closes is None else closes.hour * 60 + closes.minute
    if start >= end:
        raise PolicyError(f"hub hours: opens ({start // 60:02d}:{start % 60:02d}) must be "
                          f"before closes ({end // 60:02d}:{end % 60:02d})")
    return replace(policy, opens=start, closes=end)


def unserved_channels(policy: Policy, available: frozenset[str] | set[str]) -> list[str]:
    """One line per channel the policy routes to but no configured notifier delivers.

    Without a notifier such rows would wait in the outbox forever while the page they carry
    never leaves: ``vward alerting --check-policy`` fails on any of these.
    """
    users: dict[str, set[str]] = {}
    for name, group in policy.contacts.items():
        for c in group:
            users.setdefault(c.channel, set()).add(f"contacts.{name}")
    for shift in policy.rota:
        for c in shift.contacts:
            users.setdefault(c.channel, set()).add(f"rota {shift.name!r}")
    return [f"channel {channel!r} (used by {', '.join(sorted(users[channel]))}) has no notifier"
            for channel in sorted(users) if channel not in available]


def _convert(model: PolicyModel) -> Policy:
    def contacts(items: list[ContactModel]) -> tuple[Contact, ...]:
        return tuple(Contact(c.channel, c.recipient) for c in items)

    return Policy(
        name=model.name,
        tz=zoneinfo.ZoneInfo(model.timezone),
        opens=_minutes(model.hub_hours.opens),
        closes=_minutes(model.hub_hours.closes),
        ack_within=MappingProxyType({s: (dt.timedelta(minutes=model.time_to_acknowledge_minutes[s])
                                         if s in model.time_to_acknowledge_minutes else None)
                                     for s in Severity}),
        highest_tier=MappingProxyType({s: model.highest_tier.get(s, 0) for s in Severity}),
        max_snooze=dt.timedelta(minutes=model.max_snooze_minutes),
        in_hours=tuple(model.tiers.in_hours),
        out_of_hours=tuple(model.tiers.out_of_hours),
        ceiling_of_care=MappingProxyType({k: MappingProxyType(dict(v))
                                          for k, v in model.ceiling_of_care.items()}),
        contacts=MappingProxyType({k: contacts(v) for k, v in model.contacts.items()}),
        rota=tuple(Shift(s.name, contacts(s.contacts), frozenset(DAYS.index(d) for d in s.days),
                         _minutes(s.start), _minutes(s.end), s.date) for s in model.rota),
        mqtt_topic_prefix=model.mqtt_topic_prefix.rstrip("/"),
        infusion_tolerance=MappingProxyType(dict(model.infusion_tolerance)),
        page_from=model.out_of_hours.page_from,
        paging_channels=frozenset(model.out_of_hours.paging_channels),
        notifiers=MappingProxyType({
            channel: NotifierSpec(channel, spec.plugin, MappingProxyType(dict(spec.settings)))
            for channel, spec in model.notifiers.items()}),
    )


def _check_rota(policy: Policy) -> None:
    """Every 15-minute slot of a week (local wall clock) has someone on call."""
    weekly = [s for s in policy.rota if s.date is None]
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # a Monday; wall-clock arithmetic below
    for step in range(7 * 24 * 4):
        local = start + dt.timedelta(minutes=15 * step)
        if not any(s.covers(local) for s in weekly):
            raise ValueError(
                f"rota: nobody is on call on {DAYS[local.weekday()]} at {local:%H:%M}")


def parse_policy(data: Any, *, source: str = "<policy>") -> Policy:
    """Validate a parsed YAML document; :class:`PolicyError` names the source and the field."""
    try:
        model = PolicyModel.model_validate(data)
        policy = _convert(model)
        _check_rota(policy)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors())
        raise PolicyError(f"{source}: invalid escalation policy: {problems}") from exc
    except ValueError as exc:
        raise PolicyError(f"{source}: invalid escalation policy: {exc}") from exc
    return policy


def load_policy(path: Path | str) -> Policy:
    """Read and validate one policy file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read escalation policy: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    return parse_policy(data, source=str(path))


#: The default policy ships inside the package so an installed `vward` finds it;
#: deploy/escalation/default.yaml links to it. A real hub points VW_ESCALATION_POLICY at its own.
DEFAULT_POLICY_PATH: Final = Path(__file__).resolve().parent / "policies" / "default.yaml"


def policy_path(configured: str | None = None) -> Path:
    """The policy file to use: the argument, else ``VW_ESCALATION_POLICY``, else the default."""
    return Path(configured or os.environ.get("VW_ESCALATION_POLICY") or DEFAULT_POLICY_PATH)


def configured_policy(settings: Settings | None = None, path: str | None = None) -> Policy:
    """The policy this process runs: the configured file with the ``VW_HUB_…`` hours applied."""
    settings = settings or Settings.from_env()
    policy = load_policy(policy_path(path or settings.escalation_policy))
    return with_hub_hours(policy, settings.hub_opens, settings.hub_closes)
