"""The broker's side of a share group: what Mosquitto does with a member that reconnects.

Why a file of its own: the gateway's "nothing lost with two gateways" promise rests on the
broker keeping a member's share over a reconnect with its persistent session. Upstream
Mosquitto 2.0.11 did not (eclipse/mosquitto 32af599c, in 2.0.12); these tests pin down that
the installed broker does, without the gateway in the way (raw paho clients, real broker).
See docs/mqtt.md, "the CI time-out of 2026-12".
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any


def test_a_share_member_reconnecting_mid_stream_keeps_its_share(
    broker: Any, poll: Any, unique: str,
) -> None:
    """The broker carries a member's *shared* subscription over a reconnect with its session.

    Upstream Mosquitto 2.0.11 did not (fixed in 2.0.12, eclipse/mosquitto 32af599c: the
    session's shared subscriptions stayed with the old connection until the member
    subscribed again); Debian's 2.0.11-1.2+deb12u2 carries that fix with CVE-2021-34434.
    Every copy still arrives while one of two members drops its TCP connection (no
    DISCONNECT, as a crash or a keepalive time-out) and reconnects, again and again."""
    import socket

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    total, topic = 3_000, f"t/{unique}"
    got: list[set[int]] = [set(), set()]
    connects = [0, 0]
    lock = threading.Lock()

    def member(i: int) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"share-{i}-{unique}",
                             protocol=MQTTProtocolVersion.MQTTv5)
        client.reconnect_delay_set(1, 1)
        subscribed = threading.Event()

        def on_connect(c: paho.Client, *_a: Any) -> None:
            connects[i] += 1
            c.subscribe(f"$share/g{unique}/{topic}/#", qos=1)

        def on_message(_c: paho.Client, _u: Any, m: paho.MQTTMessage) -> None:
            with lock:
                got[i].add(int(m.payload))

        client.on_connect = on_connect
        client.on_subscribe = lambda *_a: subscribed.set()
        client.on_message = on_message
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        client.connect("127.0.0.1", broker.port, 30, clean_start=False, properties=props)
        client.loop_start()
        assert subscribed.wait(10)
        return client

    members = [member(0), member(1)]
    publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"share-pub-{unique}",
                            protocol=MQTTProtocolVersion.MQTTv5)
    publisher.max_inflight_messages_set(500)
    publisher.max_queued_messages_set(0)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    publishing = threading.Event()

    def drop_member_1() -> None:  # under the broker's feet, while the stream goes on
        while not publishing.wait(1.5):  # paho reconnects after 1 s
            sock = members[1].socket()
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    dropper = threading.Thread(target=drop_member_1, daemon=True)
    dropper.start()
    try:
        sent = []
        for k in range(total):
            sent.append(publisher.publish(f"{topic}/{k % 40}", str(k).encode(), qos=1))
            time.sleep(0.002)  # a steady stream over several reconnects (~7 s)
        publishing.set()
        dropper.join()
        for info in sent:
            info.wait_for_publish(30)
        poll(lambda: len(got[0] | got[1]) >= total, 30, "every message at one member")
        assert got[0] | got[1] == set(range(total))
        assert connects[1] >= 4, connects  # it really reconnected mid-stream, 3+ times
        assert min(len(got[0]), len(got[1])) > total * 0.3  # both kept a share
    finally:
        for client in (*members, publisher):
            client.loop_stop()
            client.disconnect()


def test_mosquitto_keeps_a_shared_subscription_over_a_reconnect(
    broker: Any, connect_mqtt: Any, poll: Any, unique: str,
) -> None:
    """Without subscribing again, a member that reconnects to its session is still in the
    share. Upstream 2.0.11 fails this (the shared subscription stayed with the old
    connection and was freed with it; fixed in 2.0.12, eclipse/mosquitto 32af599c); the
    installed Debian 2.0.11 has the fix. The gateway subscribes on every connect anyway."""
    import socket

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    got: list[bytes] = []
    sessions: list[bool] = []
    subscribed = threading.Event()
    member = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"keep-share-{unique}",
                         protocol=MQTTProtocolVersion.MQTTv5)
    member.reconnect_delay_set(1, 1)

    def on_connect(c: paho.Client, _u: Any, flags: Any, *_a: Any) -> None:
        sessions.append(bool(flags.session_present))
        if len(sessions) == 1:  # the first connection only
            c.subscribe(f"$share/g{unique}/t/{unique}", qos=1)

    member.on_connect = on_connect
    member.on_subscribe = lambda *_a: subscribed.set()
    member.on_message = lambda _c, _u, m: got.append(m.payload)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    member.connect("127.0.0.1", broker.port, 30, clean_start=False, properties=props)
    member.loop_start()
    try:
        assert subscribed.wait(10)
        sock = member.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)  # no DISCONNECT: the session stays
        poll(lambda: len(sessions) == 2 and member.is_connected(), 10, "the reconnect")
        assert sessions == [False, True]
        publisher = connect_mqtt(broker.url)
        for i in range(10):
            publisher.publish(f"t/{unique}", str(i).encode(), qos=1).wait_for_publish(5)
        poll(lambda: len(got) == 10, 5, "the messages published after the reconnect")
    finally:
        member.loop_stop()
        member.disconnect()
