"""A device-offline alert clears once the device is heard again, with its hysteresis in time —
on the real path: device → Mosquitto → gateway → PostgreSQL → the scheduler's sweep."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from alerting.policy import load_policy, policy_path
from alerting.scheduler import sweep
from gateway.contract import encode_status, status_topic


def _publish(client: Any, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(10)


def _offline_alert(url: str) -> tuple[str, int] | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT state, clear_count FROM alerts WHERE kind = 'device_offline' "
                           "ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else (str(row[0]), int(row[1]))


def test_device_offline_alert_clears_when_the_device_is_heard_again(
        broker: Any, ward: Any, start_gateway: Any, connect_mqtt: Any, poll: Any,
        unique: str) -> None:
    dev = f"pox-{unique}"
    patient = ward.add(dev)
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(ward.url) as conn:
        conn.execute(
            "INSERT INTO admissions (patient_id, pathway, source, status, referred_at, "
            "admitted_at) VALUES (%s, 'step_up', 'gp', 'admitted', %s, %s)",
            (patient, now - dt.timedelta(hours=1), now - dt.timedelta(hours=1)))
    gw = start_gateway(ward.url, broker.url)
    client = connect_mqtt(broker.url)
    policy = load_policy(policy_path())

    def online(flag: bool) -> bool:
        return ward.count("SELECT count(*) FROM device_status WHERE device_id = %s AND "
                          "online = %s", dev, flag) == 1

    _publish(client, status_topic(dev), encode_status(online=False, sent_at=now))
    poll(lambda: online(False), 20, "the offline status")
    with psycopg.connect(ward.url) as conn:
        sweep(conn, policy, dt.datetime.now(dt.UTC))
    assert _offline_alert(ward.url) == ("raised", 0)

    back = dt.datetime.now(dt.UTC)
    _publish(client, status_topic(dev), encode_status(online=True, battery_pct=90,
                                                       sent_at=back))
    poll(lambda: online(True), 20, "the online status")
    heard = dt.datetime.now(dt.UTC)
    with psycopg.connect(ward.url) as conn:
        sweep(conn, policy, heard)
        first = _offline_alert(ward.url)
        sweep(conn, policy, heard + dt.timedelta(minutes=5))
        middle = _offline_alert(ward.url)
        sweep(conn, policy, heard + dt.timedelta(minutes=11))
        last = _offline_alert(ward.url)
    assert first is not None
    assert first[0] == "raised"  # one clear sweep is not recovery: connections flap
    assert middle is not None
    assert middle[0] == "raised"  # 5 min clear: still inside the 10-minute hysteresis
    assert last is not None
    assert last[0] == "resolved"  # clear for 10 minutes: resolved
    assert gw.stop() == 0
