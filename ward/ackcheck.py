"""What a device's PUBACK promised, and whether the database kept it.

For the broker-kill test and benchmark: `TrackedStream` publishes readings at QoS 1 from
groups of devices, each group over its own connection to its own broker node, and records
exactly which messages were acknowledged (PUBACK). When a node dies the group fails over to
the next node and re-sends what was not yet acknowledged (a device does the same). `ledger`
then compares the acknowledged messages' readings with what the database holds: acknowledged
but not stored is a broken promise; stored twice would be a duplicate.

Each message carries `per_message` SpO2 readings one second apart, so every reading has one
natural key (device, measured_at) and the ledger can be exact.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.contract import Measurement, encode_readings, readings_topic

# Messages awaiting PUBACK per connection: a device fleet keeps many in flight at once.
WINDOW = 200
RECONNECT_PAUSE_S = 0.5
CONNACK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Message:
    key: str
    device: str
    topic: str
    payload: bytes
    measured: tuple[dt.datetime, ...]


def messages(devices: Sequence[str], count: int, per_message: int,
             start: dt.datetime) -> list[Message]:
    out = []
    for k in range(count):
        device = devices[k % len(devices)]
        slot = k // len(devices)
        first = start + dt.timedelta(seconds=slot * per_message)
        times = tuple(first + dt.timedelta(seconds=j) for j in range(per_message))
        readings = [Measurement("spo2", 90 + (j % 10), "%", t) for j, t in enumerate(times)]
        key = f"{device}-{slot}"
        out.append(Message(key, device, readings_topic(device), encode_readings(key, first,
                                                                                 readings), times))
    return out


@dataclass
class Group:
    """One connection's share of the stream, with failover over `urls`."""

    urls: list[str]
    queue: list[Message]
    rate: float
    acked: dict[str, float] = field(default_factory=dict)  # key → monotonic time of PUBACK
    failovers: int = 0
    error: BaseException | None = None


