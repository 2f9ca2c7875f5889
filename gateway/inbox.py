"""The gateway's inbox: bounded by message count *and* by bytes held until acknowledged.

paho's network thread puts every message here; the ingest loop takes them. A count alone
(2 × Receive Maximum) does not bound memory: 4,000 messages of 1 MB (the broker's packet
limit) are 4 GB, and a batch of rejections holds its payloads until the commit. So the inbox
also counts the bytes of every message from the moment it is received until it is
*acknowledged* (`done`), and the network thread waits while more than `max_bytes` are held:
the socket fills and the broker keeps the rest queued for the session (nothing is lost).
A single message larger than `max_bytes` is still let in when nothing else is held.

Cost per message matters here (issue 14): this is on both threads' path for every message.
One plain lock guards a deque and two counters; a side waits on its condition only when it
must (full, or empty), and the other side signals only when someone waits, so the common case
is one uncontended lock round per put and none per message taken (`take_many` empties the
deque under one lock). `done` is called once per batch with the batch's bytes.

Stopping: once `stopping` is set, `put` refuses at once (the message is not acknowledged, so
the broker redelivers it), so paho's thread drains what its socket still holds in moments
and the gateway stops; it used to wait `poll_s` per buffered message (a stop under backlog
took many minutes).
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._held = 0
        lock = threading.Lock()
        self._lock = lock
        self._room = threading.Condition(lock)  # the network thread waits here when full
        self._ready = threading.Condition(lock)  # the ingest thread waits here when empty
        self._putter_waits = False
        self._taker_waits = False
        self._wanted = 1  # how many queued items wake the waiting taker

    @property
    def held_bytes(self) -> int:
        return self._held

    def _full(self, size: int) -> bool:
        return len(self._items) >= self._max_messages or (
            self._held > 0 and self._held + size > self._max_bytes)

    def put(self, item: T, size: int, stopping: threading.Event, poll_s: float,
            while_waiting: Callable[[], object] | None = None) -> bool:
        """Wait for room (count and bytes), then enqueue; False if `stopping` was set.

        `while_waiting` is called (without the lock) every `poll_s` while there is no room:
        the MQTT link sends what paho has queued meanwhile (acks, pings).
        """
        if stopping.is_set():
            return False
        while True:
            with self._lock:
                if self._full(size):
                    self._putter_waits = True
                    self._room.wait(poll_s)
                    self._putter_waits = False
                if not self._full(size):
                    self._items.append(item)
                    self._held += size
                    if self._taker_waits and len(self._items) >= self._wanted:
                        self._ready.notify()
                    return True
            if stopping.is_set():
                return False
            if while_waiting is not None:
                while_waiting()

    def _wait_for_items(self, timeout: float, wanted: int = 1) -> None:
        """With the lock held: wait until `wanted` items are queued, or until `timeout` if
        at least one is (`queue.Empty` after `timeout` if none is)."""
        deadline = time.monotonic() + timeout
        while len(self._items) < wanted:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if self._items:
                    return
                raise queue.Empty
            self._taker_waits, self._wanted = True, wanted
            self._ready.wait(remaining)
            self._taker_waits, self._wanted = False, 1

    def take(self, timeout: float) -> T:
        """The next item (`queue.Empty` after `timeout`); frees its place in the count."""
        with self._lock:
            self._wait_for_items(timeout)
            item = self._items.popleft()
            if self._putter_waits:
                self._room.notify()
        return item

    def take_many(self, limit: int, timeout: float, *, fill: bool = False) -> list[T]:
        """Up to `limit` items: whatever is queued, waiting up to `timeout` for the first.

        `fill`: wait up to `timeout` for `limit` items (the rest of a batch), and take what
        is there then. The putter wakes the taker once, when there are enough, instead of
        once per item: at 2,000 msgs/s that was a thread switch per message (issue 14).
        """
        with self._lock:
            self._wait_for_items(timeout, limit if fill else 1)
            items = self._items
            if len(items) <= limit:
                taken = list(items)
                items.clear()
            else:
                taken = [items.popleft() for _ in range(limit)]
            if self._putter_waits:
                self._room.notify()
        return taken

    def done(self, size: int) -> None:
        """Taken items of `size` bytes in all were acknowledged (or given up): free their bytes."""
        with self._lock:
            self._held = max(0, self._held - size)
            if self._putter_waits:
                self._room.notify()
