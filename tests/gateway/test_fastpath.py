"""The hot path's shortcuts agree with the contract's models and the catalogue (issue 14).

`gateway.fastpath` may only ever say what pydantic would say; `gateway.decode.measure`'s table
lookup what `ward.domain.vitals.measure` would say; `encode_accepted` what `encode_result`
would write. Each is checked here on generated input, valid and broken alike.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import fastpath
from gateway.contract import (
    ReadingIn,
    ReadingsPayload,
    ResultPayload,
    ResultStatus,
    encode_accepted,
    encode_result,
    readings_topic,
)
from gateway.decode import _READINGS, Limits, _measure_by_catalogue, decode, measure
from ward.domain.vitals import CATALOGUE

NOW = dt.datetime(2026, 11, 24, 9, 15, 5, tzinfo=dt.UTC)
CODES = [*sorted(c.value for c in CATALOGUE), "SPO2", "heart_rate", "", "x" * 65]
UNITS = [*sorted({u for spec in CATALOGUE.values() for u in spec.conversions}),
         "", "celsius", "x" * 33]


def test_the_fast_path_checks_every_field_of_the_contract() -> None:
    # A field added to the models must be taught to gateway.fastpath (and this set) first.
    assert set(ReadingsPayload.model_fields) == fastpath.HANDLED_ENVELOPE
    assert set(ReadingIn.model_fields) == fastpath.HANDLED_READING


@st.composite
def instants(draw: st.DrawFn) -> object:
    """Mostly what devices send (so the fast path answers often), sometimes anything."""
    # hypothesis bounds are naive by its API; the instant is written as text below.
    when = draw(st.datetimes(min_value=dt.datetime(1000, 1, 2),  # noqa: DTZ001
                             max_value=dt.datetime(9999, 12, 30)))  # noqa: DTZ001
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if not _rarely(draw):  # a device's instant: 0-6 fraction digits, Z or an offset
        digits = draw(st.sampled_from(range(7)))
        fraction = draw(st.text("0123456789", min_size=digits, max_size=digits))
        return text + (f".{fraction}" if digits else "") + draw(st.sampled_from(
            ["Z", "+00:00", "-00:00", "+01:00", "-05:30", "+23:59"]))
    digits = draw(st.integers(0, 9))
    if digits:
        text += "." + draw(st.text("0123456789", min_size=digits, max_size=digits))
    text += draw(st.one_of(
        st.sampled_from(["Z", "z", "+00:00", ""]),
        st.builds(lambda sign, h, m: f"{sign}{h:02d}:{m:02d}", st.sampled_from("+-"),
                  st.integers(0, 99), st.integers(0, 99))))
    if draw(st.booleans()):  # lower-case t, or a space
        text = text[:10] + draw(st.sampled_from(["t", " "])) + text[11:]
    return draw(st.one_of(st.just(text), st.integers(), st.text(max_size=30), st.none()))


def _rarely(draw: st.DrawFn) -> bool:
    # sampled_from, not integers(0, 9) == 0: hypothesis favours boundary integers, which made
    # nearly every generated message invalid (and the fast path never answered).
    return draw(st.sampled_from([False] * 9 + [True]))


def _values() -> st.SearchStrategy[object]:
    return st.one_of(st.integers(-10, 400), st.floats(allow_nan=False, allow_infinity=False),
                     st.integers(), st.booleans(), st.sampled_from(["A", "V", "occluded", "94"]),
                     st.none(), st.lists(st.integers(), max_size=1))


@st.composite
def readings_items(draw: st.DrawFn) -> object:
    item: dict[str, object] = {
        "code": draw(st.sampled_from(CODES)) if not _rarely(draw) else draw(st.integers()),
        "value": draw(st.one_of(st.integers(-10, 400), st.floats(-10, 400)))
        if not _rarely(draw) else draw(_values()),
        "unit": draw(st.sampled_from(UNITS)) if not _rarely(draw) else None,
        "measured_at": draw(instants())}
    if _rarely(draw):
        del item[draw(st.sampled_from(sorted(item)))]
    if _rarely(draw):
        item["extra"] = 1
    return item if not _rarely(draw) else draw(st.integers())


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    body: dict[str, object] = {
        "msg_id": draw(st.text(min_size=1, max_size=20)) if not _rarely(draw) else draw(
            st.one_of(st.text(min_size=128, max_size=129), st.just(""), st.integers(),
                      st.none())),
        "sent_at": draw(instants()),
        "readings": draw(st.lists(readings_items(), min_size=1, max_size=3))
        if not _rarely(draw) else draw(st.one_of(st.just([]), st.integers())),
    }
    if _rarely(draw):
        body["device_id"] = draw(st.one_of(st.just("dev-1"), st.just("dev-2"), st.none(),
                                           st.integers()))
    if _rarely(draw):
        del body[draw(st.sampled_from(["msg_id", "sent_at", "readings"]))]
    if _rarely(draw):
        body["extra"] = True
    raw = json.dumps(body).encode()
    if _rarely(draw):
        raw = raw[:draw(st.integers(0, len(raw)))]  # truncated: not JSON
    return raw


def _pydantic_view(payload: bytes) -> Any:
    body = _READINGS.validate_json(payload)
    return (body.msg_id, body.sent_at.astimezone(dt.UTC), body.device_id, tuple(
        (r.code, r.value, type(r.value), r.unit, r.measured_at.astimezone(dt.UTC))
        for r in body.readings))


@settings(max_examples=600, deadline=None)
@given(payloads())
def test_whatever_the_fast_path_accepts_pydantic_accepts_with_the_same_values(
        payload: bytes) -> None:
    fast = fastpath.readings_envelope(payload)
    if fast is None:
        return  # the message goes the pydantic way: nothing to compare
    assert (fast.msg_id, fast.sent_at, fast.device_id, tuple(
        (r.code, r.value, type(r.value), r.unit, r.measured_at) for r in fast.readings)) == \
        _pydantic_view(payload)
    assert fast.sent_at.tzinfo is dt.UTC


def test_the_fast_path_takes_what_devices_send() -> None:
    payload = (b'{"msg_id":"m-1","sent_at":"2026-11-24T09:15:00.123Z","readings":[{"code":'
               b'"pulse","value":72,"unit":"/min","measured_at":"2026-11-24T09:15:00+01:00"}]}')
    fast = fastpath.readings_envelope(payload)
    assert fast is not None
    assert fast.readings[0].measured_at == dt.datetime(2026, 11, 24, 8, 15, tzinfo=dt.UTC)
    assert fastpath.readings_envelope(payload.replace(b"72", b"true")) is None
    assert fastpath.readings_envelope(payload.replace(b"T09:15:00.123Z", b"t09:15:00Z")) is None


@settings(max_examples=400, deadline=None)
@given(payloads())
def test_decoding_with_the_fast_path_equals_decoding_without_it(payload: bytes) -> None:
    topic = readings_topic("dev-1")
    with_fast = decode(topic, payload, NOW, Limits())
    original = fastpath.readings_envelope
    fastpath.readings_envelope = lambda _payload: None  # type: ignore[assignment]
    try:
        without = decode(topic, payload, NOW, Limits())
    finally:
        fastpath.readings_envelope = original
    assert with_fast == without


@settings(max_examples=800, deadline=None)
@given(st.sampled_from(CODES), st.one_of(
    st.integers(-10, 400), st.floats(), st.integers(), st.sampled_from(["A", "v", "oxygen", "x"])),
    st.sampled_from(UNITS),
    st.datetimes(min_value=dt.datetime(2026, 11, 1),  # noqa: DTZ001 - bounds are naive by API
                 max_value=dt.datetime(2026, 12, 1),  # noqa: DTZ001
                 timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=1))])))
def test_the_measure_shortcut_equals_the_catalogue(code: str, value: float | str, unit: str,
                                                   at: dt.datetime) -> None:
    try:
        expected: object = _measure_by_catalogue(3, code, value, unit, measured_at=at, now=NOW,
                                                 limits=Limits())
    except OverflowError as exc:  # an integer too large for a float: both paths raise it
        expected = type(exc)
    try:
        got: object = measure(3, code, value, unit, measured_at=at, now=NOW, limits=Limits())
    except OverflowError as exc:
        got = type(exc)
    assert got == expected


@given(st.text())
def test_encode_accepted_writes_what_encode_result_writes(msg_id: str) -> None:
    try:
        expected = encode_result(ResultPayload(msg_id=msg_id, status=ResultStatus.ACCEPTED))
    except UnicodeEncodeError:  # a lone surrogate: neither can write it
        return
    assert encode_accepted(msg_id) == expected
