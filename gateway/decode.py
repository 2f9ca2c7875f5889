"""Pure decoders: raw MQTT (topic, bytes) → decoded measurements, or a typed rejection.

The gateway's first stage and the other half of `gateway.contract`. A bad message is a result,
never an exception: every failure becomes a `Problem` with a stable `RejectReason`.

Partial messages: a message whose envelope is valid but some of whose readings are bad is
*split*: the good readings go on (and are stored), each bad one is reported with its index;
the pipeline dead-letters the raw bytes with the reasons and answers the device with the
per-index errors. A message-level problem (malformed JSON, wrong envelope, oversize, wrong
topic) rejects the whole message.

Must never do I/O; the clock is the `now` parameter.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import TypeAdapter, ValidationError

from gateway import fastpath, senml
from gateway.contract import (
    Channel,
    ReadingIn,
    ReadingsPayload,
    RejectReason,
    SenMLRecord,
    StatusPayload,
    TopicError,
    parse_topic,
    senml_msg_id,
)
from ward.domain.errors import (
    ImplausibleValue,
    UnknownLabel,
    UnknownUnit,
    UnknownVitalCode,
    WrongValueType,
)
from ward.domain.vitals import CATALOGUE, Converter, VitalSpec
from ward.domain.vitals import measure as measure_value


class _Envelope(ReadingsPayload):
    """The readings envelope with its items left unvalidated (to report them one by one)."""

    readings: list[Any]


_READINGS = TypeAdapter(ReadingsPayload)
_ENVELOPE = TypeAdapter(_Envelope)
_READING = TypeAdapter(ReadingIn)
_STATUS = TypeAdapter(StatusPayload)
_SENML = TypeAdapter(list[SenMLRecord])

# The common case of `ward.domain.vitals.measure`, looked up once: a number in an accepted
# unit of a numeric (not categorical) code. Anything else — a label, a categorical code, an
# unknown code or unit, a value out of range — goes through `measure_value` itself, which
# raises the domain's error and so words the problem exactly as before.
_NUMERIC: dict[tuple[str, str], tuple[VitalSpec, Converter, str]] = {
    (spec.code.value, unit): (spec, converter, spec.code.value)
    for spec in CATALOGUE.values() if not spec.categorical
    for unit, converter in spec.conversions.items()
}
# Topics seen: a fleet sends on a few topics per device, again and again. Bounded (a stream
# of made-up topics costs at most this many entries); only valid topics are remembered.
_TOPIC_CACHE = 16_384
_parse_topic = functools.lru_cache(maxsize=_TOPIC_CACHE)(parse_topic)


@dataclass(frozen=True, slots=True)
class Limits:
    """The gateway's acceptance limits (from `ward.settings.Settings`)."""

    max_payload_bytes: int = 65_536
    future_tolerance: dt.timedelta = dt.timedelta(seconds=300)
    late_after: dt.timedelta = dt.timedelta(seconds=600)


@dataclass(frozen=True, slots=True)
class Problem:
    reason: RejectReason
    detail: str
    index: int | None = None  # the reading (or SenML record) at fault, when per reading


# DecodedReading and DecodedMessage are named tuples, not frozen dataclasses: one of each is
# built per message, and a frozen dataclass's __init__ (one object.__setattr__ per field) cost
# three times as much (issue 14; `gateway.mqtt.Inbound` is the precedent). Immutable all the
# same; `isinstance` tells the kinds of `Decoded` apart as before.
class DecodedReading(NamedTuple):
    index: int  # type: ignore[assignment]  # shadows tuple.index, which nothing here calls
    code: str
    value: float  # canonical unit, unrounded
    unit: str
    measured_at: dt.datetime  # UTC
    late: bool
    source_value: float | None = None
    source_unit: str | None = None


class DecodedMessage(NamedTuple):
    """A readings/SenML message whose envelope is valid; `problems` lists bad readings."""

    device_id: str
    channel: Channel
    msg_id: str
    sent_at: dt.datetime | None
    readings: tuple[DecodedReading, ...]
    problems: tuple[Problem, ...] = ()
    # SenML only: the instant relative times were resolved against, when the pack had any
    # (None: every time was absolute). See `gateway.relative_times`.
    relative_to: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class DecodedStatus:
    device_id: str
    online: bool
    battery_pct: float | None
    signal_dbm: float | None
    firmware: str | None
    sent_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """The whole message is refused; `problems` is never empty."""

    device_id: str | None
    channel: Channel | None
    msg_id: str | None
    problems: tuple[Problem, ...]

    @property
    def reason(self) -> RejectReason:
        return self.problems[0].reason


