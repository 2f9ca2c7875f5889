"""The MQTT wire contract shared by the gateway and every device (and the simulators).

One module holds the whole contract so the two sides cannot drift apart: the topic grammar,
the payload models (pydantic, with their JSON Schema shipped under `gateway/schemas/`), the
stable reason codes of a rejection, the encoders a device uses, and the pure decoders the
gateway uses. SenML (RFC 8428) names and units are mapped in `gateway.senml`.

Topics (`{device_id}` matches `ward.domain.devices.DEVICE_ID_PATTERN`, never personal data):

    vw/v1/devices/{device_id}/readings   device → gateway, QoS 1, native JSON
    vw/v1/devices/{device_id}/senml      device → gateway, QoS 1, SenML JSON
    vw/v1/devices/{device_id}/status     device → gateway, QoS 1, retained; also the LWT
    vw/v1/devices/{device_id}/results    gateway → device, QoS 1: rejected|duplicate (and, only
                                         under VW_GATEWAY_RESULTS=all, accepted)
    vw/v1/devices/{device_id}/commands   platform → home hub, QoS 1: e.g. "take a full set"

Must never do I/O: no broker, no database, no clock (time is the `now` parameter).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
)

from ward.domain.devices import DEVICE_ID_PATTERN

TOPIC_ROOT = "vw/v1/devices"
CONTRACT_VERSION = "v1"


class Channel(enum.StrEnum):
    READINGS = "readings"
    SENML = "senml"
    STATUS = "status"
    RESULTS = "results"
    COMMANDS = "commands"


# Channels a device publishes on (the gateway subscribes to these, never to results).
INGEST_CHANNELS = (Channel.READINGS, Channel.SENML, Channel.STATUS)


class RejectReason(enum.StrEnum):
    """Stable reason codes of a rejection; documented in docs/mqtt.md. Never rename one."""

    MALFORMED_JSON = "malformed_json"  # not UTF-8 JSON at all
    SCHEMA_INVALID = "schema_invalid"  # JSON, but wrong types or missing fields
    PAYLOAD_TOO_LARGE = "payload_too_large"  # over VW_GATEWAY_MAX_PAYLOAD_BYTES
    WRONG_TOPIC = "wrong_topic"  # topic outside the grammar, or payload names another device
    UNKNOWN_DEVICE = "unknown_device"  # device id not registered
    DEVICE_INACTIVE = "device_inactive"  # registered but deactivated
    UNKNOWN_CODE = "unknown_code"  # vital code not in the catalogue
    UNKNOWN_UNIT = "unknown_unit"  # unit not accepted for that code
    UNKNOWN_LABEL = "unknown_label"  # categorical label not one of the code's labels
    IMPLAUSIBLE_VALUE = "implausible_value"  # outside the catalogue's plausible range
    FUTURE_TIMESTAMP = "future_timestamp"  # measured_at beyond the clock tolerance
    NO_PATIENT_ASSIGNMENT = "no_patient_assignment"  # device not assigned at measured_at
    REPEATED_READING = "repeated_reading"  # same code and measured_at twice in one message
    INTERNAL_ERROR = "internal_error"  # a gateway bug; the raw bytes are kept to replay
    # Same device, code and measured_at as a reading already stored (or carried earlier in the
    # same batch by another message) but another value or unit: not stored, dead-lettered.
    CONFLICTING_READING = "conflicting_reading"


class ResultStatus(enum.StrEnum):
    ACCEPTED = "accepted"  # at least one new reading stored (errors may list rejected ones)
    DUPLICATE = "duplicate"  # every valid reading was already stored, same value: nothing changed
    REJECTED = "rejected"  # nothing stored; errors say why


# ---------------------------------------------------------------------------------------------
# Topics


def _topic(device_id: str, channel: Channel) -> str:
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        msg = f"invalid device id {device_id!r} for a topic"
        raise ValueError(msg)
    return f"{TOPIC_ROOT}/{device_id}/{channel.value}"


def readings_topic(device_id: str) -> str:
    return _topic(device_id, Channel.READINGS)


def senml_topic(device_id: str) -> str:
    return _topic(device_id, Channel.SENML)


def status_topic(device_id: str) -> str:
    return _topic(device_id, Channel.STATUS)


def results_topic(device_id: str) -> str:
    return _topic(device_id, Channel.RESULTS)


def commands_topic(device_id: str) -> str:
    return _topic(device_id, Channel.COMMANDS)


class TopicError(ValueError):
    """A topic outside the grammar; `device_id` is set when one could still be read."""

    def __init__(self, topic: str, device_id: str | None = None) -> None:
        super().__init__(f"topic {topic!r} is not vw/v1/devices/{{device_id}}/{{channel}}")
        self.topic = topic
        self.device_id = device_id


def parse_topic(topic: str) -> tuple[str, Channel]:
    """`vw/v1/devices/pox-1/readings` → ("pox-1", Channel.READINGS); `TopicError` otherwise."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != TOPIC_ROOT:
        raise TopicError(topic)
    device_id, channel = parts[3], parts[4]
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise TopicError(topic)
    try:
        return device_id, Channel(channel)
    except ValueError as exc:
        raise TopicError(topic, device_id) from exc