class TrackedStream:
    """Publish `count` messages from `devices` over `len(urls)` connections (group i starts on
    urls[i]); `acked` says which keys got their PUBACK and when."""

    def __init__(self, urls: Sequence[str], devices: Sequence[str], *, count: int,
                 per_message: int = 5, rate: float = 500.0) -> None:
        start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=6)
        self.all = messages(devices, count, per_message, start)
        n = len(urls)
        self.groups = [Group([*urls[i:], *urls[:i]],
                             [m for m in self.all if devices.index(m.device) % n == i],
                             rate / n) for i in range(n)]
        self._threads = [threading.Thread(target=self._run, args=(g,), daemon=True,
                                          name=f"tracked-{i}")
                         for i, g in enumerate(self.groups)]
        self._lock = threading.Lock()

    @property
    def acked(self) -> dict[str, float]:
        with self._lock:
            return {k: t for g in self.groups for k, t in g.acked.items()}

    def start(self) -> TrackedStream:
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)
        for group in self.groups:
            if group.error is not None:
                raise group.error

    def _connect(self, url: str) -> paho.Client:
        host, port = url.removeprefix("mqtt://").split(":")
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:8]}",
                             protocol=MQTTProtocolVersion.MQTTv311)
        client.max_inflight_messages_set(WINDOW)
        client.max_queued_messages_set(0)
        client.connect(host, int(port), keepalive=10)
        client.loop_start()
        return client

    def _sweep(self, pending: list[tuple[paho.MQTTMessageInfo, Message]],
               group: Group) -> list[tuple[paho.MQTTMessageInfo, Message]]:
        """Move the messages whose PUBACK arrived from `pending` to `group.acked`.

        Polled from the publishing thread (not paho's on_publish callback, which runs under
        paho's own lock and would deadlock against ours)."""
        now = time.monotonic()
        still = []
        with self._lock:
            for info, message in pending:
                # A publish refused locally (not connected) never gets a PUBACK: it stays
                # pending and is sent again on the next connection.
                if info.rc == paho.MQTT_ERR_SUCCESS and info.is_published():
                    group.acked.setdefault(message.key, now)
                else:
                    still.append((info, message))
        return still

    def _open(self, url: str) -> paho.Client | None:
        """A connected client (CONNACK received), or None when the node does not answer."""
        try:
            client = self._connect(url)
        except OSError:
            return None
        connected_by = time.monotonic() + CONNACK_TIMEOUT_S
        while not client.is_connected():
            if time.monotonic() > connected_by:
                client.loop_stop()
                return None
            time.sleep(0.01)
        return client

    def _run(self, group: Group) -> None:
        try:
            self._publish(group)
        except BaseException as exc:  # surfaced by join()
            group.error = exc

    def _publish(self, group: Group) -> None:
        todo = list(group.queue)
        interval = 1 / group.rate if group.rate else 0.0
        began = time.monotonic()
        sent = 0
        node = 0
        deadline = time.monotonic() + 300
        while todo and time.monotonic() < deadline:
            pending: list[tuple[paho.MQTTMessageInfo, Message]] = []
            client = self._open(group.urls[node % len(group.urls)])
            if client is None:
                node += 1
                group.failovers += 1
                time.sleep(RECONNECT_PAUSE_S)
                continue
            try:
                while todo and client.is_connected():
                    if len(pending) >= WINDOW // 2:
                        pending = self._sweep(pending, group)
                        if len(pending) >= WINDOW:
                            time.sleep(0.002)
                            continue
                    message = todo.pop(0)
                    pending.append((client.publish(message.topic, message.payload, qos=1),
                                    message))
                    sent += 1
                    if interval:
                        lag = began + sent * interval - time.monotonic()
                        if lag > 0:
                            time.sleep(lag)
                wait_until = time.monotonic() + 30
                while pending and client.is_connected() and time.monotonic() < wait_until:
                    pending = self._sweep(pending, group)
                    time.sleep(0.01)
            finally:
                pending = self._sweep(pending, group)
                client.loop_stop()
                client.disconnect()
            if pending or todo:  # the node went away: resend what has no PUBACK
                todo = [m for _, m in pending] + todo
                node += 1
                group.failovers += 1
                time.sleep(RECONNECT_PAUSE_S)


@dataclass(frozen=True)
class Ledger:
    acked_messages: int
    acked_readings: int
    stored: int  # readings of this stream in the database
    distinct: int
    lost: int  # acknowledged readings that are not stored

    @property
    def duplicates(self) -> int:
        return self.stored - self.distinct


def ledger(db_url: str, stream: TrackedStream, device_prefix: str) -> Ledger:
    acked = stream.acked
    promised = {(m.device, t) for m in stream.all if m.key in acked for t in m.measured}
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT device_id, measured_at FROM readings WHERE device_id LIKE %s",
            (device_prefix + "%",)).fetchall()
    stored = {(r[0], r[1]) for r in rows}
    return Ledger(acked_messages=len(acked), acked_readings=len(promised), stored=len(rows),
                  distinct=len(stored), lost=len(promised - stored))


def gap_s(acked: dict[str, float], after: float) -> float:
    """The longest pause between PUBACKs after `after` (monotonic): the devices' failover."""
    times = sorted(t for t in acked.values() if t >= after - 1)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return max(gaps, default=0.0)


def stored_count(db_url: str, device_prefix: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM readings WHERE device_id LIKE %s",
                           (device_prefix + "%",)).fetchone()
    return int(row[0]) if row else 0


def wait_stored(db_url: str, device_prefix: str, target: int, timeout: float) -> int:
    """Wait until `target` readings are stored or nothing new arrived for 5 s; the count."""
    deadline = time.monotonic() + timeout
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = stored_count(db_url, device_prefix)
        if now >= target:
            return now
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since > 5:
            return now
        time.sleep(0.25)
    return stored_count(db_url, device_prefix)


def iter_devices(prefix: str, n: int) -> Iterator[str]:
    for i in range(n):
        yield f"{prefix}{i:03d}"
