"""The gateway's MQTT link: paho-mqtt 2.x, MQTT 5 or 3.1.1, persistent session, manual ack.

A thin adapter. paho's network thread puts every message in `inbox`; the ingest loop takes
them, commits, then calls `ack`. Memory is bounded twice over:
- the CONNECT asks for a Receive Maximum, so while nothing is acknowledged (the database is
  down) the broker sends at most that many messages;
- Mosquitto 2.0 stops enforcing that quota once acknowledgements flow (measured: a client
  with Receive Maximum 50 got all 1,000 queued messages after acking 25), so when the gateway
  falls behind a live stream, `inbox` is capped too: the network thread waits for room before
  it reads the next message, the socket fills, and the broker keeps the rest in this
  session's queue. Nothing is dropped;
- and by bytes: at most `INBOX_MAX_BYTES` of payloads received but not yet acknowledged
  (`gateway.inbox`), so a flood of large messages cannot grow memory either.

MQTT 3.1.1 (`VW_MQTT_PROTOCOL=3.1.1`, for brokers that speak nothing newer) keeps the ack
after commit and the persistent session (clean_session false) but gives up three things: no
Receive Maximum (the broker's own in-flight limit — Mosquitto's `max_inflight_messages` —
bounds what is un-acked; the inbox cap below still holds), no session expiry (the broker keeps
the session until it is told otherwise), and no reason codes on SUBACK/PUBACK.

Acks are only valid on the connection that received the message. After a reconnect the broker
resends every un-acknowledged message (same session), so an ack for a message of an earlier
connection is skipped: its resent copy is stored as a duplicate and acknowledged then.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import socket
import struct
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any, NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.contract import INGEST_CHANNELS, Channel, channel_filter, shared_filter
from gateway.inbox import Inbox

log = logging.getLogger(__name__)

# Reconnect backoff: first retry after a second, at most every 10 s while the broker is down.
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 10
# Keepalive: the broker notices a dead gateway within 1.5 × 30 s and redelivers its messages.
KEEPALIVE_S = 30
# Results in flight at QoS 1 before paho queues them locally. Not more than Mosquitto takes:
# its CONNACK says Receive Maximum 20 (its max_inflight_messages default) and paho does not
# apply the broker's figure (nor may it be changed once connected); at 1,000 the benchmark's
# broker dropped the gateway ("disconnected due to out of memory"). 20 per round trip to a
# local broker is still tens of thousands of results a second.
RESULTS_INFLIGHT = 20
# Results waiting in paho's own queue beyond that; past it a result is dropped (and counted):
# results are advisory, the PUBACK after commit is the device's durable acknowledgement.
# Each queued result costs ~2 KiB in paho (an MQTTMessage with its MQTTMessageInfo and
# threading.Condition): at 20,000, a 60,000-message run answering every message filled the
# queue in 10 s and grew the gateway's RSS 51 → 93 MiB, never given back, while 38,107
# results were dropped anyway (measured 2026-12-02). 1,000 holds a full batch's rejections
# in ~2 MiB.
RESULTS_QUEUED = 1_000
# The inbox holds at most this many Receive Maximums of messages (see module docstring).
INBOX_FACTOR = 2
# ... and at most this many payload bytes received but not yet acknowledged (gateway.inbox):
# 32 MiB is 500 messages at the 64 KiB payload limit — a full batch — while a flood of 1 MB
# messages cannot push the gateway's memory past it.
INBOX_MAX_BYTES = 32 << 20
# While waiting for room, the network thread wakes this often to notice a stop.
ROOM_POLL_S = 0.5
# How long a stop waits for paho to send its DISCONNECT before it shuts the socket.
STOP_GRACE_S = 2.0
# Bytes read from the socket at once. paho reads each packet with three or four recv calls
# (the command byte, the length bytes one by one, the body): four system calls per message,
# each also a trip through the GIL. Reading ahead serves them from memory: at ~250 bytes per
# single-reading message, one recv per ~250 messages. Bounded: at most this much is buffered
# beyond what paho asked for, and it still counts against nothing else (the socket would
# have held it anyway).
READ_AHEAD_BYTES = 64 << 10
# Packets paho handles per pass of its loop, from what `ReadAhead` already holds. paho reads
# one packet per pass when nothing of ours is in flight (manual acks keep no in-flight
# state), and every pass costs a `select`, a `loop_misc` and a dozen calls: 14 % of the
# gateway's samples under the ingest benchmark were that `select` (py-spy, 2026-12-02).
# Reading on while bytes are buffered makes it one pass per read-ahead buffer (~250 single
# readings); the cap keeps acks and pings moving when a flood never leaves the buffer empty.
READ_BURST_PACKETS = 1_000
# `VW_MQTT_PROTOCOL` values and paho's names for them.
PROTOCOLS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}


class Inbound(NamedTuple):
    """One received message. A named tuple, not a frozen dataclass: one is made per message
    on paho's thread, and a tuple is built at a fifth of the cost (issue 14)."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    generation: int  # which connection received it (acks are per connection)
    received_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    def __repr__(self) -> str:  # never print the password
        return f"BrokerAddress({self.host}:{self.port}, tls={self.tls})"

    @property
    def safe(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def broker_address(url: str, username: str | None = None,
                   password: str | None = None) -> BrokerAddress:
    parts = urllib.parse.urlsplit(url)
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=username if username is not None else parts.username,
        password=password if password is not None else parts.password,
    )


