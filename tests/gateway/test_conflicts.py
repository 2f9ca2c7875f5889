"""A reading at a stored key with another value is a conflict, never a silent duplicate.

Same device, code and measured_at, same value and unit: a resend, answered `duplicate`, nothing
dead-lettered. Another value (or unit) from another message: rejected with
`conflicting_reading`, the message kept in `rejected_messages`, the first reading kept.
Real PostgreSQL (the gateway's write path) and, at the end, a real gateway and Mosquitto.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg

from gateway.contract import Measurement, RejectReason, encode_readings, readings_topic
from gateway.decode import Limits, Problem, decode
from gateway.pipeline import Stored, answer, plan_batch, settle
from gateway.sink import write_batch
from ward.db.registry import add_device, add_patient, assign_device, device_directory
from ward.db.store import ReadingStore, StoredValue
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.domain.patients import Patient
from ward.domain.readings import ReadingRow

NOW = dt.datetime(2026, 11, 24, 9, 15, tzinfo=dt.UTC)
AT = "2026-11-24T09:14:00Z"
AT2 = "2026-11-24T09:14:30Z"


def _payload(msg_id: str, *readings: tuple[str, str, float, str]) -> bytes:
    body = {"msg_id": msg_id, "sent_at": AT2, "readings": [
        {"code": c, "value": v, "unit": u, "measured_at": at} for c, at, v, u in readings]}
    return json.dumps(body).encode()


def _setup(conn: psycopg.Connection[Any]) -> int:
    patient = add_patient(conn, Patient("9434765919", "Ada", "Lovelace", dt.date(1950, 1, 1)))
    assert patient.id is not None
    add_device(conn, Device("w-1", DeviceKind.PULSE_OXIMETER))
    assign_device(conn, Assignment("w-1", patient.id, NOW - dt.timedelta(days=1)))
    conn.commit()
    return patient.id


def _write(conn: psycopg.Connection[Any], *payloads: bytes) -> list[dict[str, Any]]:
    """One batch through plan, store and commit; the answer to each message (decoded)."""
    topic = readings_topic("w-1")
    directory = device_directory(conn)
    conn.commit()
    plan = plan_batch([(topic, p, NOW, decode(topic, p, NOW, Limits())) for p in payloads],
                      directory.get)
    stored, _ = write_batch(conn, ReadingStore(), plan)
    plan = settle(plan, stored)
    out = []
    for outcome, new in zip(plan.outcomes, stored.outcomes, strict=True):
        body = answer(outcome, new)
        assert body is not None
        out.append(json.loads(body))
    return out


def _rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    rows = conn.execute("SELECT code, measured_at, value, msg_id FROM readings "
                        "ORDER BY code, measured_at").fetchall()
    conn.commit()
    return rows


def _dead(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    rows = conn.execute("SELECT msg_id, reason, detail, payload FROM rejected_messages "
                        "ORDER BY id").fetchall()
    conn.commit()
    return rows


def test_a_same_valued_resend_is_a_duplicate_and_nothing_is_dead_lettered(
        db: psycopg.Connection[Any]) -> None:
    _setup(db)
    assert _write(db, _payload("a", ("spo2", AT, 95, "%")))[0]["status"] == "accepted"
    # The same reading from another message id (a device re-sending it): still a duplicate.
    again = _write(db, _payload("b", ("spo2", AT, 95, "%")))
    assert again == [{"msg_id": "b", "status": "duplicate", "errors": []}]
    assert _dead(db) == []
    assert len(_rows(db)) == 1


def test_another_value_at_a_stored_key_is_a_conflict_kept_in_the_dead_letters(
        db: psycopg.Connection[Any]) -> None:
    _setup(db)
    first = _payload("a", ("spo2", AT, 95, "%"))
    _write(db, first)
    second = _payload("b", ("spo2", AT, 91, "%"))
    [result] = _write(db, second)
    assert result["status"] == "rejected"
    [error] = result["errors"]
    assert (error["code"], error["index"]) == ("conflicting_reading", 0)
    assert "spo2 at 2026-11-24T09:14:00+00:00" in error["detail"]
    assert "91.0 %" in error["detail"]
    assert "95.0 %" in error["detail"]
    assert "'a'" in error["detail"]  # the message whose reading is kept
    assert [(r[2], r[3]) for r in _rows(db)] == [(95.0, "a")]  # the first reading kept
    [(msg_id, reason, detail, payload)] = _dead(db)
    assert (msg_id, reason, bytes(payload)) == ("b", "conflicting_reading", second)
    assert "[0] conflicting_reading: spo2" in detail


def test_a_batch_of_new_duplicate_and_conflicting_readings_is_a_partial_accept(
        db: psycopg.Connection[Any]) -> None:
    _setup(db)
    _write(db, _payload("a", ("spo2", AT, 95, "%"), ("pulse", AT, 70, "/min")))
    mixed = _payload("b", ("spo2", AT, 95, "%"),        # duplicate
                     ("pulse", AT, 72, "/min"),         # conflict
                     ("spo2", AT2, 96, "%"),            # new
                     ("spo2", "2026-11-20T09:00:00Z", 97, "%"))  # no patient then: rejected
    [result] = _write(db, mixed)
    assert result["status"] == "accepted"
    assert [(e["code"], e["index"]) for e in result["errors"]] == [
        ("conflicting_reading", 1), ("no_patient_assignment", 3)]
    assert [(r[0], r[2], r[3]) for r in _rows(db)] == [
        ("pulse", 70.0, "a"), ("spo2", 95.0, "a"), ("spo2", 96.0, "b")]
    # One letter for the message, every problem listed (as for any partial rejection).
    [(msg_id, reason, detail, payload)] = _dead(db)
    assert (msg_id, reason, bytes(payload)) == ("b", "conflicting_reading", mixed)
    assert detail.splitlines()[0].startswith("[1] conflicting_reading: pulse")
    assert detail.splitlines()[1].startswith("[3] no_patient_assignment")


def test_a_batch_of_new_duplicate_and_conflicting_messages(
        db: psycopg.Connection[Any]) -> None:
    _setup(db)
    _write(db, _payload("a", ("spo2", AT, 95, "%"), ("pulse", AT, 70, "/min")))
    conflict = _payload("c", ("pulse", AT, 72, "/min"))
    results = _write(db, _payload("n", ("spo2", AT2, 96, "%")),
                     _payload("d", ("spo2", AT, 95, "%")), conflict)
    assert [r["status"] for r in results] == ["accepted", "duplicate", "rejected"]
    assert [e["code"] for e in results[2]["errors"]] == ["conflicting_reading"]
    assert [(r[0], r[2], r[3]) for r in _rows(db)] == [
        ("pulse", 70.0, "a"), ("spo2", 95.0, "a"), ("spo2", 96.0, "n")]
    assert [(d[0], d[1], bytes(d[3])) for d in _dead(db)] == [("c", "conflicting_reading",
                                                               conflict)]


def test_conflicts_keep_their_message_when_a_batch_is_split() -> None:
    """The poison fallback writes a batch one message at a time and joins the parts."""
    problem = Problem(RejectReason.CONFLICTING_READING, "x", 0)
    parts = [Stored((True,), (True,), 1), Stored((False, True), (False, True), 1, {0: (problem,)})]
    assert Stored.concat(parts).conflicts == {1: (problem,)}


def test_two_messages_of_one_batch_with_one_key_and_two_values(
        db: psycopg.Connection[Any]) -> None:
    _setup(db)
    first = _payload("a", ("spo2", AT, 95, "%"))
    resend = _payload("a2", ("spo2", AT, 95, "%"))
    other = _payload("b", ("spo2", AT, 91, "%"))
    results = _write(db, first, resend, other)
    assert [r["status"] for r in results] == ["accepted", "duplicate", "rejected"]
    assert [e["code"] for e in results[2]["errors"]] == ["conflicting_reading"]
    assert "message 'a' of the same batch" in results[2]["errors"][0]["detail"]
    assert [(r[2], r[3]) for r in _rows(db)] == [(95.0, "a")]
    assert [(d[0], d[1], bytes(d[3])) for d in _dead(db)] == [("b", "conflicting_reading",
                                                               other)]


def test_a_batch_resending_a_conflicting_reading_twice_rejects_both(
        db: psycopg.Connection[Any]) -> None:
    _setup(db)
    _write(db, _payload("a", ("spo2", AT, 95, "%")))
    # Both carry the same value, which conflicts with the stored one: neither is a duplicate.
    results = _write(db, _payload("b", ("spo2", AT, 91, "%")),
                     _payload("b", ("spo2", AT, 91, "%")))
    assert [r["status"] for r in results] == ["rejected", "rejected"]
    # Kept once: `rejected_messages` keeps one copy of identical bytes on one topic.
    assert [(d[0], d[1]) for d in _dead(db)] == [("b", "conflicting_reading")]


def test_the_store_tells_conflicts_from_duplicates(db: psycopg.Connection[Any]) -> None:
    pid = _setup(db)
    store = ReadingStore()
    row = ReadingRow("w-1", "spo2", NOW, 95.0, "%", pid, NOW, "a")
    with db.transaction():
        assert store.write_checked(db, [row]).inserted == [True]
    later = NOW + dt.timedelta(seconds=1)
    with db.transaction():
        written = store.write_checked(db, [
            row._replace(msg_id="b"),                       # duplicate
            row._replace(value=90.0, msg_id="c"),           # another value
            row._replace(unit="[%]", msg_id="d"),           # another unit
            row._replace(measured_at=later, msg_id="e"),    # new
        ])
    assert written.inserted == [False, False, False, True]
    assert written.conflicts == {1: StoredValue(95.0, "%", "a"), 2: StoredValue(95.0, "%", "a")}


def test_the_gateway_answers_a_conflict_and_keeps_it(
    broker: Any, ward: Any, start_gateway: Any, results: Any, connect_mqtt: Any, poll: Any,
    unique: str,
) -> None:
    """End to end: a real gateway between Mosquitto and PostgreSQL."""
    dev = f"pox-{unique}"
    ward.add(dev)
    gw = start_gateway(ward.url, broker.url)
    client = connect_mqtt(broker.url)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def send(msg_id: str, value: int) -> None:
        client.publish(readings_topic(dev), encode_readings(
            msg_id, now, [Measurement("spo2", value, "%", now)]), qos=1).wait_for_publish(10)
        poll(lambda: results.for_msg(msg_id), 20, f"the result of {msg_id}")

    send("m-1", 95)
    send("m-2", 95)  # the same reading from another message: a duplicate
    send("m-3", 91)  # the same key, another value: a conflict
    assert [results.for_msg(m)[0]["status"] for m in ("m-1", "m-2", "m-3")] == [
        "accepted", "duplicate", "rejected"]
    [error] = results.for_msg("m-3")[0]["errors"]
    assert (error["code"], error["index"]) == ("conflicting_reading", 0)
    assert "91.0 %" in error["detail"]
    assert "95.0 %" in error["detail"]
    assert ward.count("SELECT count(*) FROM readings WHERE device_id = %s AND value = 95 "
                      "AND msg_id = 'm-1'", dev) == 1
    assert ward.count("SELECT count(*) FROM readings WHERE device_id = %s", dev) == 1
    assert ward.count("SELECT count(*) FROM rejected_messages WHERE device_id = %s", dev) == 1
    assert ward.count("SELECT count(*) FROM rejected_messages WHERE msg_id = 'm-3' "
                      "AND reason = 'conflicting_reading'") == 1
    assert gw.stop() == 0
