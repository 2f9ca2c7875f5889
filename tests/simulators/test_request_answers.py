"""A full-set request adds its answer to the stream and takes nothing away.

The model (`simulators.devices.VirtualDevice.answer`): an answer is an extra measurement of
every vital-sign device of the patient's kit at the answer's own instant, drawn from a
generator of its own (seed, patient, device, instant, command). The regular schedule (spot
check slots, their jitter, the wearable's interval), the device's own generator, its battery
(the drain is per hour, not per measurement: an answer costs nothing) and its link are
untouched. So the stream with requests is the stream without them, message for message,
same bytes, same instants, same order, plus the answers' messages (and their faults: an
answer may itself be late, duplicated, malformed, or held by an offline device and sent
after the regular backlog when it reconnects).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from dataclasses import dataclass

from gateway.contract import (
    Channel,
    CommandKind,
    CommandPayload,
    commands_topic,
    encode_command,
    parse_topic,
)
from simulators.devices import Outbound
from simulators.engine import Engine
from simulators.scenario import DeviceType, load

UTC = dt.UTC
Key = tuple[float, str, bytes, int, bool]


@dataclass(frozen=True)
class Asked:
    hub: str
    at: dt.datetime
    kit: frozenset[str]  # device ids of the patient's vital-sign devices
    next_slot: float  # the earliest next regular measurement of the kit when asked


def _key(m: Outbound) -> Key:
    return (m.at, m.topic, m.payload, m.qos, m.retain)


def _run(name: str, seed: int, hours: float,
         asks: tuple[tuple[dt.datetime, int, bool], ...]) -> tuple[Engine, list[Outbound],
                                                                   list[Asked]]:
    """The run, sending at each (instant, number of hubs, wake) a full set request to that
    many home hubs (every third hub from the first, so kits of both kinds are asked)."""
    engine = Engine(load(name), seed=seed, duration=dt.timedelta(hours=hours))
    hubs = [i for i, d in enumerate(engine.devices) if d.spec.type is DeviceType.HOME_HUB]
    pending = sorted(asks)
    asked: list[Asked] = []
    out: list[Outbound] = []
    for message in engine.messages():
        out.append(message)
        while pending and message.at >= pending[0][0].timestamp():
            at, count, wake = pending.pop(0)
            for i in hubs[: 3 * count : 3]:
                hub = engine.devices[i]
                kit = [d for d in engine.devices if d.patient.index == hub.patient.index
                       and d.spec.type is not DeviceType.INFUSION_PUMP]
                command = CommandPayload(
                    command_id=f"ask-{len(asked)}", kind=CommandKind.FULL_SET, issued_at=at,
                    due_at=at + dt.timedelta(minutes=30), reason="partial_trouble", detail="",
                    wake=wake)
                asked.append(Asked(hub.spec.device_id, at,
                                   frozenset(d.spec.device_id for d in kit),
                                   min(d.next_measure for d in kit)))
                engine.command(commands_topic(hub.spec.device_id), encode_command(command), at)
    return engine, out, asked


@functools.cache
def _without(name: str, seed: int, hours: float) -> tuple[Key, ...]:
    return tuple(_key(m) for m in _run(name, seed, hours, ())[1])


def _extras(with_: list[Outbound], without: tuple[Key, ...]) -> list[Outbound]:
    """What the run with requests has beyond the run without; fails unless the run without
    is exactly what is left, in the same order."""
    extra = Counter(map(_key, with_)) - Counter(without)
    missing = Counter(without) - Counter(map(_key, with_))
    assert not missing, f"{sum(missing.values())} regular messages lost or changed"
    left = extra.copy()
    kept: list[Key] = []
    added: list[Outbound] = []
    for m in with_:
        if left[_key(m)] > 0:
            left[_key(m)] -= 1
            added.append(m)
        else:
            kept.append(_key(m))
    assert tuple(kept) == without  # same messages, same instants, same order
    return added


def _answered(engine: Engine, asked: list[Asked]) -> dict[str, float]:
    """Hub → answer instant, for the answers taken within the run."""
    assert engine.end is not None
    got = {hub: at.timestamp() for hub, _, at in engine.answers
           if at is not None and at.timestamp() < engine.end}
    assert {a.hub for a in asked} >= set(got)
    return got


# quiet-ward (clean devices, spot checks 4 a day ~08:00, 12:00, 16:00, 20:00), seed 1: a
# request at 23:00 GMT to 20 home hubs, answered on waking the next morning (07:00–08:30),
# some before and some after their kit's 08:00 slot.
NIGHT = (dt.datetime(2026, 1, 5, 23, 0, tzinfo=UTC), 20, False)


def test_a_night_request_answered_next_morning_adds_its_answer_and_nothing_else() -> None:
    engine, stream, asked = _run("quiet-ward", 1, 30.0, (NIGHT,))
    answered = _answered(engine, asked)
    assert len(answered) >= 10
    morning = dt.datetime(2026, 1, 6, 7, 0, tzinfo=UTC).timestamp()
    assert all(morning <= t < morning + 2 * 3600 for t in answered.values())
    # Some answers come after the kit's next regular slot (the 08:00 check): that slot, and
    # every slot after it, is still measured as without the request.
    assert any(answered[a.hub] > a.next_slot for a in asked if a.hub in answered)
    assert any(answered[a.hub] < a.next_slot for a in asked if a.hub in answered)
    added = _extras(stream, _without("quiet-ward", 1, 30.0))
    # Clean devices: exactly one readings message per vital-sign device of each answering
    # kit, at the answer's instant.
    expected = Counter((parse_topic(m.topic)[0], m.at) for m in added)
    assert expected == Counter((device, answered[a.hub]) for a in asked if a.hub in answered
                               for device in a.kit)
    assert all(parse_topic(m.topic)[1] in (Channel.READINGS, Channel.SENML) for m in added)


def test_day_and_night_requests_on_faulty_devices_add_only_their_answers() -> None:
    """noisy-devices (every fault), seed 2: requests by day (8 spot checks a day, so many
    answers fall after the kit's next slot), a night one without a call and one with."""
    asks = (
        (dt.datetime(2026, 1, 5, 9, 55, tzinfo=UTC), 12, False),
        (dt.datetime(2026, 1, 5, 14, 0, tzinfo=UTC), 12, False),
        (dt.datetime(2026, 1, 5, 22, 30, tzinfo=UTC), 12, False),
        (dt.datetime(2026, 1, 6, 2, 0, tzinfo=UTC), 12, True),
    )
    engine, stream, asked = _run("noisy-devices", 2, 30.0, asks)
    answered = {hub: t for hub, _, at in engine.answers if at is not None
                for t in [at.timestamp()] if engine.end is not None and t < engine.end}
    assert len(answered) >= 10
    assert any(t > a.next_slot for a in asked for h, t in answered.items() if h == a.hub)
    added = _extras(stream, _without("noisy-devices", 2, 30.0))
    assert added
    kits = {a.hub: a.kit for a in asked}
    answering = set().union(*(kits[h] for h in {h for h, _, at in engine.answers
                                                if at is not None}))
    first = min(a.at.timestamp() for a in asked)
    for m in added:  # only the answering kits' readings, never before a request
        device, channel = parse_topic(m.topic)
        assert device in answering
        assert channel in (Channel.READINGS, Channel.SENML)
        assert m.at >= first


def test_requests_keep_the_run_deterministic() -> None:
    asks = ((dt.datetime(2026, 1, 5, 10, 0, tzinfo=UTC), 10, False),)
    first = [_key(m) for m in _run("noisy-devices", 2, 14.0, asks)[1]]
    assert first == [_key(m) for m in _run("noisy-devices", 2, 14.0, asks)[1]]
    assert len(first) > len(_without("noisy-devices", 2, 14.0))
