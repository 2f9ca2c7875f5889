"""When the platform asks a home hub for a full set (alerting.requests): pure, table-driven,
with the clock passed in."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from alerting import requests
from alerting.candidates import Evidence
from alerting.news2 import Consciousness, Observations, score
from alerting.requests import PastRequest, Reason, RequestConfig, Status

UTC = dt.UTC
DAY = dt.datetime(2026, 1, 12, 14, 5, tzinfo=UTC)  # Monday 14:05 GMT
NIGHT = dt.datetime(2026, 1, 13, 2, 0, tzinfo=UTC)  # 02:00 GMT
FULL_NORMAL: dict[str, Any] = {"resp_rate": 16, "spo2": 97, "on_oxygen": False,
                               "systolic_bp": 125, "pulse": 70,
                               "consciousness": Consciousness.A, "temperature": 36.8}


def _score(**values: Any) -> Any:
    return score(Observations(**values))


# (name, observations, doubtful, rising, at, expected reason or None, wake)
CASES = [
    ("complete normal set", FULL_NORMAL, False, False, DAY, None, False),
    ("complete high set: the alert speaks, no request", {**FULL_NORMAL, "resp_rate": 26,
     "spo2": 90, "pulse": 125}, False, False, DAY, None, False),
    ("partial, known parts score 0", {"spo2": 97, "pulse": 70}, False, False, DAY, None, False),
    ("partial, lower bound 2", {"spo2": 94, "pulse": 95}, False, False, DAY, None, False),
    ("partial, lower bound 3", {"spo2": 93, "pulse": 95}, False, False, DAY,
     Reason.PARTIAL_TROUBLE, False),
    ("partial, a single 3 (SpO2 91)", {"spo2": 91, "pulse": 70}, False, False, DAY,
     Reason.PARTIAL_TROUBLE, False),
    ("partial, lower bound 3 at night waits for morning", {"spo2": 93, "pulse": 95}, False,
     False, NIGHT, None, False),
    ("partial, single 3 at night wakes", {"spo2": 91, "pulse": 70}, False, False, NIGHT,
     Reason.PARTIAL_TROUBLE, True),
    ("partial, lower bound 5 at night wakes", {"spo2": 93, "pulse": 115, "temperature": 39.2},
     False, False, NIGHT, Reason.PARTIAL_TROUBLE, True),
    ("doubtful spot reading", FULL_NORMAL, True, False, DAY, Reason.DOUBTFUL_READING, False),
    ("doubtful at night waits", FULL_NORMAL, True, False, NIGHT, None, False),
    ("partial trouble wins over doubt", {"spo2": 91}, True, False, DAY,
     Reason.PARTIAL_TROUBLE, False),
    ("rising trend, no complete set", {"spo2": 95, "pulse": 92}, False, True, DAY,
     Reason.RISING_TREND, False),
    ("rising trend, complete set 10 min old", FULL_NORMAL, False, True, DAY, None, False),
    ("nothing fresh at all", None, False, False, DAY, None, False),
    ("consciousness C with the rest missing: single 3", {"consciousness": Consciousness.C},
     False, False, DAY, Reason.PARTIAL_TROUBLE, False),
]


@pytest.mark.parametrize(("name", "obs", "doubtful", "rising", "at", "reason", "wake"), CASES,
                         ids=[c[0] for c in CASES])
def test_decide(name: str, obs: dict[str, Any] | None, doubtful: bool, rising: bool,
                at: dt.datetime, reason: Reason | None, wake: bool) -> None:
    del name
    result = None if obs is None else _score(**obs)
    full_at = at - dt.timedelta(minutes=10) if result is not None and result.complete else None
    decision = requests.decide(result, at, last_full_set_at=full_at, doubtful=doubtful,
                               doubt_reason="SpO2 97→84 in one spot reading", rising=rising)
    if reason is None:
        assert decision is None
        return
    assert decision is not None
    assert (decision.reason, decision.wake) == (reason, wake)
    assert decision.requested_at == at
    assert decision.due_at == at + dt.timedelta(minutes=30)  # "requested 14:05, due 14:35"
    if reason is Reason.DOUBTFUL_READING:
        assert decision.detail == "SpO2 97→84 in one spot reading"
    if reason is Reason.PARTIAL_TROUBLE:
        assert result is not None
        assert set(decision.missing) == {p.value for p in result.missing}


TROUBLE = {"spo2": 91, "pulse": 70}


@pytest.mark.parametrize(("last", "at", "asks"), [
    (None, DAY, True),
    (PastRequest(1, DAY - dt.timedelta(minutes=20), DAY + dt.timedelta(minutes=10), Status.OPEN,
                 Reason.PARTIAL_TROUBLE), DAY, False),  # one open request at a time
    # Still open long after its due time (nobody settled it): still no second one.
    (PastRequest(1, DAY - dt.timedelta(hours=5), DAY - dt.timedelta(hours=4, minutes=30),
                 Status.OPEN, Reason.PARTIAL_TROUBLE), DAY, False),
    (PastRequest(1, DAY - dt.timedelta(minutes=119), DAY - dt.timedelta(minutes=89),
                 Status.MISSED, Reason.PARTIAL_TROUBLE), DAY, False),  # cooling down
    (PastRequest(1, DAY - dt.timedelta(minutes=119), DAY - dt.timedelta(minutes=89),
                 Status.DONE, Reason.DOUBTFUL_READING), DAY, False),
    (PastRequest(1, DAY - dt.timedelta(hours=2), DAY - dt.timedelta(minutes=90),
                 Status.MISSED, Reason.PARTIAL_TROUBLE), DAY, True),  # cooldown over
])
def test_cooldown_never_spams(last: PastRequest | None, at: dt.datetime, asks: bool) -> None:
    assert (requests.decide(_score(**TROUBLE), at, last=last) is not None) is asks


def test_a_reading_every_minute_for_a_day_asks_at_most_every_cooldown() -> None:
    """A wearable at one reading a minute with a persisting single 3: 12 requests a day at
    most in daytime (cooldown 2 h), none between 22:00 and 07:00 except to wake."""
    config = RequestConfig()
    last: PastRequest | None = None
    made: list[dt.datetime] = []
    start = dt.datetime(2026, 1, 12, 0, 0, tzinfo=UTC)
    low = _score(spo2=93, pulse=95)  # lower bound 3, not worth waking for
    for minute in range(24 * 60):
        now = start + dt.timedelta(minutes=minute)
        if last is not None and last.status is Status.OPEN and now >= last.due_at:
            last = PastRequest(last.id, last.requested_at, last.due_at, Status.MISSED, last.reason)
        decision = requests.decide(low, now, last=last, config=config)
        if decision is not None:
            made.append(now)
            last = PastRequest(len(made), now, decision.due_at, Status.OPEN, decision.reason)
    gaps = [b - a for a, b in itertools.pairwise(made)]
    assert all(g >= config.cooldown for g in gaps)
    assert all(not requests.at_night(t) for t in made)
    assert made[0] == dt.datetime(2026, 1, 12, 7, 0, tzinfo=UTC)  # first thing after the night
    assert len(made) == 8  # 07:00, 09:00, … 21:00


def _ev(code: str, at: dt.datetime) -> Evidence:
    return Evidence(at, code, "dev-1", 1.0)


CODES = ("resp_rate", "spo2", "on_oxygen", "systolic_bp", "pulse", "consciousness",
         "temperature")


@pytest.mark.parametrize(("obs", "taken", "now", "status"), [
    (FULL_NORMAL, [DAY + dt.timedelta(minutes=m) for m in (3, 4, 4, 6, 6, 7, 9)],
     DAY + dt.timedelta(minutes=9), Status.DONE),
    # A complete set, but the SpO2 in it predates the request: not an answer yet.
    (FULL_NORMAL, [DAY - dt.timedelta(minutes=1)] + [DAY + dt.timedelta(minutes=5)] * 6,
     DAY + dt.timedelta(minutes=10), None),
    ({"spo2": 97, "pulse": 70}, [DAY + dt.timedelta(minutes=5)] * 2,
     DAY + dt.timedelta(minutes=10), None),  # partial: not an answer
    ({"spo2": 97, "pulse": 70}, [DAY + dt.timedelta(minutes=5)] * 2,
     DAY + dt.timedelta(minutes=30), Status.MISSED),
])
def test_settle(obs: dict[str, Any], taken: list[dt.datetime], now: dt.datetime,
                status: Status | None) -> None:
    request = PastRequest(1, DAY, DAY + dt.timedelta(minutes=30), Status.OPEN,
                          Reason.PARTIAL_TROUBLE)
    result = _score(**obs)
    used = [_ev(code, at) for code, at in zip(
        [c for c in CODES if c in obs or (c == "on_oxygen" and "on_oxygen" in obs)], taken,
        strict=False)]
    settled = requests.settle(request, result, used, now)
    assert (settled.status if settled else None) is status
    if status is Status.DONE:
        assert settled is not None
        assert settled.at == DAY + dt.timedelta(minutes=9)
        assert settled.outcome == "full set taken 9 min after request"


@pytest.mark.parametrize(("instant", "night"), [
    (dt.datetime(2026, 3, 28, 21, 59, tzinfo=UTC), False),  # 21:59 GMT
    (dt.datetime(2026, 3, 28, 22, 0, tzinfo=UTC), True),
    (dt.datetime(2026, 3, 29, 6, 30, tzinfo=UTC), False),  # 07:30 BST: clocks went forward
    (dt.datetime(2026, 7, 1, 21, 30, tzinfo=UTC), True),  # 22:30 BST
    (dt.datetime(2026, 10, 25, 6, 30, tzinfo=UTC), True),  # 06:30 GMT: clocks went back
])
def test_the_patients_night_is_london_wall_clock(instant: dt.datetime, night: bool) -> None:
    assert requests.at_night(instant) is night


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        requests.decide(None, dt.datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


@pytest.mark.parametrize(("status", "misses", "hours_later", "asks"), [
    (Status.MISSED, 1, 3.9, False),  # one miss: wait 4 h
    (Status.MISSED, 1, 4.0, True),
    (Status.MISSED, 2, 7.9, False),  # two in a row: 8 h
    (Status.MISSED, 3, 15.9, False),  # three: 16 h, the cap
    (Status.MISSED, 9, 16.0, True),
    (Status.DONE, 0, 2.0, True),  # answered: back to 2 h
])
def test_missed_requests_in_a_row_double_the_wait(status: Status, misses: int,
                                                  hours_later: float, asks: bool) -> None:
    at = DAY - dt.timedelta(hours=hours_later)
    last = PastRequest(1, at, at + dt.timedelta(minutes=30), status, Reason.PARTIAL_TROUBLE,
                       misses)
    assert (requests.decide(_score(**TROUBLE), DAY, last=last) is not None) is asks
