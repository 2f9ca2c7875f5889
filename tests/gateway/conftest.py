"""Fixtures for the gateway's integration tests: QoS 1 publishers, a subscriber for results and
the gateway's metrics. Real PostgreSQL, real Mosquitto. The ward to publish into (`ward`),
gateway processes (`start_gateway`), `connect_mqtt`, `poll` and `to_url` are shared with the
hub's tests in tests/conftest.py."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion


class Results:
    """Collects messages on results topics (decoded JSON), thread-safe."""

    def __init__(self, client: paho.Client,
                 topic_filter: str = "vw/v1/devices/+/results") -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = client
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self._ready.set()
        self.client.subscribe(topic_filter, qos=1)
        assert self._ready.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.items.append((msg.topic, json.loads(msg.payload)))

    def for_msg(self, msg_id: str | None) -> list[dict[str, Any]]:
        with self._lock:
            return [body for _, body in self.items if body.get("msg_id") == msg_id]

    def on(self, topic: str) -> list[dict[str, Any]]:
        with self._lock:
            return [body for t, body in self.items if t == topic]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def results(broker: Any, connect_mqtt: Callable[..., paho.Client]) -> Iterator[Results]:
    collector = Results(connect_mqtt(broker.url))
    yield collector
    collector.close()


class Stream:
    """Publishes `total` readings at QoS 1 from `devices`, `per_message` per message, in a
    background thread, with a persistent publisher session that survives a broker restart."""

    def __init__(self, url: str, devices: list[str], *, total: int, per_message: int = 10,
                 rate_msgs: float = 0.0) -> None:
        self.url = url
        self.devices = devices
        self.total = total
        self.per_message = per_message
        self.rate_msgs = rate_msgs
        self.acked = 0
        self.sent = 0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="stream", daemon=True)
        self.error: BaseException | None = None

    def messages(self) -> Iterator[tuple[str, bytes]]:
        from gateway.contract import Measurement, encode_readings, readings_topic

        start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=6)
        n_messages = self.total // self.per_message
        for k in range(n_messages):
            device = self.devices[k % len(self.devices)]
            slot = k // len(self.devices)
            first = start + dt.timedelta(seconds=slot * self.per_message)
            readings = [Measurement("spo2", 90 + (j % 10), "%", first + dt.timedelta(seconds=j))
                        for j in range(self.per_message)]
            yield readings_topic(device), encode_readings(f"{device}-{slot}", first, readings)

    def _on_publish(self, *_args: Any) -> None:
        with self._lock:
            self.acked += 1

    def _run(self) -> None:
        try:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            host, port = self.url.removeprefix("mqtt://").split(":")
            client = paho.Client(CallbackAPIVersion.VERSION2,
                                 client_id=f"stream-{uuid.uuid4().hex[:8]}",
                                 protocol=MQTTProtocolVersion.MQTTv5)
            client.max_inflight_messages_set(500)
            client.max_queued_messages_set(0)
            client.reconnect_delay_set(1, 2)
            client.on_publish = self._on_publish
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            client.connect(host, int(port), clean_start=False, properties=props)
            client.loop_start()
            interval = 1 / self.rate_msgs if self.rate_msgs else 0.0
            began = time.monotonic()
            for i, (topic, payload) in enumerate(self.messages()):
                client.publish(topic, payload, qos=1)
                self.sent += 1
                if interval:
                    lag = began + i * interval - time.monotonic()
                    if lag > 0:
                        time.sleep(lag)
            deadline = time.monotonic() + 120
            while self.acked < self.sent and time.monotonic() < deadline:
                time.sleep(0.05)
            client.loop_stop()
            client.disconnect()
        except BaseException as exc:  # surfaced by join()
            self.error = exc
        finally:
            self._done.set()

    def start(self) -> Stream:
        self.thread.start()
        return self

    def join(self, timeout: float = 120) -> None:
        assert self._done.wait(timeout), "publisher did not finish"
        if self.error is not None:
            raise self.error
        assert self.acked >= self.sent == self.total // self.per_message


@pytest.fixture
def stream() -> type[Stream]:
    return Stream


def metric(port: int, name: str) -> float:
    """Sum of a metric's samples from a gateway's /metrics endpoint."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key = line.split(" ", 1)[0].split("{", 1)[0]
            if key == name:
                total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def read_metric() -> Callable[[int, str], float]:
    return metric
