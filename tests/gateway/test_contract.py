"""The wire contract: topic grammar, shipped schemas, deterministic encoders, round trips."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import schemas
from gateway.contract import (
    Channel,
    Measurement,
    RejectReason,
    TopicError,
    encode_readings,
    encode_senml,
    encode_status,
    parse_topic,
    readings_topic,
    results_topic,
    senml_topic,
    shared_filter,
    status_topic,
)
from gateway.decode import DecodedMessage, DecodedStatus, Limits, decode
from ward.domain.vitals import CATALOGUE, VitalCode

NOW = dt.datetime(2026, 11, 24, 9, 15, 5, tzinfo=dt.UTC)


def test_topics_round_trip() -> None:
    for make, channel in ((readings_topic, Channel.READINGS), (senml_topic, Channel.SENML),
                          (status_topic, Channel.STATUS), (results_topic, Channel.RESULTS)):
        assert parse_topic(make("pox-1")) == ("pox-1", channel)
    assert readings_topic("pox-1") == "vw/v1/devices/pox-1/readings"


@pytest.mark.parametrize("topic", [
    "vw/v1/devices/pox-1", "vw/v2/devices/pox-1/readings", "vw/v1/devices/+/readings",
    "vw/v1/devices/pox-1/readings/extra", "vw/v1/devices/pox-1/other", "",
    "vw/v1/devices//readings",
])
def test_bad_topics_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(topic)


def test_topic_refuses_wildcards_in_device_id() -> None:
    with pytest.raises(ValueError, match="invalid device id"):
        readings_topic("a/b")


def test_shared_filter() -> None:
    assert shared_filter("vw-gateway", Channel.READINGS) == "$share/vw-gateway/vw/v1/devices/+/readings"
    with pytest.raises(ValueError, match="group"):
        shared_filter("a/b", Channel.READINGS)


def test_shipped_schemas_equal_generated() -> None:
    for file_name, text in schemas.rendered().items():
        shipped = (schemas.SCHEMA_DIR / file_name).read_text(encoding="utf-8")
        assert shipped == text, f"{file_name} is stale: run python -m gateway.schemas"
    assert {p.name for p in schemas.SCHEMA_DIR.glob("*.json")} == set(schemas.rendered())


def test_encoders_are_deterministic_and_compact() -> None:
    t = dt.datetime(2026, 11, 24, 9, 15, tzinfo=dt.UTC)
    one = encode_readings("m1", NOW, [Measurement("spo2", 94, "%", t)])
    two = encode_readings("m1", NOW, [Measurement("spo2", 94, "%", t)])
    assert one == two
    assert one == (b'{"msg_id":"m1","sent_at":"2026-11-24T09:15:05Z","readings":[{"code":"spo2",'
                   b'"value":94,"unit":"%","measured_at":"2026-11-24T09:15:00Z"}]}')
    assert encode_status(online=False) == b'{"online":false}'


def test_naive_datetimes_are_refused_by_the_encoder() -> None:
    with pytest.raises(ValueError, match="naive"):
        encode_readings("m", dt.datetime(2026, 1, 1), [])  # noqa: DTZ001


instants = st.datetimes(
    min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2026, 11, 24, 9),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
)


@st.composite
def measurements(draw: st.DrawFn, *, millis: bool = False) -> Measurement:
    spec = CATALOGUE[draw(st.sampled_from(list(VitalCode)))]
    when = draw(instants)
    if millis:
        when = when.replace(microsecond=when.microsecond // 1000 * 1000)
    if spec.categorical and draw(st.booleans()):
        return Measurement(spec.code.value, draw(st.sampled_from(spec.labels)), "", when)
    value = draw(st.floats(spec.low, spec.high, allow_nan=False))
    if spec.categorical:
        value = float(round(value))
    return Measurement(spec.code.value, value, spec.unit, when)


def _unique(items: list[Measurement]) -> list[Measurement]:
    seen, out = set(), []
    for m in items:
        if (m.code, m.measured_at) not in seen:
            seen.add((m.code, m.measured_at))
            out.append(m)
    return out


def _expected(m: Measurement) -> tuple[str, float, dt.datetime]:
    spec = CATALOGUE[VitalCode(m.code)]
    value = float(spec.labels.index(m.value)) if isinstance(m.value, str) else float(m.value)
    return (m.code, value, m.measured_at)


@given(st.lists(measurements(), min_size=1, max_size=20), st.text(min_size=1, max_size=40))
def test_native_encode_decode_round_trip(items: list[Measurement], msg_id: str) -> None:
    items = _unique(items)
    payload = encode_readings(msg_id, NOW, items)
    decoded = decode(readings_topic("dev-1"), payload, NOW, Limits(max_payload_bytes=1 << 20))
    assert isinstance(decoded, DecodedMessage), decoded
    assert decoded.problems == ()
    assert decoded.msg_id == msg_id
    assert [(r.code, r.value, r.measured_at) for r in decoded.readings] == [
        _expected(m) for m in items]
    assert encode_readings(msg_id, NOW, items) == payload


@given(st.lists(measurements(millis=True), min_size=1, max_size=20))
def test_senml_encode_decode_round_trip(items: list[Measurement]) -> None:
    items = _unique(items)
    payload = encode_senml("dev-1", items)
    decoded = decode(senml_topic("dev-1"), payload, NOW, Limits(max_payload_bytes=1 << 20))
    assert isinstance(decoded, DecodedMessage), decoded
    assert decoded.problems == ()
    got = [(r.code, r.value, r.measured_at) for r in decoded.readings]
    want = [_expected(m) for m in items]
    assert [g[:2] for g in got] == [w[:2] for w in want]
    for (_, _, got_at), (_, _, want_at) in zip(got, want, strict=True):
        assert abs(got_at - want_at) <= dt.timedelta(microseconds=1)


@given(st.booleans(), st.none() | st.floats(0, 100), st.none() | st.integers(-120, 0),
       st.none() | st.text(max_size=10))
def test_status_round_trip(online: bool, battery: float | None, signal: int | None,
                           firmware: str | None) -> None:
    payload = encode_status(online=online, battery_pct=battery, signal_dbm=signal,
                            firmware=firmware, sent_at=NOW)
    decoded = decode(status_topic("dev-1"), payload, NOW, Limits())
    assert decoded == DecodedStatus("dev-1", online, battery,
                                    None if signal is None else float(signal), firmware, NOW)


def test_reason_codes_are_stable() -> None:
    # Devices and dashboards match on these strings: renaming one breaks them.
    assert {r.value for r in RejectReason} >= {
        "malformed_json", "schema_invalid", "payload_too_large", "wrong_topic",
        "unknown_device", "device_inactive", "unknown_code", "unknown_unit", "unknown_label",
        "implausible_value", "future_timestamp", "no_patient_assignment", "repeated_reading",
        "internal_error"}


def test_results_schema_lists_every_reason() -> None:
    schema = json.loads((schemas.SCHEMA_DIR / "results.schema.json").read_text())
    assert set(schema["$defs"]["RejectReason"]["enum"]) == {r.value for r in RejectReason}
