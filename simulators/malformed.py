"""Malformed payloads: the many ways a real device gets its message wrong.

Each kind starts from the *correct* encoding (made by `gateway.contract`'s encoders, so there
is one wire format) and breaks it the way firmware does: truncated JSON, bytes that are not
UTF-8, an empty body, wrong types, a missing field, a code or unit the catalogue does not know,
an impossible value (a cuff's error code 511 sent as a pressure), an oversize body (a firmware
log dumped into the message), a payload naming another device, the same reading twice.

Every kind carries the `RejectReason` the gateway is expected to give, so ground truth can say
what *should* happen to each broken message. Pure: the caller's generator picks the kind.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from gateway.contract import Measurement, RejectReason
from simulators.scenario import WireFormat
from ward.domain.vitals import spec_for

# Over the gateway's default 64 KiB payload limit (VW_GATEWAY_MAX_PAYLOAD_BYTES) and under the
# broker's 1 MiB max_packet_size, so the broker delivers it and the gateway must refuse it.
OVERSIZE_BYTES = 70_000
# A cuff or oximeter error code sent as if it were a measurement: above every plausible vital.
_ERROR_CODE_VALUE = 511


class Kind(enum.StrEnum):
    BAD_JSON = "bad_json"
    NOT_UTF8 = "not_utf8"
    EMPTY = "empty"
    WRONG_TYPE = "wrong_type"
    MISSING_FIELD = "missing_field"
    UNKNOWN_CODE = "unknown_code"
    WRONG_UNIT = "wrong_unit"
    IMPOSSIBLE_VALUE = "impossible_value"
    OVERSIZE = "oversize"
    WRONG_DEVICE = "wrong_device"
    REPEATED_READING = "repeated_reading"


KINDS: tuple[Kind, ...] = tuple(Kind)

EXPECTED: dict[Kind, RejectReason] = {
    Kind.BAD_JSON: RejectReason.MALFORMED_JSON,
    Kind.NOT_UTF8: RejectReason.MALFORMED_JSON,
    Kind.EMPTY: RejectReason.MALFORMED_JSON,
    Kind.WRONG_TYPE: RejectReason.SCHEMA_INVALID,
    Kind.MISSING_FIELD: RejectReason.SCHEMA_INVALID,
    Kind.UNKNOWN_CODE: RejectReason.UNKNOWN_CODE,
    Kind.WRONG_UNIT: RejectReason.UNKNOWN_UNIT,
    Kind.IMPOSSIBLE_VALUE: RejectReason.IMPLAUSIBLE_VALUE,
    Kind.OVERSIZE: RejectReason.PAYLOAD_TOO_LARGE,
    Kind.WRONG_DEVICE: RejectReason.WRONG_TOPIC,
    Kind.REPEATED_READING: RejectReason.REPEATED_READING,
}
# Kinds after which the *first* copy of each reading is still valid and stored: the gateway
# accepts the message in part and reports the repeat by index.
PARTIAL: frozenset[Kind] = frozenset({Kind.REPEATED_READING})


@dataclass(frozen=True, slots=True)
class Broken:
    payload: bytes
    kind: Kind

    @property
    def expected(self) -> RejectReason:
        return EXPECTED[self.kind]


def _impossible(m: Measurement) -> Measurement:
    spec = spec_for(m.code)
    value = _ERROR_CODE_VALUE if spec.high < _ERROR_CODE_VALUE else -1
    return replace(m, value=value, unit=spec.unit)


def _json(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def break_payload(
    kind: Kind,
    good: bytes,
    measurements: Sequence[Measurement],
    wire: WireFormat,
    *,
    other_device: str,
    encode: Callable[[Sequence[Measurement]], bytes],
) -> Broken:
    """Break `good` (the correct payload of `measurements`) in the way `kind` names.

    `encode(measurements) -> bytes` re-encodes altered measurements with the device's own
    encoder, so content-level faults stay otherwise well formed.
    """
    if kind is Kind.BAD_JSON:
        return Broken(good[: max(1, len(good) // 2)], kind)
    if kind is Kind.NOT_UTF8:
        return Broken(b"\xff\xfe" + good.decode().encode("utf-16-le"), kind)
    if kind is Kind.EMPTY:
        return Broken(b"", kind)
    if kind is Kind.UNKNOWN_CODE:
        return Broken(encode([replace(m, code="blood_glucose") for m in measurements]), kind)
    if kind is Kind.WRONG_UNIT:
        return Broken(encode([replace(m, unit="furlongs") for m in measurements]), kind)
    if kind is Kind.IMPOSSIBLE_VALUE:
        return Broken(encode([_impossible(m) for m in measurements]), kind)
    if kind is Kind.REPEATED_READING:
        return Broken(encode([*measurements, measurements[0]]), kind)
    body = json.loads(good)
    if wire is WireFormat.JSON:
        if kind is Kind.WRONG_TYPE:
            body["readings"] = {"items": body["readings"]}
        elif kind is Kind.MISSING_FIELD:
            del body["msg_id"]
        elif kind is Kind.OVERSIZE:
            body["log"] = "E" * OVERSIZE_BYTES
        elif kind is Kind.WRONG_DEVICE:
            body["device_id"] = other_device
    elif kind is Kind.WRONG_TYPE:
        for record in body:
            record.pop("vs", None)
            record["v"] = "94"
    elif kind is Kind.MISSING_FIELD:
        for record in body:
            record.pop("v", None)
            record.pop("vs", None)
    elif kind is Kind.OVERSIZE:
        body[0]["bn"] = body[0]["bn"] + "x" * OVERSIZE_BYTES
    elif kind is Kind.WRONG_DEVICE:
        body[0]["bn"] = f"urn:dev:vw:{other_device}:"
    return Broken(_json(body), kind)