def channel_filter(channel: Channel) -> str:
    """Wildcard filter over every device's `channel`: `vw/v1/devices/+/readings`."""
    return f"{TOPIC_ROOT}/+/{channel.value}"


def shared_filter(group: str, channel: Channel) -> str:
    """MQTT 5 shared subscription: `$share/{group}/vw/v1/devices/+/{channel}`.

    Every gateway process subscribing with the same group receives a share of the messages,
    each message going to one of them (Mosquitto honours `$share` for 3.1.1 clients too).
    """
    if not group or any(ch in group for ch in "/+#"):
        msg = f"invalid shared subscription group {group!r}"
        raise ValueError(msg)
    return f"$share/{group}/{channel_filter(channel)}"


# ---------------------------------------------------------------------------------------------
# Payload models (the edge: pydantic; inside the gateway they become frozen dataclasses)

# Strict types: JSON `true` is not the number 1 and "94" is not 94.
Number = StrictInt | StrictFloat
# A categorical value may be sent as its label ("V", "occluded") or its ordinal.
Value = Number | StrictStr
MsgId = Annotated[StrictStr, Field(min_length=1, max_length=128)]

# RFC 3339 §5.6 `date-time` with its offset (`Z` or ±hh:mm). pydantic's lax datetime parsing
# would also take epoch numbers and numeric strings ("1764580000"); the schema says "a string
# in RFC 3339", so only that shape gets through to the parser.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})")


def _rfc3339_string(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value  # already parsed (model construction in Python)
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        msg = "must be an RFC 3339 date-time string with an offset, e.g. 2026-11-24T09:15:00Z"
        raise ValueError(msg)  # pydantic turns a ValueError into a validation error
    return value


# An instant on the wire: an RFC 3339 string with an offset, nothing else.
Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339_string), Field(strict=False)]
# One message carries at most this many readings: a day of store-and-forward minute readings
# from one device fits in a few messages, and the payload size limit caps it anyway.
MAX_READINGS_PER_MESSAGE = 1000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ReadingIn(_Model):
    """One measurement in the native payload."""

    code: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    value: Value
    unit: Annotated[StrictStr, Field(max_length=32)]
    measured_at: Instant


class ReadingsPayload(_Model):
    """`vw/v1/devices/{id}/readings`. `device_id`, when given, must match the topic."""

    msg_id: MsgId
    sent_at: Instant
    device_id: StrictStr | None = None
    readings: Annotated[list[ReadingIn], Field(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)]


class StatusPayload(_Model):
    """`vw/v1/devices/{id}/status`, retained; the device's LWT publishes `online: false`."""

    online: bool
    battery_pct: Annotated[Number, Field(ge=0, le=100)] | None = None
    signal_dbm: Annotated[Number, Field(ge=-200, le=0)] | None = None
    firmware: Annotated[StrictStr, Field(max_length=64)] | None = None
    # Optional: a will message is fixed at connect time, so it may carry no meaningful time.
    sent_at: Instant | None = None


