"""Publishing a simulated ward to a real broker: paced live runs and fanned-out load runs.

* `Publisher` — paho-mqtt at QoS 1 with a bounded number of messages awaiting their PUBACK
  (the caller blocks beyond it, so memory stays flat). With per-device credentials each device
  publishes over its own connection as itself, as the broker's ACL requires; without, one
  anonymous connection carries the whole ward (the demo's embedded broker is anonymous).
  It speaks MQTT 3.1.1 or 5 (`protocol`, from `VW_MQTT_PROTOCOL`); a device needs nothing
  of MQTT 5, so either gives the same PUBACK semantics.
* `publish_stream` — feeds an engine's stream to a publisher, paced by a `LiveClock` (or as fast as the
  broker takes it), printing progress once a second on long runs, until the stream ends or
  `stop` is set (SIGINT/SIGTERM).
* Commands: with `listen=True` the publisher also subscribes to the home hubs' commands
  topics (`vw/v1/devices/+/commands` on the shared connection, a device's own topic on its
  own connection) and queues what arrives; `publish_stream(..., inbox=commands_to(engine,
  publisher))` hands the queue to `Engine.command` between messages, so a live ward's home
  hubs answer the platform's full-set requests.
* `run_load` — the load mode: n processes each simulate a share of the ward (`partition`) and
  publish at rate/n messages/s with the lean `simulators.mqttwire` client, PUBACKs counted
  (always MQTT 3.1.1: that client exists to be small).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.contract import Channel, channel_filter, commands_topic
from simulators.clock import LiveClock
from simulators.devices import Outbound
from simulators.engine import Engine
from simulators.mqttwire import WirePublisher
from simulators.scenario import Scenario

# Messages awaiting their PUBACK per connection: enough to keep the link busy at thousands of
# messages/s over loopback, small enough that a stalled broker stops the publisher quickly.
MAX_IN_FLIGHT = 500
PROGRESS_EVERY_S = 1.0
# `VW_MQTT_PROTOCOL` values and paho's names for them.
PROTOCOLS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}
_CONNECT_TIMEOUT_S = 10.0


class PublishError(RuntimeError):
    """The broker could not be reached or refused a connection."""


def _split(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp"):
        msg = f"unsupported broker URL {url!r} (use mqtt://host:port)"
        raise PublishError(msg)
    return parts.hostname or "127.0.0.1", parts.port or 1883


class _Connection:
    """One paho client, its PUBACK counter and its in-flight bound."""

    def __init__(self, url: str, client_id: str, username: str | None, password: str | None,
                 max_in_flight: int, *, protocol: str = "3.1.1",
                 subscribe: str | None = None,
                 inbox: deque[tuple[str, bytes]] | None = None) -> None:
        host, port = _split(url)
        if protocol not in PROTOCOLS:
            msg = f"MQTT protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}"
            raise PublishError(msg)
        self.slots = threading.BoundedSemaphore(max_in_flight)
        self.acked = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.refused: str | None = None
        self.subscription = subscribe
        self.inbox = inbox
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=PROTOCOLS[protocol])
        client.max_inflight_messages_set(max_in_flight)
        if username is not None:
            client.username_pw_set(username, password)
        client.on_publish = self._on_publish
        client.on_connect = self._on_connect
        client.on_subscribe = lambda *_a: self.subscribed.set()
        client.on_message = self._on_message
        self.client = client
        try:
            client.connect(host, port, keepalive=60)
        except OSError as exc:
            msg = f"cannot reach the broker at {url}: {exc}"
            raise PublishError(msg) from exc
        client.loop_start()
        if not self.connected.wait(_CONNECT_TIMEOUT_S) or self.refused:
            client.loop_stop()
            msg = f"broker at {url} refused {client_id!r}: {self.refused or 'no CONNACK'}"
            raise PublishError(msg)

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        elif self.subscription is not None:  # again after every reconnect
            client.subscribe(self.subscription, qos=1)
        self.connected.set()

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        if self.inbox is not None:
            self.inbox.append((message.topic, bytes(message.payload)))  # deque: thread-safe

    def _on_publish(self, _c: Any, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        self.acked += 1
        self.slots.release()

    def publish(self, message: Outbound) -> None:
        self.slots.acquire()
        self.client.publish(message.topic, message.payload, qos=message.qos,
                            retain=message.retain)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def device_of(topic: str) -> str:
    """`vw/v1/devices/{id}/…` → id."""
    return topic.split("/")[3]


class Publisher:
    """QoS 1 publishing with PUBACKs counted; one connection, or one per device."""

    def __init__(self, url: str, *, client_id: str = "vw-simulator",
                 username: str | None = None, password: str | None = None,
                 credentials: Mapping[str, str] | None = None,
                 max_in_flight: int = MAX_IN_FLIGHT, listen: bool = False,
                 protocol: str = "3.1.1") -> None:
        self.url = url
        self.protocol = protocol
        self.client_id = client_id
        self.credentials = credentials
        self.max_in_flight = max_in_flight
        self.listen = listen
        self.commands: deque[tuple[str, bytes]] = deque()
        self.sent = 0
        self._shared: _Connection | None = None
        self._per_device: dict[str, _Connection] = {}
        if credentials is None:
            parts = urlsplit(url)
            self._shared = _Connection(
                url, client_id, username or parts.username, password or parts.password,
                max_in_flight, protocol=protocol,
                subscribe=channel_filter(Channel.COMMANDS) if listen else None,
                inbox=self.commands)

    def _connection(self, topic: str) -> _Connection:
        if self._shared is not None:
            return self._shared
        assert self.credentials is not None  # noqa: S101 - set whenever _shared is None
        device_id = device_of(topic)
        conn = self._per_device.get(device_id)
        if conn is None:
            secret = self.credentials.get(device_id)
            if secret is None:
                msg = f"no credentials for device {device_id!r}"
                raise PublishError(msg)
            # A device's username is its id (the broker's ACL pattern keys on it).
            conn = _Connection(self.url, device_id, device_id, secret, self.max_in_flight,
                               protocol=self.protocol,
                               subscribe=commands_topic(device_id) if self.listen else None,
                               inbox=self.commands)
            self._per_device[device_id] = conn
        return conn

    def listening(self, timeout: float = _CONNECT_TIMEOUT_S) -> bool:
        """Wait until the shared connection's commands subscription is acknowledged."""
        return self._shared is not None and self._shared.subscribed.wait(timeout)

    def take_commands(self) -> list[tuple[str, bytes]]:
        """Every command received since the last call, oldest first."""
        taken: list[tuple[str, bytes]] = []
        while self.commands:
            taken.append(self.commands.popleft())
        return taken

    @property
    def acked(self) -> int:
        connections = [self._shared] if self._shared else list(self._per_device.values())
        return sum(c.acked for c in connections if c is not None)

    def publish(self, message: Outbound) -> None:
        self._connection(message.topic).publish(message)
        self.sent += 1

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every message sent has its PUBACK; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.acked < self.sent:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        self.flush()
        for conn in [self._shared, *self._per_device.values()]:
            if conn is not None:
                conn.close()


