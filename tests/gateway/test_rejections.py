"""Every rejection reason: pure decisions (table-driven), then through the real gateway."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from typing import Any

import psycopg
import pytest

from gateway.contract import (
    RejectReason,
    ResultStatus,
    readings_topic,
    senml_msg_id,
    senml_topic,
)
from gateway.dead_letters import Budget, Rationing, ration
from gateway.decode import DecodedMessage, Limits, Rejection, decode
from gateway.inbox import Inbox
from gateway.pipeline import DeadLetter, patients_of, plan_batch, result_for, stored_of
from ward.db.registry import DeviceRecord
from ward.domain.devices import Assignment, Device, DeviceKind

NOW = dt.datetime(2026, 11, 24, 9, 15, tzinfo=dt.UTC)
T = "2026-11-24T09:14:00Z"


def reading(**over: object) -> dict[str, object]:
    return {"code": "spo2", "value": 94, "unit": "%", "measured_at": T, **over}


def message(*readings: dict[str, object], **over: object) -> bytes:
    body = {"msg_id": "m", "sent_at": T, "readings": list(readings) or [reading()], **over}
    return json.dumps(body).encode()


LIMITS = Limits(max_payload_bytes=2048)

# (case, topic device, payload, reason, whole message rejected?)
CASES: list[tuple[str, str, bytes, RejectReason, bool]] = [
    ("not json", "d1", b"{not json", RejectReason.MALFORMED_JSON, True),
    ("not utf-8", "d1", b"\xff\xfe", RejectReason.MALFORMED_JSON, True),
    ("missing msg_id", "d1", json.dumps({"sent_at": T, "readings": [reading()]}).encode(),
     RejectReason.SCHEMA_INVALID, True),
    ("readings not a list", "d1", message(readings=5), RejectReason.SCHEMA_INVALID, True),
    ("empty readings", "d1", message(readings=[]), RejectReason.SCHEMA_INVALID, True),
    ("extra field", "d1", message(extra=1), RejectReason.SCHEMA_INVALID, True),
    ("naive sent_at", "d1", message(sent_at="2026-11-24T09:14:00"),
     RejectReason.SCHEMA_INVALID, True),
    ("too large", "d1", message(pad="x" * 3000), RejectReason.PAYLOAD_TOO_LARGE, True),
    ("another device's id", "d1", message(device_id="d2"), RejectReason.WRONG_TOPIC, True),
    ("value a bool", "d1", message(reading(value=True)), RejectReason.SCHEMA_INVALID, False),
    ("value a numeric string", "d1", message(reading(value="94")),
     RejectReason.SCHEMA_INVALID, False),
    ("missing measured_at", "d1", message({"code": "spo2", "value": 94, "unit": "%"}),
     RejectReason.SCHEMA_INVALID, False),
    ("unknown code", "d1", message(reading(code="glucose")), RejectReason.UNKNOWN_CODE, False),
    ("unknown unit", "d1", message(reading(unit="mmol/L")), RejectReason.UNKNOWN_UNIT, False),
    ("unknown label", "d1", message(reading(code="consciousness", value="X", unit="")),
     RejectReason.UNKNOWN_LABEL, False),
    ("implausible", "d1", message(reading(value=140)), RejectReason.IMPLAUSIBLE_VALUE, False),
    ("non-integer ordinal", "d1", message(reading(code="pump_state", value=1.5, unit="{state}")),
     RejectReason.IMPLAUSIBLE_VALUE, False),
    ("future", "d1", message(reading(measured_at="2026-11-24T09:21:00Z")),
     RejectReason.FUTURE_TIMESTAMP, False),
]


@pytest.mark.parametrize(("case", "device", "payload", "reason", "whole"), CASES,
                         ids=[c[0] for c in CASES])
def test_decoder_rejects_with_reason(case: str, device: str, payload: bytes,
                                     reason: RejectReason, whole: bool) -> None:
    del case
    decoded = decode(readings_topic(device), payload, NOW, LIMITS)
    if whole:
        assert isinstance(decoded, Rejection)
        assert decoded.reason is reason
    else:
        assert isinstance(decoded, DecodedMessage)
        assert [p.reason for p in decoded.problems] == [reason]
        assert decoded.problems[0].index == 0


def test_future_tolerance_boundary() -> None:
    at_limit = message(reading(measured_at="2026-11-24T09:20:00Z"))
    beyond = message(reading(measured_at="2026-11-24T09:20:00.000001Z"))
    assert isinstance(decode(readings_topic("d1"), at_limit, NOW, LIMITS), DecodedMessage)
    result = decode(readings_topic("d1"), beyond, NOW, LIMITS)
    assert isinstance(result, DecodedMessage)
    assert result.problems[0].reason is RejectReason.FUTURE_TIMESTAMP


@pytest.mark.parametrize(("age_s", "late"), [(600, False), (601, True), (0, False)])
def test_late_boundary(age_s: int, late: bool) -> None:
    at = (NOW - dt.timedelta(seconds=age_s)).isoformat().replace("+00:00", "Z")
    result = decode(readings_topic("d1"), message(reading(measured_at=at)), NOW, LIMITS)
    assert isinstance(result, DecodedMessage)
    assert result.readings[0].late is late


@pytest.mark.parametrize("topic", ["vw/v1/devices/d1/results", "vw/v1/devices/d1/nope",
                                   "other/topic"])
def test_wrong_topics(topic: str) -> None:
    result = decode(topic, message(), NOW, LIMITS)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.WRONG_TOPIC


def test_repeated_reading_in_one_message() -> None:
    result = decode(readings_topic("d1"), message(reading(), reading(value=95)), NOW, LIMITS)
    assert isinstance(result, DecodedMessage)
    assert [(p.reason, p.index) for p in result.problems] == [
        (RejectReason.REPEATED_READING, 1)]


def _record(active: bool = True, start: dt.datetime | None = None) -> DeviceRecord:
    assignments = () if start is None else (Assignment("d1", 7, start, None),)
    return DeviceRecord(Device("d1", DeviceKind.PULSE_OXIMETER, active=active), assignments)


@pytest.mark.parametrize(("record", "reason"), [
    (None, RejectReason.UNKNOWN_DEVICE),
    (_record(active=False, start=NOW - dt.timedelta(days=1)), RejectReason.DEVICE_INACTIVE),
    (_record(start=NOW - dt.timedelta(seconds=30)), RejectReason.NO_PATIENT_ASSIGNMENT),
])
def test_pipeline_device_checks(record: DeviceRecord | None, reason: RejectReason) -> None:
    payload = message()
    decoded = decode(readings_topic("d1"), payload, NOW, LIMITS)
    plan = plan_batch([(readings_topic("d1"), payload, NOW, decoded)], lambda _id: record)
    assert plan.readings == ()
    assert plan.dead_letters[0].reason is reason
    assert plan.dead_letters[0].payload == payload
    result = result_for(plan.outcomes[0], False)
    assert result is not None
    assert result.status is ResultStatus.REJECTED
    assert result.errors[0].code is reason


def test_partial_message_stores_good_readings_and_reports_bad_by_index() -> None:
    payload = message(reading(), reading(code="pulse", value=999, unit="/min"))
    decoded = decode(readings_topic("d1"), payload, NOW, LIMITS)
    record = _record(start=NOW - dt.timedelta(days=1))
    plan = plan_batch([(readings_topic("d1"), payload, NOW, decoded)], lambda _id: record)
    assert [r.code for r in plan.readings] == ["spo2"]
    assert plan.dead_letters[0].reason is RejectReason.IMPLAUSIBLE_VALUE
    assert "[1] implausible_value" in plan.dead_letters[0].detail
    result = result_for(plan.outcomes[0], True)
    assert result is not None
    assert result.status is ResultStatus.ACCEPTED
    assert [(e.code, e.index) for e in result.errors] == [(RejectReason.IMPLAUSIBLE_VALUE, 1)]


def test_same_key_twice_in_a_batch_is_claimed_once() -> None:
    payload = message()
    decoded = decode(readings_topic("d1"), payload, NOW, LIMITS)
    record = _record(start=NOW - dt.timedelta(days=1))
    item = (readings_topic("d1"), payload, NOW, decoded)
    plan = plan_batch([item, item], lambda _id: record)
    assert len(plan.readings) == 1
    stored = stored_of(plan, [True])
    assert stored.outcomes == (True, False)
    statuses = [r.status for o, new in zip(plan.outcomes, stored.outcomes, strict=True)
                if (r := result_for(o, new))]
    assert statuses == [ResultStatus.ACCEPTED, ResultStatus.DUPLICATE]


def test_stored_of_maps_each_message_to_its_own_readings() -> None:
    """A message stored something iff one of the readings it claimed was new: the store's
    per-reading answer is split among the messages in order (the middle one a duplicate)."""
    record = _record(start=NOW - dt.timedelta(days=1))
    items = []
    for pulse in (60, 61, 62):
        payload = message(reading(), reading(code="pulse", value=pulse, unit="/min",
                                             measured_at=f"2026-11-24T09:1{pulse - 60}:00Z"))
        items.append((readings_topic("d1"), payload, NOW,
                      decode(readings_topic("d1"), payload, NOW, LIMITS)))
    plan = plan_batch(items, lambda _id: record)
    assert [o.claimed for o in plan.outcomes] == [2, 1, 1]  # the spo2 key claimed once
    stored = stored_of(plan, [False, True, False, True])
    assert stored.outcomes == (True, False, True)
    assert stored.count == 2
    assert patients_of(plan.readings, stored.readings) == [plan.readings[1].patient_id]
    assert stored_of(plan, [True] * 4).outcomes == (True, True, True)


# ---------------------------------------------------------------------------------------------
# Through the real gateway: dead-lettered with raw bytes, answered, and the stream goes on.


def test_bad_inputs_are_dead_lettered_and_answered(
    broker: Any, ward: Any, start_gateway: Any, results: Any, connect_mqtt: Any, poll: Any,
    unique: str,
) -> None:
    good, inactive, unassigned, unknown = (f"{k}-{unique}" for k in ("ok", "off", "na", "unk"))
    ward.add(good)
    ward.add(inactive)
    ward.add(unassigned, assign=False)
    with psycopg.connect(ward.url) as conn:
        conn.execute("UPDATE devices SET active = false WHERE id = %s", (inactive,))
    gw = start_gateway(ward.url, broker.url, VW_GATEWAY_MAX_PAYLOAD_BYTES="2048")
    client = connect_mqtt(broker.url)
    now = dt.datetime.now(dt.UTC)
    at = now.isoformat().replace("+00:00", "Z")

    def body(msg_id: str, *items: dict[str, object], **over: object) -> bytes:
        return json.dumps({"msg_id": msg_id, "sent_at": at,
                           "readings": list(items) or [reading(measured_at=at)], **over}).encode()

    cases = [
        (good, b"{oops", None, "malformed_json"),
        (good, body("c-schema", readings="x"), "c-schema", "schema_invalid"),
        (good, body("c-big", pad="x" * 4000), None, "payload_too_large"),
        (good, body("c-wrong", device_id="someone-else"), "c-wrong", "wrong_topic"),
        (good, body("c-code", reading(code="glucose", measured_at=at)), "c-code",
         "unknown_code"),
        (good, body("c-unit", reading(unit="mmol/L", measured_at=at)), "c-unit",
         "unknown_unit"),
        (good, body("c-implausible", reading(value=12, measured_at=at)), "c-implausible",
         "implausible_value"),
        (good, body("c-future", reading(measured_at="2099-01-01T00:00:00Z")), "c-future",
         "future_timestamp"),
        (unknown, body("c-unknown"), "c-unknown", "unknown_device"),
        (inactive, body("c-inactive"), "c-inactive", "device_inactive"),
        (unassigned, body("c-unassigned"), "c-unassigned", "no_patient_assignment"),
    ]
    for device, payload, _, _ in cases:
        client.publish(readings_topic(device), payload, qos=1).wait_for_publish(10)
    # The stream goes on: a good message after all the bad ones is stored.
    client.publish(readings_topic(good), body("c-good"), qos=1).wait_for_publish(10)
    poll(lambda: results.for_msg("c-good"), 20, "the good message's result")
    assert results.for_msg("c-good")[0]["status"] == "accepted"
    # The session broker is shared: other tests' retained status messages reach this gateway
    # too (as unknown devices). Count only this test's own topics.
    mine = f"%{unique}%"
    poll(lambda: ward.count("SELECT count(*) FROM rejected_messages WHERE topic LIKE %s",
                            mine) == len(cases), 20,
         "every dead letter")
    with psycopg.connect(ward.url) as conn:
        rows = {(r[0], r[1]): r[2:] for r in conn.execute(
            "SELECT device_id, reason, payload, payload_sha256, payload_bytes, payload_dropped "
            "FROM rejected_messages WHERE topic LIKE %s", (mine,))}
    for device, payload, msg_id, reason in cases:
        # An oversize payload is never stored: its reason, size and digest are.
        kept = None if reason == "payload_too_large" else payload
        dropped = "too_large" if reason == "payload_too_large" else None
        assert rows[(device, reason)] == (kept, hashlib.sha256(payload).digest(), len(payload),
                                          dropped), reason
        answers = [b for b in results.on(f"vw/v1/devices/{device}/results")
                   if b["msg_id"] == msg_id and b["errors"][0]["code"] == reason]
        assert answers, f"no {reason} answer on {device}'s results topic"
        assert answers[0]["status"] == "rejected"
    assert gw.stop() == 0


def test_rfc8428_and_rfc3339_rules_through_the_real_gateway(
    broker: Any, ward: Any, start_gateway: Any, results: Any, connect_mqtt: Any, poll: Any,
    unique: str,
) -> None:
    device = f"rfc-{unique}"
    ward.add(device)
    gw = start_gateway(ward.url, broker.url)
    client = connect_mqtt(broker.url)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    at = now.timestamp() - 30
    bn = {"bn": f"urn:dev:vw:{device}:", "bt": at}

    def pack(**record: object) -> bytes:
        return json.dumps([{**bn, **record}]).encode()

    epoch = json.dumps({"msg_id": f"epoch-{unique}", "sent_at": now.isoformat(),
                        "readings": [{"code": "pulse", "value": 70, "unit": "/min",
                                      "measured_at": int(at)}]}).encode()
    cases = [  # (topic, payload, result msg_id, status, stored (code, value) or None)
        (readings_topic(device), epoch, f"epoch-{unique}", "rejected", None),
        (senml_topic(device), pack(bver=11, n="resp_rate", u="/min", v=18), None, "rejected",
         None),
        (senml_topic(device), pack(n="spo2", u="%", v=95, vendor={"x": 1}), None, "accepted",
         ("spo2", 95.0)),
        (senml_topic(device), pack(n="temperature", u="Cel", vb=True), None, "rejected", None),
        (senml_topic(device), pack(n="on_oxygen", vb=True), None, "accepted",
         ("on_oxygen", 1.0)),
    ]
    for topic, payload, _, _, _ in cases:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    for topic, payload, msg_id, status, _ in cases:
        mid = msg_id or senml_msg_id(payload)
        poll(lambda mid=mid: results.for_msg(mid), 20, f"the result of {topic}")
        assert results.for_msg(mid)[0]["status"] == status, (payload, results.for_msg(mid))
    with psycopg.connect(ward.url) as conn:
        stored = sorted((str(r[0]), float(r[1])) for r in conn.execute(
            "SELECT code, value FROM readings WHERE device_id = %s", (device,)))
    assert stored == sorted(c[4] for c in cases if c[4] is not None)
    assert gw.stop() == 0


# ---------------------------------------------------------------------------------------------
# Dead-letter rationing and flood quarantine (gateway/dead_letters.py), table-driven.

LIMITS_R = Rationing(window=dt.timedelta(hours=1), messages=3, payload_bytes=100,
                     quarantine=dt.timedelta(hours=1))


def _letter(size: int, reason: RejectReason = RejectReason.MALFORMED_JSON,
            device: str | None = "d1") -> DeadLetter:
    return DeadLetter(f"vw/v1/devices/{device or 'x'}/readings", device, None, reason, "",
                      b"x" * size)


# (case, letters, prior account, how each is kept, quarantined?)
RATION_CASES: list[tuple[str, list[DeadLetter], Budget | None, list[str | None], bool]] = [
    ("payloads kept up to the byte budget", [_letter(60), _letter(40)], None,
     ["whole", "whole"], False),
    ("past the byte budget only the digest", [_letter(60), _letter(41)], None,
     ["whole", "device_budget"], False),
    ("an oversize payload is never kept", [_letter(10, RejectReason.PAYLOAD_TOO_LARGE)], None,
     ["too_large"], False),
    ("past the message limit: quarantined, not stored",
     [_letter(1), _letter(1), _letter(1), _letter(1), _letter(1)], None,
     ["whole", "whole", "whole"], True),
    ("already quarantined: nothing stored", [_letter(1)],
     Budget("d1", NOW - dt.timedelta(minutes=30), 3, 3, NOW + dt.timedelta(minutes=30)),
     [], False),
    ("a new window after the last one ended", [_letter(1)],
     Budget("d1", NOW - dt.timedelta(hours=2), 3, 100, None), ["whole"], False),
    ("a quarantine ends by itself", [_letter(1)],
     Budget("d1", NOW - dt.timedelta(hours=2), 3, 100, NOW - dt.timedelta(minutes=1)),
     ["whole"], False),
]


@pytest.mark.parametrize(("case", "letters", "prior", "kept", "quarantined"), RATION_CASES,
                         ids=[c[0] for c in RATION_CASES])
def test_dead_letters_are_rationed_per_device(
    case: str, letters: list[DeadLetter], prior: Budget | None, kept: list[str | None],
    quarantined: bool,
) -> None:
    del case
    decided = ration(letters, {"d1": prior} if prior else {}, NOW, LIMITS_R)
    assert [k.dropped or "whole" for k in decided.kept] == kept
    assert all((k.payload is None) == (k.dropped is not None) for k in decided.kept)
    assert bool(decided.quarantines) is quarantined
    assert decided.suppressed == len(letters) - len(kept)


def test_devices_are_rationed_separately() -> None:
    letters = [_letter(1, device=d) for d in ("a", "b", "a", "b", "a", "b", "a")]
    decided = ration(letters, {}, NOW, LIMITS_R)
    assert [q.device_id for q in decided.quarantines] == ["a"]
    assert sorted(k.letter.device_id or "" for k in decided.kept) == ["a"] * 3 + ["b"] * 3


def test_a_flooding_device_is_quarantined_and_its_readings_still_stored(
    broker: Any, ward: Any, start_gateway: Any, connect_mqtt: Any, poll: Any, unique: str,
) -> None:
    device = f"flood-{unique}"
    ward.add(device)
    gw = start_gateway(ward.url, broker.url)
    client = connect_mqtt(broker.url)
    n = 200
    for i in range(n):  # distinct garbage, 20 kB each: 4 MB offered
        client.publish(readings_topic(device), b"%d" % i + b"\xff" * 20_000, qos=1)
    client.publish(readings_topic(device), message(reading(measured_at=dt.datetime.now(
        dt.UTC).isoformat())), qos=1).wait_for_publish(20)
    poll(lambda: ward.count("SELECT count(*) FROM readings WHERE device_id = %s", device) == 1,
         60, "the valid reading after the flood")
    limits = Rationing()
    with psycopg.connect(ward.url) as conn:
        rows, kept = conn.execute(
            "SELECT count(*), coalesce(sum(octet_length(payload)), 0) FROM rejected_messages "
            "WHERE device_id = %s", (device,)).fetchone() or (0, 0)
        assert rows == limits.messages  # the rest counted, not stored
        assert kept <= limits.payload_bytes
        suppressed = conn.execute("SELECT suppressed FROM dead_letter_budget "
                                  "WHERE device_id = %s", (device,)).fetchone()
        quarantines = conn.execute("SELECT count(*) FROM device_quarantines WHERE device_id = %s",
                                   (device,)).fetchone()
    assert suppressed == (n - limits.messages,)
    assert quarantines == (1,)
    assert "device quarantined" in gw.log()
    assert gw.stop() == 0


def test_inbox_holds_at_most_its_bytes_until_acknowledged() -> None:
    inbox: Inbox[str] = Inbox(max_messages=10, max_bytes=100)
    stop = threading.Event()
    assert inbox.put("a", 60, stop, 0.01)
    second = threading.Thread(target=inbox.put, args=("b", 60, stop, 0.01))
    second.start()
    second.join(0.3)
    assert second.is_alive()  # 60 + 60 bytes would be over the limit: the sender waits
    assert inbox.take(1) == "a"
    assert second.is_alive()  # taken is not enough: the bytes are held until the ack
    inbox.done(60)
    second.join(5)
    assert not second.is_alive()
    assert inbox.take(1) == "b"
    assert inbox.held_bytes == 60
    alone: Inbox[str] = Inbox(max_messages=10, max_bytes=100)
    assert alone.put("big", 1_000, stop, 0.01)  # one larger message passes alone
    stop.set()
    assert not alone.put("more", 1, stop, 0.01)  # and a stop frees a waiting sender