class ErrorOut(_Model):
    code: RejectReason
    detail: StrictStr
    index: StrictInt | None = None  # position in `readings` (or SenML record) when per reading


class ResultPayload(_Model):
    """`vw/v1/devices/{id}/results`, published by the gateway after commit.

    By default (`VW_GATEWAY_RESULTS=problems`) only for rejected, partial (accepted with
    errors) and duplicate messages: a clean accept is confirmed by the PUBACK the gateway
    sends after the commit. `all` also answers every clean accept."""

    msg_id: StrictStr | None  # None when the message was too broken to carry one
    status: ResultStatus
    errors: list[ErrorOut] = Field(default_factory=list)


class CommandKind(enum.StrEnum):
    FULL_SET = "full_set"  # take every NEWS2 observation now (all kit, plus the questions)


class CommandPayload(_Model):
    """`vw/v1/devices/{id}/commands`, published by the platform (alerting) to a home hub.

    The hub prompts the patient (or, with `wake`, rings them: it is night and the platform
    judged it worth waking them) and sends the readings on its usual topics before `due_at`.
    `command_id` is stable across redeliveries: a hub acts on each id once.
    """

    command_id: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    kind: CommandKind
    issued_at: Annotated[AwareDatetime, Field(strict=False)]
    due_at: Annotated[AwareDatetime, Field(strict=False)]
    reason: Annotated[StrictStr, Field(max_length=64)]
    # Shown to the patient or carer: plain words, never a name or an NHS number.
    detail: Annotated[StrictStr, Field(max_length=500)] = ""
    wake: bool = False


# RFC 8428 §4.4: a receiver understands SenML versions up to this one (the default, §4.1).
SENML_VERSION = 10


class SenMLRecord(BaseModel):
    """One RFC 8428 record (JSON labels, §5 Table 4).

    Following RFC 8428 §4.4, a field this gateway does not know is *ignored* unless its label
    ends with `_` (a must-understand extension), which rejects the pack (`gateway.senml`
    checks `model_extra`). Registered fields a vital-sign reading cannot use (`bs`, `s`, `vd`,
    `ut`) are typed here so a record carrying them is judged on them, not silently stripped.
    """

    model_config = ConfigDict(
        extra="allow", frozen=True, strict=True,
        json_schema_extra={"patternProperties": {"_$": False}})

    bn: StrictStr | None = None
    bt: Number | None = None
    bu: StrictStr | None = None
    bv: Number | None = None
    bs: Number | None = None
    bver: StrictInt | None = None
    n: StrictStr | None = None
    u: StrictStr | None = None
    v: Number | None = None
    vs: StrictStr | None = None
    vb: bool | None = None
    vd: StrictStr | None = None
    s: Number | None = None
    t: Number | None = None
    ut: Number | None = None


def _schema_types() -> Mapping[str, TypeAdapter[Any]]:
    return {
        "readings": TypeAdapter(ReadingsPayload),
        "senml": TypeAdapter(list[SenMLRecord]),
        "status": TypeAdapter(StatusPayload),
        "results": TypeAdapter(ResultPayload),
        "commands": TypeAdapter(CommandPayload),
    }


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every payload, as shipped in gateway/schemas/{name}.schema.json."""
    schemas: dict[str, dict[str, Any]] = {}
    for name, adapter in _schema_types().items():
        schema = adapter.json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://virtualward.example/schemas/{CONTRACT_VERSION}/{name}.schema.json"
        schemas[name] = schema
    return schemas


# ---------------------------------------------------------------------------------------------
# Encoders (what a device sends). Compact and deterministic: same input, identical bytes.


@dataclass(frozen=True, slots=True)
class Measurement:
    """What a device measured, in the device's own unit (any accepted unit of the code)."""

    code: str
    value: float | int | str
    unit: str
    measured_at: dt.datetime


