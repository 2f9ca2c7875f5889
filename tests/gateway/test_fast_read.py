"""The MQTT link's own reading of PUBLISH packets from the read-ahead buffer, and its one-write
PUBACKs: the same messages and acknowledgements paho's own path gives (real broker)."""

from __future__ import annotations

import queue
import struct
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion

from gateway.mqtt import MqttLink, ReadAhead, broker_address, parse_publish


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _publish(topic: bytes, payload: bytes, *, qos: int, mid: int, props: bytes | None,
             dup: bool = False) -> bytes:
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if props is not None:
        body += _varint(len(props)) + props
    body += payload
    return bytes([0x30 | (0x08 if dup else 0) | (qos << 1)]) + _varint(len(body)) + body


# MQTT 5 properties a broker may add: payload format indicator, message expiry, a user property.
_PROPS = b"\x01\x01" + b"\x02\x00\x00\x00\x3c" + b"\x26\x00\x01k\x00\x01v"


@pytest.mark.parametrize(("qos", "props", "payload"), [
    (1, b"", b'{"msg_id": "m1"}'),
    (1, _PROPS, b'{"msg_id": "m2"}'),
    (0, b"", b"x"),
    (1, b"", b""),
    (1, b"", b"y" * 300),  # a two-byte remaining length
    (1, None, b'{"msg_id": "v311"}'),
])
def test_a_publish_reads_as_paho_reads_it(qos: int, props: bytes | None, payload: bytes) -> None:
    mqtt5 = props is not None
    packet = _publish(b"vw/v1/devices/d-1/readings", payload, qos=qos, mid=513, props=props)
    tail = b"\x40\x02\x00\x01"  # the next packet is left where it is
    found = parse_publish(b"\x00\x00" + packet + tail, 2, mqtt5)
    assert found is not None
    topic, body, got_qos, mid, end = found
    header_len = 2
    while packet[header_len - 1] & 0x80:  # the remaining length's bytes
        header_len += 1
    expected = _packet.decode_publish(packet[0], packet[header_len:], MQTTProtocolVersion.MQTTv5
                                      if mqtt5 else MQTTProtocolVersion.MQTTv311)
    assert (topic, body, got_qos, mid) == (expected.topic.decode(), expected.payload,
                                           expected.qos, expected.mid)
    assert end == 2 + len(packet)


@pytest.mark.parametrize("data", [
    _publish(b"t/readings", b"p", qos=1, mid=1, props=b"")[:-1],  # not wholly there
    _publish(b"t/readings", b"p", qos=1, mid=1, props=b"")[:1],
    _publish(b"t/readings", b"p", qos=2, mid=1, props=b""),  # QoS 2: paho's
    _publish(b"", b"p", qos=1, mid=1, props=b""),  # a topic alias
    _publish(b"\xff\xfe", b"p", qos=1, mid=1, props=b""),  # not UTF-8: paho words it
    b"\x40\x02\x00\x01",  # a PUBACK
    b"\x30\xff\xff\xff\xff\x01",  # a remaining length of five bytes (malformed)
    b"",
])
def test_anything_else_is_left_to_paho(data: bytes) -> None:
    assert parse_publish(data, 0, True) is None


def test_messages_arrive_whole_in_order_and_one_write_acknowledges_a_batch(
        broker: Any, unique: str, connect_mqtt: Callable[..., paho.Client], poll: Any) -> None:
    publisher = connect_mqtt(broker.url)
    topic = f"vw/v1/devices/fr{unique}/readings"

    def link() -> MqttLink:
        made = MqttLink(broker_address(broker.url), client_id=f"fast-{unique}", share_group="",
                        receive_maximum=1000, session_expiry_s=300)
        made.start()
        assert made.subscribed.wait(10)
        return made

    first = link()
    slow: list[int] = []
    on_message = first._on_message

    def counted(client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        slow.append(msg.mid)
        on_message(client, userdata, msg)

    first._client.on_message = counted
    try:
        payloads = [f'{{"n": {i}, "pad": "{"x" * (i % 50)}"}}'.encode() for i in range(600)]
        for body in payloads:
            publisher.publish(topic, body, qos=1).wait_for_publish(5)
        got = []
        while len(got) < len(payloads):
            got.extend(first.take_many(1000, 10))
        assert [m.payload for m in got] == payloads
        assert {m.topic for m in got} == {topic}
        assert len(slow) < len(payloads) // 10  # nearly all read from the buffer, not by paho
        sock: Any = first._client.socket()
        assert type(sock) is ReadAhead
        sends: list[bytes] = []
        send = sock.send

        def counting(data: bytes) -> int:
            sends.append(bytes(data))
            return int(send(data))

        sock.send = counting
        assert first.ack_all(got) == len(got)
        # paho writes what was queued on its thread; a PINGREQ might come between.
        poll(lambda: any(len(s) >= 4 * len(got) for s in sends), 10, "the acks written")
        acks = [s for s in sends if len(s) >= 4 * len(got)]
        assert len(acks) == 1
        assert acks[0] == b"".join(struct.pack("!BBH", 0x40, 2, m.mid) for m in got)
    finally:
        first.stop()
    # Acknowledged: the session redelivers none of them, only what came after.
    publisher.publish(topic, b'{"after": true}', qos=1).wait_for_publish(5)
    second = link()
    try:
        taken = second.take(10)
        assert taken.payload == b'{"after": true}'
        with pytest.raises(queue.Empty):
            second.take(0.5)
    finally:
        second.stop()
