"""Ask for data instead of guessing: when to request a full set of observations (pure).

A partial NEWS2 score is a lower bound, a trend is a hint, a doubtful reading is perhaps an
artefact: in each case the cheapest way to know is a complete set of observations taken now.
:func:`decide` says whether the platform should ask the patient's home hub for one
(a ``full_set`` command on ``vw/v1/devices/{hub}/commands`` and a task for the hub);
:func:`settle` says whether an open request was answered or missed.

Triggers, each documented where it is decided:

* **partial trouble** — the score is partial (parameters missing or stale) and what is known
  already points to trouble: lower bound ≥ 3 (a complete set could only add to it) or any
  single parameter scoring 3 (NEWS2 Chart 2: low-medium risk, urgent ward-based response);
* **doubtful reading** — another stage (artefact filtering) flags one implausible spot
  reading: ``decide(..., doubtful=True, doubt_reason="…")`` asks for a repeat instead of
  raising on it;
* **rising trend** — a trend finding fires while the last complete set is older than
  :attr:`RequestConfig.fresh_full_set` (or there is none).

Never spam: at most one open request per patient, and none within
:attr:`RequestConfig.cooldown` of the previous one, whatever became of it; each request missed
in a row since the last answered one doubles that wait (2, 4, 8, then 16 h at most) — a kit
that cannot produce a full set (a flat cuff, a device clock the gateway refuses) is the hub's
phone call, shown by the missed task, not more prompts to the patient. At night (the
patient's local night, :attr:`RequestConfig.night_start`–``night_end``) only triggers serious
enough to wake someone (partial lower bound ≥ 5, or a single 3 with parameters missing) make a
request, marked ``wake`` — the hub phones the patient; lesser ones wait for the morning.

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import datetime as dt
import enum
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from alerting.candidates import Evidence
from alerting.news2 import News2Score

LONDON: Final = zoneinfo.ZoneInfo("Europe/London")


class Reason(enum.StrEnum):
    PARTIAL_TROUBLE = "partial_trouble"
    DOUBTFUL_READING = "doubtful_reading"
    RISING_TREND = "rising_trend"


class Status(enum.StrEnum):
    OPEN = "open"
    DONE = "done"  # a complete set measured after the request arrived
    MISSED = "missed"  # no complete set by the due time


@dataclass(frozen=True, slots=True)
class RequestConfig:
    """Tunables; each default is justified here."""

    #: Due 30 min after the request ("requested 14:05, due 14:35"): a patient with the kit at
    #: hand takes a set in 5–10 min; after 30 min the hub should phone instead of waiting.
    #: It is also NEWS2's window for an urgent assessment at medium risk (Chart 4, 1-hourly).
    answer_within: dt.timedelta = dt.timedelta(minutes=30)
    #: At most one request per patient per 2 h: half the 4-hourly minimum monitoring of
    #: NEWS2 1–4, so a patient whose trouble persists is asked at most twice a cycle; the
    #: alert itself (not more requests) is what escalates persisting trouble.
    cooldown: dt.timedelta = dt.timedelta(hours=2)
    #: Doublings of the cooldown after consecutive missed requests (2 h → 16 h at most: at
    #: least one prompt a day stays possible while the hub sorts out the kit).
    max_doublings: int = 3
    #: A partial lower bound of 3 is already "low" risk with parameters unknown; each missing
    #: parameter could add up to 3 more (a medium or high score hiding behind missing data).
    partial_lower_bound: int = 3
    #: Worth waking a patient for: a partial lower bound at medium risk (≥ 5, Chart 2).
    wake_lower_bound: int = 5
    #: A rising trend with a complete set this fresh adds nothing a new set would tell.
    fresh_full_set: dt.timedelta = dt.timedelta(hours=1)
    #: The patient's night, local wall clock: spot checks in virtual wards run 08:00–20:00 and
    #: people sleep roughly 22:00–07:00; outside it a routine request is sent.
    night_start: dt.time = dt.time(22, 0)
    night_end: dt.time = dt.time(7, 0)
    tz: zoneinfo.ZoneInfo = LONDON


@dataclass(frozen=True, slots=True)
class PastRequest:
    """The patient's latest request (a row of ``tasks`` of kind ``full_set``)."""

    id: int
    requested_at: dt.datetime
    due_at: dt.datetime
    status: Status
    reason: Reason
    #: Requests missed in a row up to this one (this one included) since the last answer.
    misses: int = 0

    def wait(self, config: RequestConfig) -> dt.timedelta:
        """How long after this request the next may be made."""
        factor: int = 2 ** min(self.misses, config.max_doublings)
        return config.cooldown * factor


