"""The naive MQTT→PostgreSQL bridge the gateway is measured against.

What one writes first: subscribe, and for every message decode it, INSERT its readings (one
statement per message) and commit, with paho acknowledging automatically on receipt (so a crash between the ack and the
commit loses the message). No batching, no COPY, no validation beyond the JSON. Used by
benchmarks/bench_ingest.py only; never deploy this.

Usage: python benchmarks/naive_bridge.py MQTT_URL DATABASE_URL CLIENT_ID
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import threading
from typing import Any

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from ward.db.registry import device_directory


def main() -> int:
    mqtt_url, db_url, client_id = sys.argv[1:4]
    conn = psycopg.connect(db_url)
    directory = device_directory(conn)
    conn.commit()
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=MQTTProtocolVersion.MQTTv5)

    def on_message(_c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        device_id = msg.topic.split("/")[3]
        body = json.loads(msg.payload)
        record = directory.get(device_id)
        if record is None:
            return
        received = dt.datetime.now(dt.UTC)
        rows: list[object] = []
        for r in body["readings"]:
            at = dt.datetime.fromisoformat(r["measured_at"])
            rows += [device_id, r["code"], at, r["value"], r["unit"], record.patient_at(at),
                     received, body["msg_id"]]
        # One INSERT (all the message's readings) and one commit per message.
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(body["readings"]))
        conn.execute(
            "INSERT INTO readings (device_id, code, measured_at, value, unit, patient_id, "
            f"received_at, msg_id) VALUES {values} ON CONFLICT DO NOTHING", rows)
        conn.commit()
        client.publish(f"vw/v1/devices/{device_id}/results",
                       json.dumps({"msg_id": body["msg_id"], "status": "accepted",
                                   "errors": []}).encode(), qos=0)

    def on_connect(c: paho.Client, *_a: Any) -> None:
        c.subscribe("vw/v1/devices/+/readings", qos=1)

    client.on_message = on_message
    client.on_connect = on_connect
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    client.connect(host, int(port))
    client.loop_start()
    print("naive bridge running", flush=True)
    stop.wait()
    client.loop_stop()
    conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
