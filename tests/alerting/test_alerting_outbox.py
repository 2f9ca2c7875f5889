"""Outbox delivery: signed webhooks against a real local HTTP server, MQTT on the real broker."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from alerting import outbox
from alerting.notify import MqttNotifier, WebhookNotifier
from alerting.outbox import DeliveryError, OutboxItem
from ward.embedded import Broker

T0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)
SECRET = b"test-secret"


class Receiver:
    """A webhook receiver that fails the first ``fail`` requests with HTTP 503."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                status = 503 if len(receiver.requests) <= receiver.fail else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                del args

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    r = Receiver(getattr(request, "param", 0))
    yield r
    r.close()


def _enqueue(conn: psycopg.Connection[Any], channel: str, recipient: str, key: str) -> None:
    conn.execute("INSERT INTO notification_outbox (channel, recipient, payload, idempotency_key, "
                 "next_attempt_at) VALUES (%s, %s, %s, %s, %s)",
                 (channel, recipient, json.dumps({"type": "alert", "alert_id": 1}), key, T0))
    conn.commit()


@pytest.mark.parametrize("receiver", [2], indirect=True)
def test_webhook_is_signed_retried_with_backoff_and_delivered_once(
        db: psycopg.Connection[Any], receiver: Receiver) -> None:
    _enqueue(db, "webhook", receiver.url, "alert:1:raised:x")
    notifier = WebhookNotifier(SECRET)
    try:
        first = outbox.deliver_due(db, {"webhook": notifier}, T0)
        assert (first.delivered, first.retried) == (0, 1)
        assert outbox.deliver_due(db, {"webhook": notifier}, T0 + dt.timedelta(seconds=29)).retried == 0
        assert outbox.deliver_due(db, {"webhook": notifier}, T0 + dt.timedelta(seconds=30)).retried == 1
        # second back-off is 60 s
        assert outbox.deliver_due(db, {"webhook": notifier}, T0 + dt.timedelta(seconds=89)).delivered == 0
        assert outbox.deliver_due(db, {"webhook": notifier}, T0 + dt.timedelta(seconds=90)).delivered == 1
        assert outbox.deliver_due(db, {"webhook": notifier}, T0 + dt.timedelta(hours=1)).delivered == 0
    finally:
        notifier.close()
    assert len(receiver.requests) == 3
    headers, body = receiver.requests[-1]
    stamp = headers["X-VW-Timestamp"]
    expected = "sha256=" + hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-VW-Signature"] == expected
    assert headers["Idempotency-Key"] == "alert:1:raised:x"
    row = db.execute("SELECT attempts, delivered_at, failed_at, last_error FROM notification_outbox").fetchone()
    assert row == (3, T0 + dt.timedelta(seconds=90), None, None)


def test_undeliverable_webhook_ends_failed_and_visible(db: psycopg.Connection[Any]) -> None:
    _enqueue(db, "webhook", "http://127.0.0.1:9/nothing-listens", "k-dead")
    notifier = WebhookNotifier(SECRET, timeout=1)
    now = T0
    try:
        for _ in range(outbox.MAX_ATTEMPTS):
            outbox.deliver_due(db, {"webhook": notifier}, now)
            now += outbox.BACKOFF_CAP
    finally:
        notifier.close()
    attempts, failed_at, error = db.execute(
        "SELECT attempts, failed_at, last_error FROM notification_outbox").fetchone() or ()
    assert attempts == outbox.MAX_ATTEMPTS
    assert failed_at is not None
    assert "Connect" in error


class FakePager:
    """The SMS/pager provider boundary: records messages, fails when told to."""

    def __init__(self) -> None:
        self.sent: list[OutboxItem] = []
        self.down = True

    def send(self, item: OutboxItem) -> None:
        if self.down:
            raise DeliveryError("provider returned 502")
        self.sent.append(item)


def test_pluggable_provider_and_unknown_channels_wait(db: psycopg.Connection[Any]) -> None:
    _enqueue(db, "sms", "+447700900101", "k-sms")
    _enqueue(db, "carrier_pigeon", "loft", "k-bird")
    pager = FakePager()
    assert outbox.deliver_due(db, {"sms": pager}, T0).retried == 1
    pager.down = False
    assert outbox.deliver_due(db, {"sms": pager}, T0 + dt.timedelta(minutes=1)).delivered == 1
    assert [i.recipient for i in pager.sent] == ["+447700900101"]
    pending = db.execute("SELECT channel FROM notification_outbox WHERE delivered_at IS NULL").fetchall()
    assert pending == [("carrier_pigeon",)]  # kept for a process that has that channel


def test_mqtt_channel_publishes_to_the_alert_topic(db: psycopg.Connection[Any], broker: Broker,
                                                   unique: str) -> None:
    topic = f"vw/v1/alerts/{unique}/news2"
    got: list[bytes] = []
    ready = threading.Event()
    done = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{unique}")
    sub.on_subscribe = lambda *a: ready.set()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        got.append(message.payload)
        done.set()

    sub.on_message = on_message
    port = int(broker.url.rsplit(":", 1)[1])
    sub.connect("127.0.0.1", port)
    sub.subscribe(topic, qos=1)
    sub.loop_start()
    notifier = MqttNotifier(broker.url, client_id=f"pub-{unique}")
    try:
        assert ready.wait(5)
        _enqueue(db, "mqtt", topic, f"k-{unique}")
        assert outbox.deliver_due(db, {"mqtt": notifier}, T0).delivered == 1
        assert done.wait(5)
    finally:
        notifier.close()
        sub.loop_stop()
        sub.disconnect()
    assert json.loads(got[0]) == {"type": "alert", "alert_id": 1}