class MqttLink:
    # The SUBACK's refused filters, set by `_on_subscribe`; the ingest loop exits on it.
    subscription_refused: str | None = None

    def __init__(
        self,
        address: BrokerAddress,
        *,
        client_id: str,
        share_group: str,
        receive_maximum: int,
        session_expiry_s: int,
        ca_file: str | None = None,
        protocol: str = "5",
    ) -> None:
        self.address = address
        self.share_group = share_group
        self.inbox: Inbox[Inbound] = Inbox(INBOX_FACTOR * receive_maximum, INBOX_MAX_BYTES)
        self.connected = threading.Event()
        self._generation = 0
        self._receive_maximum = receive_maximum
        self._stopping = threading.Event()
        self._gone = threading.Event()  # disconnected after stop()
        self.results_dropped = 0
        self._session_expiry_s = session_expiry_s
        self.protocol = protocol
        client = _client(client_id, protocol)
        if address.username is not None:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set(ca_certs=ca_file)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(RESULTS_INFLIGHT)
        client.max_queued_messages_set(RESULTS_QUEUED)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        if isinstance(client, _Client):
            client.on_inbound = self._on_inbound
        self.subscribed = threading.Event()
        self._client = client

    def start(self) -> None:
        log.info("mqtt connecting broker=%s client_id=%s protocol=%s receive_maximum=%s",
                 self.address.safe, self._client._client_id.decode(), self.protocol,
                 self._receive_maximum if self.protocol == "5" else "broker's")
        if self.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.ReceiveMaximum = self._receive_maximum
            props.SessionExpiryInterval = self._session_expiry_s
            self._client.connect_async(self.address.host, self.address.port, KEEPALIVE_S,
                                       clean_start=False, properties=props)
        else:  # 3.1.1: the persistent session was asked for in the constructor
            self._client.connect_async(self.address.host, self.address.port, KEEPALIVE_S)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping.set()
        self._client.disconnect()
        # paho writes the DISCONNECT only between reads; a broker streaming a backlog at a
        # gateway that no longer takes anything (Mosquitto 2.0 keeps sending past the Receive
        # Maximum, see above) kept paho reading, and the process running, for minutes (seen
        # in the benchmark). After a grace period the socket is shut: un-acknowledged
        # messages are redelivered to the next session, as after any disconnect.
        if not self._gone.wait(STOP_GRACE_S):
            shutdown = getattr(self._client.socket(), "shutdown", None)
            if shutdown is not None:
                with contextlib.suppress(OSError):
                    shutdown(socket.SHUT_RDWR)
        self._client.loop_stop()

    # paho's network thread ------------------------------------------------------------------

    def _on_connect(self, client: paho.Client, _userdata: Any, flags: Any, reason: Any,
                    _props: Any) -> None:
        if reason.is_failure:
            log.error("mqtt connect refused broker=%s reason=%s", self.address.safe, reason)
            return
        self._generation += 1
        self.subscribed.clear()
        self.connected.set()
        log.info("mqtt connected broker=%s session_present=%s generation=%d",
                 self.address.safe, flags.session_present, self._generation)
        client.subscribe([(self.filter_for(ch), 1) for ch in INGEST_CHANNELS])

    def _on_subscribe(self, _client: paho.Client, _userdata: Any, _mid: int,
                      reasons: list[Any], _props: Any) -> None:
        # Until the SUBACK, a fresh session is in no subscription (shared subscriptions are
        # not even restored after a broker restart): messages published meanwhile go nowhere.
        # Operators and tests wait for this line before trusting that nothing is dropped.
        filters = [self.filter_for(ch) for ch in INGEST_CHANNELS]  # the order subscribed
        refused = [f"{f} ({r})" for f, r in zip(filters, reasons, strict=False) if r.is_failure]
        if refused:
            # A refused filter is the broker's ACL (a wrong role or user), which waiting does
            # not mend: the ingest loop stops the gateway on this (exit 1; systemd restarts
            # it), rather than idling connected while that channel's messages go nowhere.
            self.subscription_refused = "; ".join(refused)
            log.error("mqtt subscription refused broker=%s user=%s refused=%s: the broker's "
                      "ACL does not let this user subscribe (the shipped broker grants it to "
                      "vw-gateway, gateway.env of `vward broker setup`); the gateway stops",
                      self.address.safe, self.address.username, self.subscription_refused)
            return
        self.subscribed.set()
        log.info("mqtt subscribed broker=%s filters=%d", self.address.safe, len(reasons))

    def filter_for(self, channel: Channel) -> str:
        """`$share/{group}/…`, or the plain filter when the group is empty (one gateway).

        Mosquitto 2.0.11 does not restore *shared* subscriptions from its persistence file:
        after a broker restart, messages published before the gateway re-subscribes are
        dropped (tests/gateway/test_reliability.py shows it). A plain subscription is restored
        with the session, so a single gateway that must survive broker restarts without a
        gap sets VW_MQTT_SHARE_GROUP to the empty string.
        """
        if self.share_group:
            return shared_filter(self.share_group, channel)
        return channel_filter(channel)

    def _on_disconnect(self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any,
                       _props: Any) -> None:
        self.connected.clear()
        if self._stopping.is_set():
            self._gone.set()
        if self._stopping.is_set():  # our own DISCONNECT at shutdown: nothing is wrong
            log.info("mqtt disconnected broker=%s (stopping)", self.address.safe)
            return
        log.warning("mqtt disconnected broker=%s reason=%s (reconnecting; un-acked messages "
                    "will be redelivered)", self.address.safe, reason)

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        """paho's own path: a PUBLISH not wholly in the read-ahead buffer (`_Client`)."""
        self._on_inbound(msg.topic, bytes(msg.payload), msg.qos, msg.mid)

    def _on_inbound(self, topic: str, payload: bytes, qos: int, mid: int) -> None:
        # Waits for room; on a stop the message is not acknowledged: the broker redelivers it.
        self.inbox.put(Inbound(topic, payload, qos, mid, self._generation,
                               dt.datetime.now(dt.UTC)), len(payload), self._stopping, ROOM_POLL_S,
                       self._send_queued)

    def _send_queued(self) -> None:
        """Send what paho has queued (acks of committed batches, pings) while we wait for room.

        Waiting for room inside paho's read loop also stops its writes: paho reads up to one
        packet per message in flight before it writes again (1,000 with results at QoS 1), so
        a gateway behind a slow commit sent nothing for 45 s and the broker dropped it for
        keepalive ("exceeded timeout", seen in the alerting-on benchmark). `loop_write` is
        paho's own call for that; it runs no callback of ours (no on_publish is set, and must
        not be: paho would call it under the lock this callback already holds).
        """
        if self._client.on_publish is None:
            self._client.loop_write()

    # the ingest loop's thread ---------------------------------------------------------------

    def take(self, timeout: float) -> Inbound:
        """The next message (`queue.Empty` after `timeout`); frees its room in the inbox."""
        return self.inbox.take(timeout)

    def take_many(self, limit: int, timeout: float, *, fill: bool = False) -> list[Inbound]:
        """Up to `limit` messages, waiting up to `timeout` for the first (`queue.Empty`);
        `fill`: for `limit` of them, then whatever came (`gateway.inbox`)."""
        return self.inbox.take_many(limit, timeout, fill=fill)

    def ack(self, message: Inbound) -> bool:
        """Acknowledge `message`; False (and no ack) if it came on an earlier connection."""
        return self.ack_all([message]) == 1

    def ack_all(self, messages: list[Inbound]) -> int:
        """Acknowledge `messages` (a committed batch); returns how many could be.

        A message of an earlier connection is not acknowledged (the broker resends it; its
        copy is stored as a duplicate and acknowledged then). Frees their bytes at once.
        """
        self.inbox.done(sum(len(m.payload) for m in messages))
        generation, connected = self._generation, self.connected.is_set()
        client = self._client
        done = 0
        mids = []
        with self.burst():
            for m in messages:
                if m.qos == 0:
                    done += 1
                elif connected and m.generation == generation:
                    if m.qos == 1:
                        mids.append(m.mid)
                    else:  # never subscribed to at QoS 2; paho's own way all the same
                        client.ack(m.mid, m.qos)
                    done += 1
            if mids:
                if isinstance(client, _Client):
                    client.ack_many(mids)
                else:
                    for mid in mids:
                        client.ack(mid, 1)
        return done

    def burst(self) -> contextlib.AbstractContextManager[None]:
        """Acks and publishes from this thread reach the network thread with one wake-up."""
        client = self._client
        return client.burst() if isinstance(client, _Client) else contextlib.nullcontext()

    def publish(self, topic: str, payload: bytes, qos: int) -> bool:
        info = self._client.publish(topic, payload, qos=qos)
        if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
            self.results_dropped += 1
            return False
        return True


