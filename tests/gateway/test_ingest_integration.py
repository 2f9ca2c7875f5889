"""The gateway as a real process between a real Mosquitto and a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import psycopg
import pytest

from gateway.contract import (
    Measurement,
    encode_readings,
    encode_senml,
    encode_status,
    readings_topic,
    senml_topic,
    status_topic,
)
from gateway.decode import senml_msg_id
from ward.db import channels


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _publish(client: Any, topic: str, payload: bytes, *, retain: bool = False) -> None:
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)


# The gateway speaks either protocol (VW_MQTT_PROTOCOL); the contract is the same on both.
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_readings_are_stored_answered_and_notified(
    broker: Any, ward: Any, start_gateway: Any, results: Any, connect_mqtt: Any, poll: Any,
    unique: str, protocol: str,
) -> None:
    dev = f"pox-{unique}"
    patient = ward.add(dev)
    listener = psycopg.connect(ward.url, autocommit=True)
    channels.listen(listener, channels.EVENTS)
    gw = start_gateway(ward.url, broker.url, VW_MQTT_PROTOCOL=protocol)
    assert f"protocol={protocol} " in gw.log()
    client = connect_mqtt(broker.url)
    now = _now()
    payload = encode_readings("m-1", now, [
        Measurement("spo2", 94, "%", now), Measurement("temperature", 100.4, "[degF]", now),
        Measurement("consciousness", "V", "", now)])
    _publish(client, readings_topic(dev), payload)
    poll(lambda: results.for_msg("m-1"), 20, "a result")
    assert results.for_msg("m-1") == [{"msg_id": "m-1", "status": "accepted", "errors": []}]
    with psycopg.connect(ward.url) as conn:
        rows = conn.execute(
            "SELECT code, value, unit, patient_id, source_value, source_unit, late "
            "FROM readings WHERE device_id = %s ORDER BY code", (dev,)).fetchall()
    assert [r[0] for r in rows] == ["consciousness", "spo2", "temperature"]
    assert rows[0][1] == 2.0
    assert rows[2][1:] == (38.0, "Cel", patient, 100.4, "[degF]", False)
    assert all(r[3] == patient for r in rows)
    # vw_events also carries the alerting core's score/alert events (sent from its own thread
    # after the readings' commit) and other writers' events: look for ours among them.
    expected = {"type": "readings", "patient_ids": [patient]}
    seen = []
    deadline = time.monotonic() + 10
    while expected not in seen and time.monotonic() < deadline:
        seen += [json.loads(n.payload) for n in listener.notifies(timeout=0.5)]
    listener.close()
    assert expected in seen, seen

    # The same message again (a redelivery) changes nothing and is answered "duplicate".
    _publish(client, readings_topic(dev), payload)
    poll(lambda: len(results.for_msg("m-1")) == 2, 20, "a second result")
    assert results.for_msg("m-1")[1]["status"] == "duplicate"
    assert ward.count("SELECT count(*) FROM readings WHERE device_id = %s", dev) == 3

    # SenML is mapped onto the same readings; store-and-forward readings are flagged late.
    old = now - dt.timedelta(hours=2)
    pack = encode_senml(dev, [Measurement("pulse", 88, "beat/min", old),
                              Measurement("pump_state", "occluded", "", old)])
    _publish(client, senml_topic(dev), pack)
    poll(lambda: results.for_msg(senml_msg_id(pack)), 20, "a SenML result")
    assert results.for_msg(senml_msg_id(pack))[0]["status"] == "accepted"
    assert ward.count("SELECT count(*) FROM readings WHERE device_id = %s AND late", dev) == 2

    # Status upserts device_status; an older report does not overwrite a newer one.
    _publish(client, status_topic(dev), encode_status(online=True, battery_pct=81,
                                                       signal_dbm=-67, firmware="2.1",
                                                       sent_at=now))
    _publish(client, status_topic(dev), encode_status(online=False, sent_at=old))
    poll(lambda: ward.count("SELECT count(*) FROM device_status WHERE device_id = %s "
                            "AND battery_pct = 81", dev) == 1, 20, "device status")
    assert ward.count("SELECT count(*) FROM device_status WHERE device_id = %s AND online",
                      dev) == 1
    assert "m-1" not in gw.log() or "postgresql://" not in gw.log()
    assert gw.stop() == 0
    # A normal stop is not a fault: no "disconnected … will be redelivered" warning.
    assert "level=WARNING" not in gw.log(), gw.log()


def test_secrets_never_reach_the_log(
    broker: Any, ward: Any, start_gateway: Any, poll: Any,
) -> None:
    # A password in the database URL (trust auth ignores it) and a broker password.
    url = psycopg.conninfo.make_conninfo(ward.url, password="s3cr3t-db")
    gw = start_gateway(url, broker.url, VW_MQTT_USERNAME="gw",
                       VW_MQTT_PASSWORD="s3cr3t-mqtt")
    assert gw.stop() == 0
    text = gw.log()
    assert "gateway stopped" in text
    assert "s3cr3t" not in text
    assert "postgresql://" not in text


def test_committed_patients_are_evaluated_by_the_alerting_process(
    broker: Any, ward: Any, start_gateway: Any, start_service: Any, results: Any,
    connect_mqtt: Any, poll: Any, unique: str, to_url: Any,
) -> None:
    dev = f"al-{unique}"
    patient = ward.add(dev)
    gw = start_gateway(ward.url, broker.url, VW_GATEWAY_ALERTING="true")
    # A long sweep interval: only the queue evaluator (woken by NOTIFY) can score in time.
    alerting = start_service(["alerting", "--interval", "600"],
                             {"VW_DATABASE_URL": to_url(ward.url), "VW_LOG_LEVEL": "INFO"},
                             ready="alerting evaluator listening")
    client = connect_mqtt(broker.url)
    now = _now()
    vitals = [("spo2", 88, "%"), ("pulse", 128, "/min"), ("resp_rate", 27, "/min"),
              ("temperature", 39.2, "Cel"), ("systolic_bp", 92, "mm[Hg]"),
              ("consciousness", "A", ""), ("on_oxygen", "air", "")]
    _publish(client, readings_topic(dev), encode_readings(
        "al-1", now, [Measurement(c, v, u, now) for c, v, u in vitals]))
    poll(lambda: results.for_msg("al-1"), 20, "a result")
    assert results.for_msg("al-1")[0]["status"] == "accepted"
    poll(lambda: ward.count("SELECT count(*) FROM scores WHERE patient_id = %s", patient) > 0,
         20, "the alerting core to score the patient")
    assert ward.count("SELECT count(*) FROM alerting_queue") == 0
    assert "alerting evaluation failed" not in alerting.log()
    assert gw.stop() == 0
    assert alerting.stop() == 0


def test_alerting_off_queues_nothing(
    broker: Any, ward: Any, start_gateway: Any, results: Any, connect_mqtt: Any, poll: Any,
    unique: str,
) -> None:
    dev = f"nq-{unique}"
    ward.add(dev)
    gw = start_gateway(ward.url, broker.url)  # the fixture's default: VW_GATEWAY_ALERTING=false
    client = connect_mqtt(broker.url)
    now = _now()
    _publish(client, readings_topic(dev), encode_readings(
        "nq-1", now, [Measurement("spo2", 97, "%", now)]))
    poll(lambda: results.for_msg("nq-1"), 20, "a result")
    assert ward.count("SELECT count(*) FROM alerting_queue") == 0
    assert gw.stop() == 0


def test_gateway_on_mqtt_3_1_1_stores_and_answers(
    broker: Any, ward: Any, start_gateway: Any, results: Any, connect_mqtt: Any, poll: Any,
    unique: str,
) -> None:
    dev = f"v3-{unique}"
    ward.add(dev)
    gw = start_gateway(ward.url, broker.url, VW_MQTT_PROTOCOL="3.1.1")
    client = connect_mqtt(broker.url)
    now = _now()
    _publish(client, readings_topic(dev), encode_readings(
        "v3-1", now, [Measurement("spo2", 96, "%", now)]))
    poll(lambda: results.for_msg("v3-1"), 20, "a result")
    assert results.for_msg("v3-1")[0]["status"] == "accepted"
    assert ward.count("SELECT count(*) FROM readings WHERE device_id = %s", dev) == 1
    assert gw.stop() == 0


def test_by_default_only_problems_are_answered(
    broker: Any, ward: Any, start_gateway: Any, results: Any, connect_mqtt: Any, poll: Any,
    unique: str,
) -> None:
    """The default `VW_GATEWAY_RESULTS=problems`: a clean accept is said by the PUBACK after
    the commit alone; a rejection (dead-lettered) and a duplicate are still answered."""
    dev = f"pox-{unique}"
    ward.add(dev)
    start_gateway(ward.url, broker.url, VW_GATEWAY_RESULTS="problems")
    client = connect_mqtt(broker.url)
    now = _now()
    good = encode_readings("ok-1", now, [Measurement("spo2", 94, "%", now)])
    _publish(client, readings_topic(dev), good)
    poll(lambda: ward.count("SELECT count(*) FROM readings WHERE msg_id = 'ok-1'") == 1, 20,
         "the reading stored")
    _publish(client, readings_topic(dev), encode_readings(
        "bad-1", now, [Measurement("pulse", 999, "/min", now)]))
    _publish(client, readings_topic(dev), good)  # a resend: nothing new
    poll(lambda: results.for_msg("bad-1") and results.for_msg("ok-1"), 20, "two results")
    assert results.for_msg("bad-1")[0]["status"] == "rejected"
    assert results.for_msg("bad-1")[0]["errors"][0]["code"] == "implausible_value"
    assert [r["status"] for r in results.for_msg("ok-1")] == ["duplicate"]  # no "accepted"
    assert ward.count("SELECT count(*) FROM rejected_messages WHERE msg_id = 'bad-1'") == 1
