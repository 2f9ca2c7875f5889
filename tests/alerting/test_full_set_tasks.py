"""Full-set requests end to end on the real PostgreSQL and broker: a partial score that
points to trouble stores a task and a ``full_set`` command for the patient's home hub in one
transaction; the outbox delivers it on ``vw/v1/devices/{hub}/commands``; a complete set
closes the task, silence past the due time marks it missed."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from alerting import outbox, scheduler, tasks
from alerting.notify import MqttNotifier
from alerting.policy import Policy
from alerting.requests import FullSetRequest, Reason
from alerting.runner import evaluate_after_commit
from gateway.contract import CommandKind, commands_topic, decode_command
from ward.db import registry
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.embedded import Broker

T0 = dt.datetime(2026, 1, 12, 14, 5, tzinfo=dt.UTC)  # Monday 14:05 GMT
FULL = {"spo2": 96, "pulse": 72, "resp_rate": 16, "temperature": 36.9, "systolic_bp": 128,
        "on_oxygen": 0, "consciousness": 0}


def _hub(conn: psycopg.Connection[Any], pid: int, hub_id: str) -> None:
    registry.add_device(conn, Device(hub_id, DeviceKind.HOME_HUB))
    registry.assign_device(conn, Assignment(hub_id, pid, T0 - dt.timedelta(days=1)))
    conn.commit()


def _tasks(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT patient_id, device_id, reason, status, created_at, due_at, "
                        "outcome FROM tasks ORDER BY id").fetchall()


def test_contract_and_alerting_agree_on_the_command() -> None:
    assert tasks.COMMANDS_TOPIC.format(device_id="hub-7") == commands_topic("hub-7")
    request = FullSetRequest(Reason.PARTIAL_TROUBLE, "NEWS2 at least 3", T0,
                             T0 + dt.timedelta(minutes=30), wake=False)
    command = decode_command(json.dumps(tasks.command_payload(12, request)).encode())
    assert (command.command_id, command.kind, command.due_at) == (
        "task-12", CommandKind.FULL_SET, T0 + dt.timedelta(minutes=30))


def test_partial_trouble_requests_a_full_set_once_and_the_answer_closes_it(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any, readings: Any,
        write_readings: Any, broker: Broker, unique: str) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    hub_id = f"hub-{unique}"
    _hub(db, pid, hub_id)
    # A wearable alone: SpO2 91 scores 3, the other five parameters are unknown.
    write_readings(db, readings(pid, T0, device="wear", spo2=91, pulse=88))
    evaluate_after_commit(db, [pid], T0, policy=policy)
    for minute in (1, 2, 3):  # the next readings of the wearable: no second request
        at = T0 + dt.timedelta(minutes=minute)
        write_readings(db, readings(pid, at, device="wear", spo2=91, pulse=88))
        evaluate_after_commit(db, [pid], at, policy=policy)
    assert _tasks(db) == [(pid, hub_id, "partial_trouble", "open", T0,
                           T0 + dt.timedelta(minutes=30), None)]
    (topic, payload, key), = db.execute(
        "SELECT recipient, payload, idempotency_key FROM notification_outbox "
        "WHERE channel = 'mqtt' AND recipient LIKE 'vw/v1/devices/%%'").fetchall()
    assert topic == commands_topic(hub_id)
    command = decode_command(json.dumps(payload).encode())
    assert command.reason == "partial_trouble"
    assert not command.wake
    assert "single parameter scoring 3" in command.detail
    assert key == f"command:{command.command_id}"

    # The outbox delivers the command to the hub's own topic on the real broker.
    got: list[bytes] = []
    ready, done = threading.Event(), threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hub-sub-{unique}")
    sub.on_subscribe = lambda *a: ready.set()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        got.append(message.payload)
        done.set()

    sub.on_message = on_message
    sub.connect("127.0.0.1", int(broker.url.rsplit(":", 1)[1]))
    sub.subscribe(commands_topic(hub_id), qos=1)
    sub.loop_start()
    notifier = MqttNotifier(broker.url, client_id=f"pub-{unique}")
    try:
        assert ready.wait(5)
        outbox.deliver_due(db, {"mqtt": notifier}, T0 + dt.timedelta(minutes=3))
        assert done.wait(5)
    finally:
        notifier.close()
        sub.loop_stop()
        sub.disconnect()
    assert decode_command(got[0]) == command

    # The patient takes a full set at 14:17: the task is done.
    answered = T0 + dt.timedelta(minutes=12)
    write_readings(db, readings(pid, answered, device="kit", **FULL))
    evaluate_after_commit(db, [pid], answered, policy=policy)
    (_, _, _, status, _, _, outcome), = _tasks(db)
    assert (status, outcome) == ("done", "full set taken 12 min after request")


@pytest.mark.parametrize("with_hub", [True, False])
def test_an_unanswered_request_is_missed_at_its_due_time(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any, readings: Any,
        write_readings: Any, unique: str, with_hub: bool) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    if with_hub:
        _hub(db, pid, f"hub-{unique}")
    write_readings(db, readings(pid, T0, device="wear", spo2=93, pulse=95))  # lower bound 3
    evaluate_after_commit(db, [pid], T0, policy=policy)
    commands = db.execute("SELECT count(*) FROM notification_outbox WHERE recipient LIKE "
                          "'vw/v1/devices/%%/commands'").fetchone()
    assert commands == (1 if with_hub else 0,)  # no hub: the task alone (the hub phones)
    scheduler.sweep(db, policy, T0 + dt.timedelta(minutes=29))
    assert _tasks(db)[0][3] == "open"
    scheduler.sweep(db, policy, T0 + dt.timedelta(minutes=30))
    (_, device, _, status, _, _, outcome), = _tasks(db)
    assert (device is not None, status, outcome) == (with_hub, "missed",
                                                     "no full set by the due time")
    # Cooldown: the trouble persists, but a missed request doubles the 2 h wait: 4 h.
    def reading_at(minutes: int) -> None:
        at = T0 + dt.timedelta(minutes=minutes)
        write_readings(db, readings(pid, at, device="wear", spo2=93, pulse=95))
        evaluate_after_commit(db, [pid], at, policy=policy)

    for minutes in (120, 239, 240):
        reading_at(minutes)
    rows = _tasks(db)
    assert [r[4] for r in rows] == [T0, T0 + dt.timedelta(minutes=240)]
    assert json.dumps([r[3] for r in rows]) == '["missed", "open"]'
    # That one is missed too: two in a row, so the next waits 8 h.
    scheduler.sweep(db, policy, T0 + dt.timedelta(minutes=270))
    assert tasks.latest_requests(db, [pid])[pid].misses == 2
    for minutes in (240 + 4 * 60, 240 + 8 * 60 - 1):  # (and 8 h later it is 02:05: night)
        reading_at(minutes)
    assert len(_tasks(db)) == 2


def test_the_command_goes_to_the_patients_real_hub_never_the_staff_entry_device() -> None:
    from alerting.care_plan import CarePlan
    from alerting.snapshot import DeviceState, PatientSnapshot
    from ward.hub.staff_entry import STAFF_DEVICE_KIND, staff_device_id

    def snap(*devices: DeviceState) -> PatientSnapshot:
        return PatientSnapshot(5, {}, CarePlan(5), devices=devices)

    staff = DeviceState(staff_device_id(5), STAFF_DEVICE_KIND.value)
    quiet = DeviceState("hub-a", "home_hub")
    heard = DeviceState("hub-b", "home_hub", True, 80.0, T0)
    oximeter = DeviceState("aaa-pox", "pulse_oximeter", True, 80.0, T0)
    assert tasks.home_hub(snap(staff)) is None
    assert tasks.home_hub(snap(staff, quiet, oximeter)) == "hub-a"
    assert tasks.home_hub(snap(quiet, heard, staff)) == "hub-b"


def test_the_doubt_hook_asks_for_a_repeat_with_the_reason_on_the_task(
        db: psycopg.Connection[Any], add_patients: Any, readings: Any, write_readings: Any,
        unique: str) -> None:
    """What the artefact stage calls: ``tasks.Subject(..., doubt=reason)`` in the runner."""
    from alerting import rules, store

    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    _hub(db, pid, f"hub-{unique}")
    write_readings(db, readings(pid, T0, device="kit", **FULL))  # complete and normal
    with db.transaction():
        snapshot = store.load_snapshots(db, [pid], T0)[pid]
        evaluation = rules.evaluate(snapshot, T0)
        plain = tasks.follow_up(db, [tasks.Subject(pid, snapshot, evaluation)], T0)
        doubted = tasks.follow_up(db, [tasks.Subject(pid, snapshot, evaluation,
                                                     doubt="SpO2 96→84 in one spot reading")], T0)
    assert plain.requested == []
    assert len(doubted.requested) == 1
    (_, device, reason, status, _, due, _), = _tasks(db)
    assert (device, reason, status, due) == (f"hub-{unique}", "doubtful_reading", "open",
                                             T0 + dt.timedelta(minutes=30))
    (payload,) = db.execute("SELECT payload FROM notification_outbox WHERE recipient = %s",
                            (commands_topic(f"hub-{unique}"),)).fetchone() or ()
    assert decode_command(json.dumps(payload).encode()).detail == "SpO2 96→84 in one spot reading"
