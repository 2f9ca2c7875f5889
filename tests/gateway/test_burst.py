"""The MQTT link's bursts: a batch's acks and results reach paho's network thread with one
wake-up, and every packet is still sent (real broker)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

from gateway.mqtt import MqttLink, broker_address
from tests.gateway.conftest import Results


class _CountingSocket:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.senders: list[int] = []
        self.lock = threading.Lock()

    def send(self, data: bytes) -> int:
        with self.lock:
            self.senders.append(threading.get_ident())
        return int(self.inner.send(data))

    def sends_from(self, thread: int) -> int:
        with self.lock:
            return self.senders.count(thread)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_burst_of_results_wakes_the_network_thread_once(
        broker: Any, unique: str, connect_mqtt: Callable[..., paho.Client], poll: Any) -> None:
    collector = Results(connect_mqtt(broker.url))
    link = MqttLink(broker_address(broker.url), client_id=f"burst-{unique}", share_group="",
                    receive_maximum=10, session_expiry_s=0)
    link.start()
    try:
        assert link.connected.wait(10)
        client: Any = link._client
        counting = _CountingSocket(client._wake_socket)
        client._wake_socket = counting
        with link.burst():
            for i in range(30):
                assert link.publish(f"vw/v1/devices/b{unique}-{i}/results", b'{"n": 1}', 1)
            # Held back from this thread: paho's network thread was not woken per packet.
            assert counting.sends_from(threading.get_ident()) == 0
        poll(lambda: len([t for t, _ in list(collector.items) if unique in t]) == 30, 10,
             "all 30 results delivered")
        # One wake-up from this thread for the burst (paho's own thread also "wakes" itself
        # when it releases results held beyond RESULTS_INFLIGHT; it was awake anyway).
        assert counting.sends_from(threading.get_ident()) == 1
        assert client._sockpairW is counting  # other threads, paho's own, see the socket
    finally:
        link.stop()