def format_instant(when: dt.datetime) -> str:
    """RFC 3339 UTC with a `Z`, microseconds only when present (exact round trip)."""
    if when.tzinfo is None:
        msg = f"naive datetime {when!r}: the contract carries UTC instants only"
        raise ValueError(msg)
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def encode_readings(
    msg_id: str,
    sent_at: dt.datetime,
    readings: Iterable[Measurement],
    *,
    device_id: str | None = None,
) -> bytes:
    body: dict[str, object] = {"msg_id": msg_id, "sent_at": format_instant(sent_at)}
    if device_id is not None:
        body["device_id"] = device_id
    body["readings"] = [
        {"code": r.code, "value": r.value, "unit": r.unit,
         "measured_at": format_instant(r.measured_at)}
        for r in readings
    ]
    return _dumps(body)


def encode_status(
    *,
    online: bool,
    battery_pct: float | None = None,
    signal_dbm: float | None = None,
    firmware: str | None = None,
    sent_at: dt.datetime | None = None,
) -> bytes:
    body: dict[str, object] = {"online": online}
    for key, value in (("battery_pct", battery_pct), ("signal_dbm", signal_dbm),
                       ("firmware", firmware)):
        if value is not None:
            body[key] = value
    if sent_at is not None:
        body["sent_at"] = format_instant(sent_at)
    return _dumps(body)


def encode_senml(device_id: str, readings: Sequence[Measurement]) -> bytes:
    """A SenML pack: base name `urn:dev:vw:{device_id}:`, base time = the first reading.

    Numbers go in `v`, labels (consciousness "V", pump state "occluded") in `vs`; times are
    seconds relative to `bt`. Units are sent as the catalogue spells them (see gateway.senml
    for the SenML spellings also accepted).
    """
    if not readings:
        msg = "a SenML pack needs at least one reading"
        raise ValueError(msg)
    base = readings[0].measured_at.timestamp()
    records: list[dict[str, object]] = []
    for i, r in enumerate(readings):
        record: dict[str, object] = {}
        if i == 0:
            record["bn"] = f"urn:dev:vw:{device_id}:"
            record["bt"] = base
        record["n"] = r.code
        record["u"] = r.unit
        if isinstance(r.value, str):
            record["vs"] = r.value
        else:
            record["v"] = r.value
        offset = r.measured_at.timestamp() - base
        if offset:
            record["t"] = offset
        records.append(record)
    return _dumps(records)


def encode_result(result: ResultPayload) -> bytes:
    body: dict[str, object] = {"msg_id": result.msg_id, "status": result.status.value,
                               "errors": [
                                   {"code": e.code.value, "detail": e.detail,
                                    **({"index": e.index} if e.index is not None else {})}
                                   for e in result.errors]}
    return _dumps(body)


def encode_accepted(msg_id: str) -> bytes:
    """`encode_result` of a clean accept (no errors), byte for byte, without building a model.

    The one result nearly every message gets under `VW_GATEWAY_RESULTS=all`; a test holds it
    equal to `encode_result(ResultPayload(msg_id=…, status=accepted))` for any id.
    """
    return _ACCEPTED_HEAD + _dumps(msg_id) + _ACCEPTED_TAIL


_ACCEPTED_HEAD = b'{"msg_id":'
_ACCEPTED_TAIL = b',"status":"accepted","errors":[]}'


def encode_command(command: CommandPayload) -> bytes:
    return _dumps({"command_id": command.command_id, "kind": command.kind.value,
                   "issued_at": format_instant(command.issued_at),
                   "due_at": format_instant(command.due_at), "reason": command.reason,
                   "detail": command.detail, "wake": command.wake})


def decode_command(payload: bytes) -> CommandPayload:
    """A home hub's decoder; raises `pydantic.ValidationError` (or `ValueError`) on bad input."""
    return CommandPayload.model_validate_json(payload)


def senml_msg_id(payload: bytes) -> str:
    """The id of a SenML message, which carries none: a digest of its exact bytes.

    Part of the contract because both sides must agree on it: the gateway answers results
    under this id, and devices and simulators match those results (and ground truth) by it.
    """
    return "senml-" + hashlib.sha256(payload).hexdigest()[:32]
