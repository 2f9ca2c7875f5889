"""A lean MQTT 3.1.1 QoS 1 publisher for load runs: pipelined writes, PUBACKs counted.

Why not paho here: one paho publisher process tops out near 6,000–10,000 QoS 1 messages/s on
these 2-core machines (measured: ~10,600/s with nothing else running), most of it spent in
per-message Python bookkeeping and its network thread. A load run needs ≥ 20,000/s from two
processes that must also *generate* the messages, so this client keeps only what QoS 1 needs:
CONNECT/CONNACK, PUBLISH with a packet id, and counting PUBACKs, with a bounded window of
unacknowledged messages (the broker is never asked to hold more than `window`). Normal runs use
paho (`simulators.publisher`); both speak the same protocol to the same broker.

One thread, one socket: writes are batched into one `sendall` of up to `_BATCH_BYTES`, and
acknowledgements are read between batches (blocking only when the window is full).
"""

from __future__ import annotations

import socket
import struct
from urllib.parse import urlsplit

_CONNACK = 0x20
_PUBACK = 0x40
# Batch writes into ~64 KiB segments: one syscall per few hundred messages.
_BATCH_BYTES = 65_536
_KEEPALIVE_S = 60


class MqttWireError(RuntimeError):
    """The broker refused the connection or closed it."""


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    flags = 0x02  # clean session: a load client keeps no state at the broker
    payload = _utf8(client_id)
    if username is not None:
        flags |= 0x80
        payload += _utf8(username)
        if password is not None:
            flags |= 0x40
            payload += _utf8(password)
    variable = _utf8("MQTT") + bytes((4, flags)) + struct.pack("!H", _KEEPALIVE_S)
    body = variable + payload
    return bytes((0x10,)) + _remaining_length(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int, *, retain: bool = False) -> bytes:
    """A QoS 1 PUBLISH."""
    head = _utf8(topic) + struct.pack("!H", packet_id)
    return (bytes((0x32 | (1 if retain else 0),)) + _remaining_length(len(head) + len(payload))
            + head + payload)


class WirePublisher:
    """QoS 1 publisher over one connection, at most `window` messages unacknowledged."""

    def __init__(self, url: str, client_id: str, *, username: str | None = None,
                 password: str | None = None, window: int = 1000, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp"):
            msg = f"only mqtt:// URLs are supported by the load publisher, got {url!r}"
            raise MqttWireError(msg)
        self.window = window
        self.sent = 0
        self.acked = 0
        self._next_id = 0
        self._out = bytearray()
        self._in = bytearray()
        self._sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 1883),
                                              timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.sendall(connect_packet(client_id, username or parts.username,
                                          password or parts.password))
        head = self._recv_exact(4)
        if head[0] != _CONNACK or head[3] != 0:
            msg = f"broker refused the connection (CONNACK {head.hex()})"
            raise MqttWireError(msg)

    def _recv_exact(self, n: int) -> bytes:
        while len(self._in) < n:
            chunk = self._sock.recv(65_536)
            if not chunk:
                msg = "broker closed the connection"
                raise MqttWireError(msg)
            self._in += chunk
        data = bytes(self._in[:n])
        del self._in[:n]
        return data

    def _read_acks(self, *, block: bool) -> None:
        self._sock.setblocking(block)
        try:
            chunk = self._sock.recv(65_536)
        except BlockingIOError:
            return
        finally:
            self._sock.setblocking(True)
        if not chunk:
            msg = "broker closed the connection"
            raise MqttWireError(msg)
        self._in += chunk
        # PUBACK is exactly 4 bytes (0x40 0x02 id id); a publisher receives nothing else.
        whole = len(self._in) // 4 * 4
        for i in range(0, whole, 4):
            if self._in[i] != _PUBACK:
                msg = f"unexpected packet type {self._in[i]:#x} from the broker"
                raise MqttWireError(msg)
        self.acked += whole // 4
        del self._in[:whole]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self._next_id = self._next_id % 65_535 + 1
        self._out += publish_packet(topic, payload, self._next_id, retain=retain)
        self.sent += 1
        if len(self._out) >= _BATCH_BYTES:
            self._write()
        while self.sent - self.acked >= self.window:
            self._write()
            self._read_acks(block=True)

    def _write(self) -> None:
        if self._out:
            self._sock.sendall(self._out)
            self._out.clear()
        self._read_acks(block=False)

    def flush(self) -> None:
        """Send what is batched and wait for every PUBACK."""
        self._write()
        while self.acked < self.sent:
            self._read_acks(block=True)

    def close(self) -> None:
        try:
            self.flush()
            self._sock.sendall(b"\xe0\x00")  # DISCONNECT
        finally:
            self._sock.close()