@dataclass(frozen=True, slots=True)
class FullSetRequest:
    """Ask for a full set now: what the command and the task carry."""

    reason: Reason
    detail: str
    requested_at: dt.datetime
    due_at: dt.datetime
    wake: bool
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Settlement:
    status: Status
    at: dt.datetime
    outcome: str


def at_night(now: dt.datetime, config: RequestConfig = RequestConfig()) -> bool:
    """Is ``now`` in the patient's night (local wall clock, DST-correct)?"""
    local = now.astimezone(config.tz).time()
    if config.night_start > config.night_end:
        return local >= config.night_start or local < config.night_end
    return config.night_start <= local < config.night_end


def full_set_at(score: News2Score | None, used: Iterable[Evidence]) -> dt.datetime | None:
    """When the current complete set was taken (its oldest reading), or None if partial."""
    if score is None or not score.complete:
        return None
    times = [e.measured_at for e in used]
    return min(times) if times else None


def _partial_trouble(score: News2Score | None, config: RequestConfig) -> tuple[str, bool] | None:
    if score is None or score.complete:
        return None
    if score.total < config.partial_lower_bound and not score.any_single_3:
        return None
    missing = ", ".join(sorted(p.value for p in score.missing))
    what = f"NEWS2 at least {score.total}" + (" with a single parameter scoring 3"
                                              if score.any_single_3 else "")
    wake = score.total >= config.wake_lower_bound or score.any_single_3
    return f"{what}; missing {missing}", wake


def decide(score: News2Score | None, now: dt.datetime, *, last: PastRequest | None = None,
           last_full_set_at: dt.datetime | None = None, doubtful: bool = False,
           doubt_reason: str = "", rising: bool = False,
           config: RequestConfig = RequestConfig()) -> FullSetRequest | None:
    """A full-set request at ``now``, or None (no trigger, one already open, cooling down, night).

    ``score`` is the patient's current NEWS2 (None when nothing is fresh); ``last`` their
    latest request; ``last_full_set_at`` when their latest complete set was taken;
    ``doubtful``/``doubt_reason`` the artefact stage's verdict on a spot reading; ``rising``
    whether a trend finding fires.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    if last is not None and (last.status is Status.OPEN
                             or now - last.requested_at < last.wait(config)):
        return None
    partial = _partial_trouble(score, config)
    trigger: tuple[Reason, str, bool] | None = None
    if partial is not None:
        trigger = (Reason.PARTIAL_TROUBLE, partial[0], partial[1])
    elif doubtful:
        trigger = (Reason.DOUBTFUL_READING, doubt_reason or "a doubtful reading", False)
    elif rising and (last_full_set_at is None or now - last_full_set_at > config.fresh_full_set):
        trigger = (Reason.RISING_TREND, "a rising trend without a recent full set", False)
    if trigger is None:
        return None
    reason, detail, serious = trigger
    night = at_night(now, config)
    if night and not serious:
        return None
    missing = tuple(sorted(p.value for p in score.missing)) if score is not None else ()
    return FullSetRequest(reason, detail, now, now + config.answer_within, wake=night,
                          missing=missing)


def settle(request: PastRequest, score: News2Score | None, used: Iterable[Evidence],
           now: dt.datetime) -> Settlement | None:
    """Is the open ``request`` answered (a complete set, every reading taken after it) or missed?"""
    if request.status is not Status.OPEN:
        return None
    used = tuple(used)
    taken = full_set_at(score, used)
    if taken is not None and taken >= request.requested_at:
        answered = max(e.measured_at for e in used)
        minutes = (answered - request.requested_at).total_seconds() / 60
        return Settlement(Status.DONE, answered, f"full set taken {minutes:.0f} min after request")
    if now >= request.due_at:
        return Settlement(Status.MISSED, request.due_at, "no full set by the due time")
    return None
