"""The readings decoder's fast path: the common, valid message without pydantic.

Why: validating every native readings message with the pydantic model cost about a third of
the gateway's decode time (issue 14; profile in docs/mqtt.md). Nearly every message a device
sends is well-formed, so this module parses it with orjson and checks it by hand, field by
field, against bounds read from the contract's own models (`gateway.contract`), and answers
one of two things: the envelope's values, exactly as pydantic would have produced them, or
`None` — "not sure". `None` sends the message down the pydantic path, which alone ever
rejects a message and words every rejection, so rejection reasons, details and dead letters
are the same as before by construction. The fast path only ever accepts; it accepts a strict
subset of what the model accepts (e.g. instants with `T`, `Z` or a `±hh:mm` offset and at
most microseconds; anything else goes the slow way), and a property test
(`tests/gateway/test_fastpath.py`) holds that whenever it answers, pydantic answers the same.

Must never do I/O.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any, NamedTuple

import orjson
from pydantic.fields import FieldInfo

from gateway.contract import ReadingIn, ReadingsPayload


def _bounds(field: FieldInfo) -> tuple[int, int]:
    """(min, max) length of a contract field, from its `Field(min_length=…, max_length=…)`."""
    low, high = 0, 1 << 62
    for meta in field.metadata:  # annotated_types.MinLen / MaxLen, as pydantic stores them
        low = getattr(meta, "min_length", low)
        high = getattr(meta, "max_length", high)
    return low, high


_ENVELOPE_FIELDS = ReadingsPayload.model_fields
_READING_FIELDS = ReadingIn.model_fields
# The fields this module checks by hand; a test fails when the contract's models change, so a
# new field cannot slip past the fast path unchecked.
HANDLED_ENVELOPE = frozenset({"msg_id", "sent_at", "device_id", "readings"})
HANDLED_READING = frozenset({"code", "value", "unit", "measured_at"})
_ENVELOPE_KEYS = frozenset(_ENVELOPE_FIELDS)
_ENVELOPE_REQUIRED = frozenset(k for k, f in _ENVELOPE_FIELDS.items() if f.is_required())
_READING_KEYS = frozenset(_READING_FIELDS)
_MSG_ID = _bounds(_ENVELOPE_FIELDS["msg_id"])
_READINGS = _bounds(_ENVELOPE_FIELDS["readings"])
_CODE = _bounds(_READING_FIELDS["code"])
_UNIT = _bounds(_READING_FIELDS["unit"])

# RFC 3339 as devices send it, narrower than the contract's pattern on purpose: upper-case
# `T`, at most 6 fraction digits (pydantic keeps microseconds), `Z` or an offset whose hours
# and minutes are in range. Anything else (lower-case `t`/`z`, nanoseconds, `+05:99`) is left
# to pydantic, which accepts or rejects it in its own words.
_INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])")


class FastReading(NamedTuple):
    code: str
    value: int | float | str
    unit: str
    measured_at: dt.datetime  # UTC


class FastEnvelope(NamedTuple):
    msg_id: str
    sent_at: dt.datetime  # UTC
    device_id: str | None
    readings: tuple[FastReading, ...]


def _instant(value: object) -> dt.datetime | None:
    if type(value) is not str or not _INSTANT.fullmatch(value):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
        return when if when.tzinfo is dt.UTC else when.astimezone(dt.UTC)
    except (ValueError, OverflowError):  # 2026-02-30, or a year 1 instant west of UTC
        return None


def _text(value: object, bounds: tuple[int, int]) -> bool:
    return type(value) is str and bounds[0] <= len(value) <= bounds[1]


_CODE_MIN, _CODE_MAX = _CODE
_UNIT_MIN, _UNIT_MAX = _UNIT


def _reading(item: object, sent: object, sent_at: dt.datetime) -> FastReading | None:
    # The checks of `_text` written out: this runs once per reading (issue 14).
    if type(item) is not dict or item.keys() != _READING_KEYS:
        return None
    code, value, unit = item["code"], item["value"], item["unit"]
    if (type(code) is not str or type(unit) is not str
            or not _CODE_MIN <= len(code) <= _CODE_MAX
            or not _UNIT_MIN <= len(unit) <= _UNIT_MAX):
        return None
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            return None
    elif kind is not int and kind is not str:  # a bool is neither (JSON true is not 1)
        return None
    when = item["measured_at"]
    # Devices mostly stamp a single reading with the instant they send it: parse it once.
    measured_at = sent_at if when == sent and type(when) is str else _instant(when)
    if measured_at is None:
        return None
    return FastReading(code, value, unit, measured_at)


def readings_envelope(payload: bytes) -> FastEnvelope | None:
    """The envelope of a valid native readings message, or None to ask pydantic."""
    try:
        body: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if type(body) is not dict:
        return None
    keys = body.keys()
    if not (keys <= _ENVELOPE_KEYS and keys >= _ENVELOPE_REQUIRED):
        return None
    msg_id, device_id, items = body["msg_id"], body.get("device_id"), body["readings"]
    if not _text(msg_id, _MSG_ID) or (device_id is not None and type(device_id) is not str):
        return None
    if type(items) is not list or not _READINGS[0] <= len(items) <= _READINGS[1]:
        return None
    sent = body["sent_at"]
    sent_at = _instant(sent)
    if sent_at is None:
        return None
    readings = []
    for item in items:
        reading = _reading(item, sent, sent_at)
        if reading is None:
            return None
        readings.append(reading)
    return FastEnvelope(msg_id, sent_at, device_id, tuple(readings))
