"""The wire contract: topic grammar, shipped schemas, deterministic encoders, round trips."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

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
from gateway.decode import DecodedMessage, DecodedStatus, Limits, Rejection, decode
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
        "internal_error", "conflicting_reading"}


def test_results_schema_lists_every_reason() -> None:
    schema = json.loads((schemas.SCHEMA_DIR / "results.schema.json").read_text())
    assert set(schema["$defs"]["RejectReason"]["enum"]) == {r.value for r in RejectReason}


# ---------------------------------------------------------------------------------------------
# RFC 8428 §4, exactly: one row per rule (pack → stored (code, value) pairs, or the reason).

SENML_AT = NOW.timestamp() - 60  # an absolute time (≥ 2**28), a minute before NOW


def _pack(*records: dict[str, object]) -> bytes:
    return json.dumps(list(records)).encode()


BN = {"bn": "urn:dev:vw:dev-1:", "bt": SENML_AT}
# (case, pack, readings stored as (code, value), problems as (reason, index), whole pack refused)
SENML_RULES: list[tuple[str, bytes, list[tuple[str, float]], list[tuple[RejectReason, int | None]]]] = [
    ("bver 10 (the default) is understood",
     _pack({**BN, "bver": 10, "n": "spo2", "u": "%", "v": 95}), [("spo2", 95.0)], []),
    ("bver above 10 is not used (§4.4)",
     _pack({**BN, "bver": 11, "n": "spo2", "u": "%", "v": 95}), [],
     [(RejectReason.SCHEMA_INVALID, None)]),
    ("bver 0 is not a positive integer (§4.1)",
     _pack({**BN, "bver": 0, "n": "spo2", "u": "%", "v": 95}), [],
     [(RejectReason.SCHEMA_INVALID, None)]),
    ("two versions in one pack (§4.4)",
     _pack({**BN, "bver": 10, "n": "spo2", "u": "%", "v": 95},
           {"bver": 9, "n": "pulse", "u": "/min", "v": 70}), [],
     [(RejectReason.SCHEMA_INVALID, None)]),
    ("an unknown field is ignored (§4.4)",
     _pack({**BN, "n": "spo2", "u": "%", "v": 95, "foo": {"any": "thing"}}),
     [("spo2", 95.0)], []),
    ("an unknown field ending in _ refuses the pack (§4.4)",
     _pack({**BN, "n": "spo2", "u": "%", "v": 95}, {"n": "pulse", "u": "/min", "v": 70,
                                                    "foo_": 1}), [],
     [(RejectReason.SCHEMA_INVALID, None)]),
    ("vb true on a numeric code is refused, not stored as 1",
     _pack({**BN, "n": "spo2", "u": "%", "vb": True}), [],
     [(RejectReason.SCHEMA_INVALID, 0)]),
    ("vb on on_oxygen without u is oxygen",
     _pack({**BN, "n": "on_oxygen", "vb": True}), [("on_oxygen", 1.0)], []),
    ("vb false on on_oxygen is air",
     _pack({**BN, "n": "on_oxygen", "vb": False}), [("on_oxygen", 0.0)], []),
    ("a data value (vd) is no reading",
     _pack({**BN, "n": "spo2", "vd": "AQI"}), [], [(RejectReason.SCHEMA_INVALID, 0)]),
    ("v and vs together (§4.2: exactly one value)",
     _pack({**BN, "n": "spo2", "u": "%", "v": 95, "vs": "x"}), [],
     [(RejectReason.SCHEMA_INVALID, 0)]),
    ("a name outside the §4.5.1 characters",
     _pack({**BN, "n": "sp o2", "u": "%", "v": 95}), [], [(RejectReason.SCHEMA_INVALID, 0)]),
    ("bv is added to v (§4.6)",
     _pack({**BN, "bv": 90, "n": "spo2", "u": "%", "v": 5}), [("spo2", 95.0)], []),
]


@pytest.mark.parametrize(("case", "pack", "stored", "problems"), SENML_RULES,
                         ids=[c[0] for c in SENML_RULES])
def test_senml_follows_rfc8428_section_4(
    case: str, pack: bytes, stored: list[tuple[str, float]],
    problems: list[tuple[RejectReason, int | None]],
) -> None:
    del case
    decoded = decode(senml_topic("dev-1"), pack, NOW, Limits())
    if problems and problems[0][1] is None:
        assert isinstance(decoded, Rejection), decoded
        assert [(p.reason, p.index) for p in decoded.problems] == problems
        return
    assert isinstance(decoded, DecodedMessage), decoded
    assert [(r.code, r.value) for r in decoded.readings] == stored
    assert [(p.reason, p.index) for p in decoded.problems] == problems


def test_senml_relative_times_count_from_the_given_instant_not_the_clock() -> None:
    pack = _pack({"bn": "urn:dev:vw:dev-1:", "n": "spo2", "u": "%", "v": 95, "t": -30})
    first_seen = NOW - dt.timedelta(minutes=3)
    decoded = decode(senml_topic("dev-1"), pack, NOW, Limits(), senml_relative_to=first_seen)
    assert isinstance(decoded, DecodedMessage)
    assert decoded.readings[0].measured_at == first_seen - dt.timedelta(seconds=30)
    assert decoded.relative_to == first_seen
    absolute = decode(senml_topic("dev-1"), encode_senml("dev-1", [
        Measurement("spo2", 95, "%", NOW)]), NOW, Limits(), senml_relative_to=first_seen)
    assert isinstance(absolute, DecodedMessage)
    assert absolute.relative_to is None  # nothing relative: no first-seen time needed
    assert absolute.readings[0].measured_at == NOW


@pytest.mark.parametrize("when", [1764580000, 1764580000.5, "1764580000", "2026-11-24",
                                  "2026-11-24 09:14:00Z", "24/11/2026 09:14", True])
def test_instants_must_be_rfc3339_strings(when: object) -> None:
    body = {"msg_id": "m", "sent_at": "2026-11-24T09:14:00Z",
            "readings": [{"code": "spo2", "value": 94, "unit": "%", "measured_at": when}]}
    decoded = decode(readings_topic("d1"), json.dumps(body).encode(), NOW, Limits())
    assert isinstance(decoded, DecodedMessage)
    assert [(p.reason, p.index) for p in decoded.problems] == [(RejectReason.SCHEMA_INVALID, 0)]
    body = {**body, "sent_at": when, "readings": [{**body["readings"][0],  # type: ignore[dict-item]
                                                  "measured_at": "2026-11-24T09:14:00Z"}]}
    assert isinstance(decode(readings_topic("d1"), json.dumps(body).encode(), NOW, Limits()),
                      Rejection)
    status = json.dumps({"online": True, "sent_at": when}).encode()
    assert isinstance(decode(status_topic("d1"), status, NOW, Limits()), Rejection)


@pytest.mark.parametrize("when", ["2026-11-24T09:14:00Z", "2026-11-24t09:14:00.250z",
                                  "2026-11-24T10:14:00+01:00"])
def test_rfc3339_instants_are_accepted(when: str) -> None:
    body = {"msg_id": "m", "sent_at": when,
            "readings": [{"code": "spo2", "value": 94, "unit": "%", "measured_at": when}]}
    decoded = decode(readings_topic("d1"), json.dumps(body).encode(), NOW, Limits())
    assert isinstance(decoded, DecodedMessage)
    assert decoded.problems == ()


def test_a_relative_pack_resolves_to_its_first_seen_time_within_the_window(db: Any) -> None:
    from dataclasses import dataclass

    from gateway.relative_times import rebase

    @dataclass(frozen=True)
    class Msg:
        topic: str
        payload: bytes
        received_at: dt.datetime

    pack = _pack({"bn": "urn:dev:vw:dev-1:", "n": "spo2", "u": "%", "v": 95, "t": -30})
    window = dt.timedelta(hours=1)

    def delivered(at: dt.datetime) -> dt.datetime:
        msg = Msg(senml_topic("dev-1"), pack, at)
        batch = rebase(db, [(msg, decode(msg.topic, pack, at, Limits()))], Limits(), window)
        decoded = batch[0][1]
        assert isinstance(decoded, DecodedMessage)
        return decoded.readings[0].measured_at

    first = delivered(NOW)
    assert first == NOW - dt.timedelta(seconds=30)
    assert delivered(NOW + dt.timedelta(minutes=59)) == first  # a redelivery: the same reading
    later = NOW + dt.timedelta(hours=2)
    assert delivered(later) == later - dt.timedelta(seconds=30)  # past the window: a new pack
    assert delivered(later + dt.timedelta(seconds=5)) == later - dt.timedelta(seconds=30)