@dataclass
class Progress:
    """Prints simulated time, messages sent and the rate, once a second, on stderr."""

    stream: IO[str] | None = None
    every: float = PROGRESS_EVERY_S
    _last: float = 0.0
    _last_sent: int = 0
    _began: float = 0.0

    def start(self) -> None:
        self._began = self._last = time.monotonic()

    def tick(self, sim: float, sent: int, acked: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.stream is None or (now - self._last < self.every and not force):
            return
        rate = (sent - self._last_sent) / max(now - self._last, 1e-9)
        when = dt.datetime.fromtimestamp(sim, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        self.stream.write(f"simulated {when}  sent {sent:,}  acked {acked:,}  "
                          f"{rate:,.0f} msg/s  elapsed {now - self._began:,.0f} s\n")
        self.stream.flush()
        self._last, self._last_sent = now, sent


def publish_stream(
    messages: Iterable[Outbound],
    publish: Callable[[Outbound], None],
    *,
    clock: LiveClock | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    acked: Callable[[], int] = lambda: 0,
    wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    inbox: Callable[[float], object] | None = None,
) -> int:
    """Publish `messages` in order (paced by `clock` when given) until done or `stop`;
    `inbox(simulated now)` runs before each message (commands reaching the home hubs)."""
    stop = stop or threading.Event()
    sent = 0
    if progress is not None:
        progress.start()
    for message in messages:
        if clock is not None:
            due = clock.wall_at(dt.datetime.fromtimestamp(message.at, dt.UTC))
            while not stop.is_set():
                wait = (due - wall()).total_seconds()
                if wait <= 0:
                    break
                if progress is not None:
                    progress.tick(clock.sim_at(wall()).timestamp(), sent, acked())
                stop.wait(min(wait, PROGRESS_EVERY_S))
        if stop.is_set():
            break
        if inbox is not None:
            inbox(clock.sim_at(wall()).timestamp() if clock is not None else message.at)
        publish(message)
        sent += 1
        if progress is not None and sent % 256 == 0:
            progress.tick(message.at, sent, acked())
    return sent


def commands_to(engine: Engine, publisher: Publisher) -> Callable[[float], None]:
    """An `inbox` for `publish_stream`: queued commands go to the engine's home hubs."""

    def deliver(sim_now: float) -> None:
        for topic, payload in publisher.take_commands():
            try:
                engine.command(topic, payload, dt.datetime.fromtimestamp(sim_now, dt.UTC))
            except ValueError as exc:  # a malformed command: a real hub would ignore it too
                sys.stderr.write(f"simulate: ignored command on {topic}: {exc}\n")

    return deliver


# ------------------------------------------------------------------------------------------
# Load mode


@dataclass(frozen=True, slots=True)
class LoadResult:
    sent: int
    acked: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.acked / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class _Share:
    """What one load process is told: its part of the ward and its rate."""

    scenario: Scenario
    seed: int
    start: dt.datetime
    url: str
    rate: float  # messages/s for this process; 0 = flat out
    seconds: float
    part: int
    parts: int


def _load_worker(share: _Share, counters: Any, ready: Any, go: Any, halt: Any) -> None:
    sent, acked, elapsed = counters
    engine = Engine(share.scenario, seed=share.seed, start=share.start, duration=None,
                    partition=(share.part, share.parts))
    publisher = WirePublisher(share.url, f"vw-load-{share.part}-{share.seed}")
    stream = iter(engine.messages())
    first = next(stream)  # the ward is built and the first message made before the clock runs
    with ready.get_lock():
        ready.value += 1
    go.wait()
    began = time.monotonic()
    deadline = began + share.seconds
    count = 0
    message = first
    while not halt.is_set():
        if message.at > time.time():  # never date a reading in the future: wait for it
            time.sleep(message.at - time.time())
        publisher.publish(message.topic, message.payload, retain=message.retain)
        count += 1
        if count % 512 == 0:
            sent.value, acked.value = publisher.sent, publisher.acked
            now = time.monotonic()
            if now >= deadline:
                break
            if share.rate > 0:  # stay at `rate` messages per second
                ahead = count / share.rate - (now - began)
                if ahead > 0:
                    time.sleep(ahead)
        message = next(stream)
    publisher.flush()
    elapsed.value = time.monotonic() - began
    sent.value, acked.value = publisher.sent, publisher.acked
    publisher.close()


def run_load(
    scenario: Scenario,
    url: str,
    *,
    rate: float,
    processes: int,
    seconds: float,
    seed: int | None = None,
    wall_now: dt.datetime | None = None,
    progress: IO[str] | None = sys.stderr,
    stop: threading.Event | None = None,
) -> LoadResult:
    """Publish `scenario` at `rate` messages/s (0: flat out) over `processes` for `seconds`.

    Simulated time starts `scenario.backfill` before now and runs as fast as the rate asks, never
    past the wall clock; process k simulates the patients whose index is k mod `processes`.
    The figure is PUBACKs received over the slowest process's publishing time.
    """
    seed = scenario.seed if seed is None else seed
    start = (wall_now or dt.datetime.now(dt.UTC)) - scenario.backfill
    ctx = multiprocessing.get_context("spawn")
    go, halt, ready = ctx.Event(), ctx.Event(), ctx.Value("i", 0)
    counters = [(ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False),
                 ctx.Value("d", 0.0, lock=False)) for _ in range(processes)]
    workers = [
        ctx.Process(target=_load_worker, name=f"vw-load-{k}", args=(
            _Share(scenario, seed, start, url, rate / processes, seconds, k, processes),
            c, ready, go, halt))
        for k, c in enumerate(counters)
    ]
    for w in workers:
        w.start()
    try:
        # Start the clock once every process has built its share of the ward (or died).
        while ready.value < processes and all(w.is_alive() for w in workers):
            if stop is not None and stop.is_set():
                halt.set()
                break
            time.sleep(0.05)
        go.set()
        last, last_sent = time.monotonic(), 0
        while any(w.is_alive() for w in workers):
            time.sleep(0.1)
            if stop is not None and stop.is_set():
                halt.set()
            now = time.monotonic()
            if progress is not None and now - last >= PROGRESS_EVERY_S:
                total = sum(int(c[0].value) for c in counters)
                acks = sum(int(c[1].value) for c in counters)
                progress.write(f"load: sent {total:,}  acked {acks:,}  "
                               f"{(total - last_sent) / (now - last):,.0f} msg/s\n")
                progress.flush()
                last, last_sent = now, total
    finally:
        halt.set()
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():  # pragma: no cover - a wedged worker
                w.terminate()
                w.join()
    failed = [w.name for w in workers if w.exitcode != 0]
    if failed:
        msg = f"load process(es) failed: {', '.join(failed)}"
        raise PublishError(msg)
    return LoadResult(sum(int(c[0].value) for c in counters),
                      sum(int(c[1].value) for c in counters),
                      max(float(c[2].value) for c in counters))