Decoded = DecodedMessage | DecodedStatus | Rejection


def _utc(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo is dt.UTC else when.astimezone(dt.UTC)


def _best_effort_msg_id(payload: bytes) -> str | None:
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if isinstance(body, dict) and isinstance(body.get("msg_id"), str):
        return str(body["msg_id"])[:128]
    return None


def _validation_detail(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _is_json_error(exc: ValidationError) -> bool:
    return any(err["type"] == "json_invalid" for err in exc.errors(include_url=False))


def _invalid(device_id: str, channel: Channel, msg_id: str | None,
             exc: ValidationError) -> Rejection:
    """A whole message rejected by its schema: malformed JSON, or valid JSON of a wrong shape."""
    reason = RejectReason.MALFORMED_JSON if _is_json_error(exc) else RejectReason.SCHEMA_INVALID
    return Rejection(device_id, channel, msg_id, (Problem(reason, _validation_detail(exc)),))


def measure(
    index: int,
    code: str,
    value: float | str,
    unit: str,
    *,
    measured_at: dt.datetime,
    now: dt.datetime,
    limits: Limits,
) -> DecodedReading | Problem:
    """Validate one measurement against the catalogue and the clock; convert its unit."""
    measured_at = _utc(measured_at)
    kind = type(value)
    numeric = _NUMERIC.get((code, unit)) if kind is float or kind is int else None
    if numeric is not None and math.isfinite(number := float(value)):
        spec, converter, code_value = numeric
        converted = converter(number)
        if spec.low <= converted <= spec.high:
            source = (None, None) if unit == spec.unit else (number, unit)
            return _timed(index, code_value, converted, spec.unit, measured_at, now,
                          limits, *source)
    return _measure_by_catalogue(index, code, value, unit, measured_at=measured_at, now=now,
                                 limits=limits)


def _measure_by_catalogue(
    index: int,
    code: str,
    value: float | str,
    unit: str,
    *,
    measured_at: dt.datetime,
    now: dt.datetime,
    limits: Limits,
) -> DecodedReading | Problem:
    """`measure` through `ward.domain.vitals.measure` itself (every case; words problems)."""
    measured_at = _utc(measured_at)
    try:
        measured = measure_value(code, value, unit)
    except WrongValueType as exc:
        return Problem(RejectReason.SCHEMA_INVALID, str(exc), index)
    except UnknownVitalCode as exc:
        return Problem(RejectReason.UNKNOWN_CODE, str(exc), index)
    except UnknownUnit as exc:
        return Problem(RejectReason.UNKNOWN_UNIT, str(exc), index)
    except UnknownLabel as exc:
        return Problem(RejectReason.UNKNOWN_LABEL, str(exc), index)
    except ImplausibleValue as exc:
        return Problem(RejectReason.IMPLAUSIBLE_VALUE, str(exc), index)
    return _timed(index, measured.spec.code.value, measured.value, measured.spec.unit,
                  measured_at, now, limits, measured.source_value, measured.source_unit)


def _timed(  # noqa: PLR0917 - the fields of a DecodedReading, in its order
        index: int, code: str, value: float, unit: str, measured_at: dt.datetime,
        now: dt.datetime, limits: Limits, source_value: float | None,
        source_unit: str | None) -> DecodedReading | Problem:
    """A measured value, checked against the clock (`measured_at` is UTC)."""
    if measured_at > now + limits.future_tolerance:
        return Problem(
            RejectReason.FUTURE_TIMESTAMP,
            f"measured_at {measured_at.isoformat()} is more than "
            f"{limits.future_tolerance.total_seconds():g} s ahead of the gateway's clock",
            index,
        )
    late = now - measured_at > limits.late_after
    return DecodedReading(index, code, value, unit, measured_at, late, source_value,
                          source_unit)


def _collect(
    device_id: str,
    channel: Channel,
    msg_id: str,
    sent_at: dt.datetime | None,
    results: list[DecodedReading | Problem],
) -> DecodedMessage:
    if len(results) == 1 and type(results[0]) is DecodedReading:  # the common message
        return DecodedMessage(device_id, channel, msg_id, sent_at, (results[0],))
    readings: list[DecodedReading] = []
    problems: list[Problem] = []
    seen: set[tuple[str, dt.datetime]] = set()
    for item in results:
        if isinstance(item, Problem):
            problems.append(item)
        elif (item.code, item.measured_at) in seen:
            problems.append(Problem(
                RejectReason.REPEATED_READING,
                f"{item.code} at {item.measured_at.isoformat()} appears twice in the message",
                item.index))
        else:
            seen.add((item.code, item.measured_at))
            readings.append(item)
    problems.sort(key=lambda p: -1 if p.index is None else p.index)
    return DecodedMessage(device_id, channel, msg_id, sent_at, tuple(readings), tuple(problems))


def _wrong_device(device_id: str, msg_id: str, claimed: str) -> Rejection:
    return Rejection(device_id, Channel.READINGS, msg_id, (Problem(
        RejectReason.WRONG_TOPIC,
        f"payload names device {claimed!r} but was published on {device_id!r}'s topic"),))


def _native(
    device_id: str, payload: bytes, now: dt.datetime, limits: Limits
) -> DecodedMessage | Rejection:
    fast = fastpath.readings_envelope(payload)
    if fast is not None:  # valid as pydantic would judge it (gateway.fastpath)
        if fast.device_id is not None and fast.device_id != device_id:
            return _wrong_device(device_id, fast.msg_id, fast.device_id)
        if len(fast.readings) == 1:  # the common message, without the list and `_collect`
            r = fast.readings[0]
            one = measure(0, r.code, r.value, r.unit, measured_at=r.measured_at, now=now,
                          limits=limits)
            if type(one) is DecodedReading:
                return DecodedMessage(device_id, Channel.READINGS, fast.msg_id, fast.sent_at,
                                      (one,))
            return _collect(device_id, Channel.READINGS, fast.msg_id, fast.sent_at, [one])
        return _collect(device_id, Channel.READINGS, fast.msg_id, fast.sent_at, [
            measure(index, r.code, r.value, r.unit, measured_at=r.measured_at, now=now,
                    limits=limits)
            for index, r in enumerate(fast.readings)])
    bad_items: dict[int, Problem] = {}
    try:
        body = _READINGS.validate_json(payload)
        msg_id, sent_at, claimed = body.msg_id, body.sent_at, body.device_id
        items: list[ReadingIn | None] = list(body.readings)
    except ValidationError as exc:
        guessed_id = _best_effort_msg_id(payload)
        if _is_json_error(exc):
            return Rejection(device_id, Channel.READINGS, None, (
                Problem(RejectReason.MALFORMED_JSON, _validation_detail(exc)),))
        errors = exc.errors(include_url=False)
        per_item = all(len(e["loc"]) >= 2 and e["loc"][0] == "readings"
                       and isinstance(e["loc"][1], int) for e in errors)
        if not per_item:
            return Rejection(device_id, Channel.READINGS, guessed_id, (
                Problem(RejectReason.SCHEMA_INVALID, _validation_detail(exc)),))
        # The envelope is sound: keep the good readings, report each bad one by index.
        envelope = _ENVELOPE.validate_json(payload)
        msg_id, sent_at, claimed = envelope.msg_id, envelope.sent_at, envelope.device_id
        items = []
        for index, item in enumerate(envelope.readings):
            try:
                items.append(_READING.validate_python(item))
            except ValidationError as item_exc:
                bad_items[index] = Problem(RejectReason.SCHEMA_INVALID,
                                           _validation_detail(item_exc), index)
                items.append(None)
    if claimed is not None and claimed != device_id:
        return _wrong_device(device_id, msg_id, claimed)
    results: list[DecodedReading | Problem] = []
    for index, item in enumerate(items):
        if item is None:
            results.append(bad_items[index])
        else:
            results.append(measure(index, item.code, item.value, item.unit,
                                   measured_at=item.measured_at, now=now, limits=limits))
    return _collect(device_id, Channel.READINGS, msg_id, _utc(sent_at), results)


def _senml(
    device_id: str, payload: bytes, now: dt.datetime, limits: Limits,
    relative_to: dt.datetime,
) -> DecodedMessage | Rejection:
    msg_id = senml_msg_id(payload)
    try:
        records = _SENML.validate_json(payload)
    except ValidationError as exc:
        return _invalid(device_id, Channel.SENML, msg_id, exc)
    if not records:
        return Rejection(device_id, Channel.SENML, msg_id, (
            Problem(RejectReason.SCHEMA_INVALID, "empty SenML pack"),))
    unusable = senml.pack_problem(records)
    if unusable is not None:
        return Rejection(device_id, Channel.SENML, msg_id, (
            Problem(RejectReason.SCHEMA_INVALID, unusable),))
    results: list[DecodedReading | Problem] = []
    relative = False
    for item in senml.resolve(records, device_id, relative_to):
        if isinstance(item, senml.RecordProblem):
            if item.wrong_device:
                return Rejection(device_id, Channel.SENML, msg_id, (
                    Problem(RejectReason.WRONG_TOPIC, item.detail, item.index),))
            results.append(Problem(RejectReason.SCHEMA_INVALID, item.detail, item.index))
        else:
            relative = relative or item.relative
            results.append(measure(item.index, item.code, item.value, item.unit,
                                   measured_at=item.measured_at, now=now, limits=limits))
    decoded = _collect(device_id, Channel.SENML, msg_id, None, results)
    return decoded._replace(relative_to=relative_to) if relative else decoded


def _status(device_id: str, payload: bytes) -> DecodedStatus | Rejection:
    try:
        body = _STATUS.validate_json(payload)
    except ValidationError as exc:
        return _invalid(device_id, Channel.STATUS, None, exc)
    return DecodedStatus(
        device_id, body.online,
        None if body.battery_pct is None else float(body.battery_pct),
        None if body.signal_dbm is None else float(body.signal_dbm),
        body.firmware, None if body.sent_at is None else _utc(body.sent_at))


def decode(topic: str, payload: bytes, now: dt.datetime, limits: Limits, *,
           senml_relative_to: dt.datetime | None = None) -> Decoded:
    """Decode any message the gateway receives; never raises for bad input.

    `now` is when it was received (future and late checks). `senml_relative_to` is what a
    SenML relative time counts from (default `now`): the gateway passes the time it first saw
    these bytes, so a redelivered pack resolves to the same instants (`gateway.relative_times`).
    """
    try:
        device_id, channel = _parse_topic(topic)
    except TopicError as exc:
        return Rejection(exc.device_id, None, _best_effort_msg_id(payload[:limits.max_payload_bytes]),
                         (Problem(RejectReason.WRONG_TOPIC, str(exc)),))
    if len(payload) > limits.max_payload_bytes:
        return Rejection(device_id, channel, None, (Problem(
            RejectReason.PAYLOAD_TOO_LARGE,
            f"{len(payload)} bytes, over the limit of {limits.max_payload_bytes}"),))
    if channel is Channel.READINGS:
        return _native(device_id, payload, now, limits)
    if channel is Channel.SENML:
        return _senml(device_id, payload, now, limits,
                      now if senml_relative_to is None else senml_relative_to)
    if channel is Channel.STATUS:
        return _status(device_id, payload)
    return Rejection(device_id, channel, _best_effort_msg_id(payload), (Problem(
        RejectReason.WRONG_TOPIC, "results topics are written by the gateway, not devices"),))


def decode_readings(
    topic: str, payload: bytes, now: dt.datetime, limits: Limits
) -> DecodedMessage | Rejection:
    """Decode a readings or SenML message (anything else is a `wrong_topic` rejection)."""
    result = decode(topic, payload, now, limits)
    if isinstance(result, DecodedStatus):
        return Rejection(result.device_id, Channel.STATUS, None, (Problem(
            RejectReason.WRONG_TOPIC, "a status message is not a readings message"),))
    return result


def msg_id_of(payload: bytes) -> str | None:
    """The message id as far as it can be read from broken bytes (for dead letters)."""
    return _best_effort_msg_id(payload)
