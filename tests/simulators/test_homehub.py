"""The simulated home hub answers full-set commands: deterministically, with a realistic
compliance rate and delay, not at night unless woken by a call — and the answer's readings
join the engine's stream."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.contract import (
    CommandKind,
    CommandPayload,
    commands_topic,
    encode_command,
    parse_topic,
)
from simulators import homehub
from simulators.devices import Outbound
from simulators.engine import Engine, stream_digest
from simulators.publisher import Publisher, commands_to, publish_stream
from simulators.scenario import DeviceType, load
from ward.embedded import Broker

UTC = dt.UTC
DAY = dt.datetime(2026, 1, 12, 14, 5, tzinfo=UTC)  # 14:05 GMT
NIGHT = dt.datetime(2026, 1, 13, 2, 0, tzinfo=UTC)  # 02:00 GMT


def _command(at: dt.datetime, n: int = 1, *, wake: bool = False) -> CommandPayload:
    return CommandPayload(command_id=f"task-{n}", kind=CommandKind.FULL_SET, issued_at=at,
                          due_at=at + dt.timedelta(minutes=30), reason="partial_trouble",
                          detail="", wake=wake)


def test_the_same_command_gets_the_same_answer_and_others_differ() -> None:
    first = homehub.answer_at(_command(DAY, 1), "hub-1", seed=7)
    assert first == homehub.answer_at(_command(DAY, 1), "hub-1", seed=7)
    answers = {homehub.answer_at(_command(DAY, n), "hub-1", seed=7) for n in range(50)}
    assert len(answers) > 30


@pytest.mark.parametrize(("at", "wake", "rate", "median_min", "lo_min", "hi_min"), [
    (DAY, False, 0.80, 10.0, 3.0, 120.0),  # by day: prompted, answered within the hour or so
    (NIGHT, True, 0.90, 6.0, 3.0, 60.0),  # at night with a call: woken, answered quickly
    # At night without a call: seen on waking (07:00–08:00 GMT), 5–7 h after the request.
    (NIGHT, False, 0.80, 5 * 60 + 40.0, 5 * 60.0, 7 * 60.0 + 30),
])
def test_compliance_and_delay(at: dt.datetime, wake: bool, rate: float, median_min: float,
                              lo_min: float, hi_min: float) -> None:
    n = 2000
    answers = [homehub.answer_at(_command(at, i, wake=wake), f"hub-{i % 40}", seed=3)
               for i in range(n)]
    taken = [(a - at).total_seconds() / 60 for a in answers if a is not None]
    assert abs(len(taken) / n - rate) < 0.03  # 2,000 draws: ±3 points is > 3 standard errors
    assert abs(statistics.median(taken) - median_min) < max(1.5, median_min * 0.05)
    assert lo_min <= min(taken)
    assert max(taken) <= hi_min


SPAN = dt.timedelta(hours=3)


def _closed_loop(command_at: dt.datetime | None) -> tuple[Engine, list[Outbound]]:
    engine = Engine(load("demo"), duration=SPAN)
    hub = next(d.spec.device_id for d in engine.devices if d.spec.type is DeviceType.HOME_HUB)
    out: list[Outbound] = []
    sent = False
    for message in engine.messages():
        out.append(message)
        if command_at is not None and not sent and message.at >= command_at.timestamp():
            sent = True
            engine.command(commands_topic(hub), encode_command(_command(command_at, 42)),
                           command_at)
    return engine, out


def _digest(messages: list[Outbound]) -> str:
    def it() -> Iterator[Outbound]:
        yield from messages
    return stream_digest(it())[0]


def test_the_engine_streams_the_answer_at_the_instant_it_is_taken() -> None:
    start = load("demo").start  # 06:00 UTC: 06:00 GMT, so 08:30 is a waking hour
    at = start + dt.timedelta(hours=2, minutes=30)
    engine, stream = _closed_loop(at)
    (hub, command_id, answered), = engine.answers
    assert command_id == "task-42"
    assert answered is not None  # this seed's patient answers (compliance is tested above)
    assert answered > at
    kit = {s.device_id for d in engine.devices if d.spec.device_id == hub
           for s in d.patient.devices}
    at_answer = {parse_topic(m.topic)[0] for m in stream if m.at == answered.timestamp()}
    vitals = {s.device_id for d in engine.devices if d.spec.device_id == hub
              for s in d.patient.devices if s.type is not DeviceType.INFUSION_PUMP}
    assert vitals <= at_answer <= kit  # every vital-sign device of the kit measured then
    # Deterministic: the same run and the same command give the same bytes…
    assert _digest(stream) == _digest(_closed_loop(at)[1])
    # …and the answer is all that changed: without its messages, the open-loop stream.
    without = [m for m in stream
               if not (m.at == answered.timestamp() and parse_topic(m.topic)[0] in kit)]
    assert len(without) < len(stream)
    assert _digest(without) == _digest(_closed_loop(None)[1])
    # …and without a command the stream is exactly the open-loop one.
    assert _digest(_closed_loop(None)[1]) == stream_digest(
        Engine(load("demo"), duration=SPAN).messages())[0]


def test_a_live_run_hands_commands_from_the_broker_to_the_home_hubs(
        broker: Broker, poll: Callable[..., None], unique: str) -> None:
    engine = Engine(load("demo"), duration=SPAN)
    hub = next(d.spec.device_id for d in engine.devices if d.spec.type is DeviceType.HOME_HUB)
    publisher = Publisher(broker.url, client_id=f"sim-{unique}", listen=True)
    platform = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"platform-{unique}")
    platform.connect("127.0.0.1", int(broker.url.rsplit(":", 1)[1]))
    platform.loop_start()
    published: list[Outbound] = []
    at = load("demo").start + dt.timedelta(hours=2, minutes=30)

    def stream() -> Iterator[Outbound]:
        sent = False
        for message in engine.messages():
            if not sent and message.at >= at.timestamp():
                sent = True
                info = platform.publish(commands_topic(hub),
                                        encode_command(_command(at, 42)), qos=1)
                info.wait_for_publish(5)
                poll(lambda: len(publisher.commands) > 0, 10, "the command to reach the hub")
            yield message

    def publish(message: Outbound) -> None:
        published.append(message)
        if not message.retain:  # leave no retained demo statuses for later tests to read
            publisher.publish(message)

    try:
        assert publisher.listening(10)
        publish_stream(stream(), publish, inbox=commands_to(engine, publisher))
    finally:
        platform.loop_stop()
        platform.disconnect()
        publisher.close()
    (got_hub, command_id, answered), = engine.answers
    assert (got_hub, command_id) == (hub, "task-42")
    assert answered is not None
    assert answered > at
    # Exactly what the offline closed loop gives: the broker only carried the command.
    assert _digest(published) == _digest(_closed_loop(at)[1])