class ReadAhead:
    """A socket for paho that reads ahead: paho's many small reads come from one buffer.

    paho's own `_WebsocketWrapper` is the model (a socket-like object with `recv`, `send`,
    `close`, `fileno`, `setblocking`, `pending`). `pending` counts the buffered bytes, which
    paho's loop checks before it waits in `select` (it does so for TLS sockets' own buffers),
    so buffered packets are read at once, never left waiting for the next byte on the wire.
    A read that would block or fails raises exactly what the socket raised.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        pos, data = self._pos, self._data
        if pos < len(data):
            chunk = data[pos:pos + size]
            self._pos = pos + len(chunk)
            return chunk
        data = self._sock.recv(max(size, READ_AHEAD_BYTES))
        if len(data) <= size:  # also b"" (the broker closed the connection)
            return bytes(data)
        self._data, self._pos = data, size
        return bytes(data[:size])

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._data) - self._pos + int(inner)

    def buffered(self) -> int:
        """Bytes read ahead and not yet handed out."""
        return len(self._data) - self._pos

    def take_publish(self, mqtt5: bool) -> tuple[str, bytes, int, int] | None:
        """The QoS 0/1 PUBLISH at the head of the buffer, if it is wholly there (consumed),
        as (topic, payload, qos, mid); None (nothing consumed): paho reads it its own way."""
        found = parse_publish(self._data, self._pos, mqtt5)
        if found is None:
            return None
        self._pos = found[4]
        return found[0], found[1], found[2], found[3]

    def fill(self) -> bool:
        """Read what the socket holds now onto what is left in the buffer (never waits);
        False when nothing came. Only while less than `READ_AHEAD_BYTES` is buffered: a
        large packet is left to paho's own reads. Errors and end of stream are left for
        paho's next read to meet (a socket repeats them)."""
        left = len(self._data) - self._pos
        if left >= READ_AHEAD_BYTES:
            return False
        try:
            data = self._sock.recv(READ_AHEAD_BYTES)
        except OSError:  # BlockingIOError (nothing there) included
            return False
        if not data:
            return False
        self._data = self._data[self._pos:] + data if left else data
        self._pos = 0
        return True

    def send(self, buffer: bytes | bytearray) -> int:
        return int(self._sock.send(buffer))

    def close(self) -> None:
        self._data, self._pos = b"", 0
        self._sock.close()

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def __getattr__(self, name: str) -> Any:  # anything else paho may ask of a socket
        return getattr(self._sock, name)


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """MQTT's variable byte integer at `pos` (at most 4 bytes): (value, next pos)."""
    value, shift = 0, 0
    for i in range(pos, min(pos + 4, end)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    return None


def parse_publish(data: bytes, pos: int, mqtt5: bool
                  ) -> tuple[str, bytes, int, int, int] | None:
    """A QoS 0 or 1 PUBLISH packet wholly in `data[pos:]`: (topic, payload, qos, mid, end).

    None for anything else — another packet type, QoS 2, a packet not wholly there, an empty
    topic (a topic alias, which this client never allows) or one not UTF-8, any malformation:
    paho's own reader then handles those bytes exactly as it always did, and words its errors.
    MQTT 5 properties are skipped: the gateway reads none of them (it never did).
    """
    size = len(data)
    if pos >= size:
        return None
    header = data[pos]
    qos = (header >> 1) & 3
    if header & 0xF0 != 0x30 or qos > 1:
        return None
    length = _varint(data, pos + 1, size)
    if length is None:
        return None
    start = length[1]
    end = start + length[0]
    if end > size or start + 2 > end:
        return None
    topic_end = start + 2 + ((data[start] << 8) | data[start + 1])
    if topic_end == start + 2 or topic_end > end:
        return None
    body = topic_end
    mid = 0
    if qos:
        if body + 2 > end:
            return None
        mid = (data[body] << 8) | data[body + 1]
        body += 2
    if mqtt5:
        props = _varint(data, body, end)
        if props is None:
            return None
        body = props[1] + props[0]
        if body > end:
            return None
    try:
        topic = data[start + 2:topic_end].decode()
    except UnicodeDecodeError:
        return None
    return topic, data[body:end], qos, mid, end


_PUBACK = struct.Struct("!BBH")


class _Client(paho.Client):
    """paho's client on a read-ahead socket (`ReadAhead`), and bursts without wake-ups.

    Every packet another thread queues (an ack, a result) makes paho write a byte to its
    socket pair to wake its network thread out of `select`: a system call per packet, each a
    release of the GIL the network thread then competes for — two per message (its PUBACK
    and its result). Inside `burst()` the queuing thread's wake-ups are held back and one is
    sent at the end: the network thread then writes the whole burst at once. paho reads the
    pair through the attribute `_sockpairW` alone (`_packet_queue` sends on it when it is not
    None); the property below answers None to the bursting thread only, so paho's own thread
    and its reconnects see and replace the real socket as before.
    """

    _wake_socket: Any = None
    _burst_thread: int | None = None
    # (topic, payload, qos, mid) of each PUBLISH read from the read-ahead buffer (MqttLink).
    on_inbound: Any = None

    @property
    def _sockpairW(self) -> Any:  # noqa: N802 - paho's name
        if self._burst_thread is not None and self._burst_thread == threading.get_ident():
            return None
        return self._wake_socket

    @_sockpairW.setter
    def _sockpairW(self, value: Any) -> None:  # noqa: N802 - paho's name
        self._wake_socket = value

    @contextlib.contextmanager
    def burst(self) -> Iterator[None]:
        """Queue packets from this thread with one wake-up of the network thread, at the end."""
        self._burst_thread = threading.get_ident()
        try:
            yield
        finally:
            self._burst_thread = None
            wake = self._wake_socket
            if wake is not None:
                with contextlib.suppress(OSError):  # full (it is awake anyway) or closed
                    wake.send(b"0")

    def _create_socket(self) -> Any:
        return ReadAhead(super()._create_socket())

    def _packet_read(self) -> MQTTErrorCode:
        """A QoS 0/1 PUBLISH wholly in the read-ahead buffer goes straight to `on_inbound`.

        paho's reader costs a dozen calls per packet (a recv for the command byte, one per
        length byte, the body, a dict reset), then `_handle_publish` builds an MQTTMessage, a
        Properties object it parses field by field, a debug log line and a topic match: 28 %
        of the gateway's samples under the ingest benchmark were paho's `_packet_handle`
        (py-spy, 2026-12-02). Only the common packet is taken here (`parse_publish`); a
        packet anywhere in paho's own reading of it, and every other packet, is paho's.
        Manual acks (the gateway's only mode): a QoS 1 message is acknowledged by `ack_many`.
        """
        sock = self._sock
        inbound = self.on_inbound
        if (inbound is not None and self._in_packet["command"] == 0
                and type(sock) is ReadAhead and self._manual_ack):
            mqtt5 = self._protocol == paho.MQTTv5
            found = sock.take_publish(mqtt5)
            if found is None and sock.fill():  # the buffer ran dry, or ends mid-packet
                found = sock.take_publish(mqtt5)
            if found is not None:
                with self._msgtime_mutex:
                    self._last_bytes_received = paho.time_func()
                inbound(*found)
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._packet_read()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """paho's `loop_read`, again while the read-ahead buffer holds bytes (at most
        `READ_BURST_PACKETS` packets): one pass of paho's loop per buffer, not per packet."""
        rc = super().loop_read(max_packets)
        for _ in range(READ_BURST_PACKETS):
            sock = self._sock
            if rc or type(sock) is not ReadAhead or not sock.buffered():
                break
            rc = super().loop_read(max_packets)
        return rc

    def ack_many(self, mids: list[int]) -> None:
        """PUBACK every QoS 1 message of `mids` in one queued write (one send, one wake-up).

        paho's `ack` queues one 4-byte packet per message and its writer sends each with a
        system call of its own (2.8 % of samples, py-spy 2026-12-02). The bytes are the same
        paho would send (PUBACK, remaining length 2, the id: no reason code, which means
        success in MQTT 5), in the same order, one after another on the stream.
        """
        packet = b"".join([_PUBACK.pack(paho.PUBACK, 2, mid) for mid in mids])
        self._packet_queue(paho.PUBACK, packet, 0, 1)


def _client(client_id: str, protocol: str) -> paho.Client:
    """A paho client with manual acks and a persistent session in either protocol."""
    if protocol not in PROTOCOLS:
        msg = f"MQTT protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}"
        raise ValueError(msg)
    if protocol == "5":  # the session is kept by clean_start=False + expiry at CONNECT
        return _Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                       protocol=PROTOCOLS[protocol], manual_ack=True)
    return _Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                   protocol=PROTOCOLS[protocol], clean_session=False, manual_ack=True)
