"""The gateway's inbox: bounded by message count *and* by bytes held until acknowledged.

paho's network thread puts every message here; the ingest loop takes them. A count alone
(2 × Receive Maximum) does not bound memory: 4,000 messages of 1 MB (the broker's packet
limit) are 4 GB, and a batch of rejections holds its payloads until the commit. So the inbox
also counts the bytes of every message from the moment it is received until it is
*acknowledged* (`done`), and the network thread waits while more than `max_bytes` are held:
the socket fills and the broker keeps the rest queued for the session (nothing is lost).
A single message larger than `max_bytes` is still let in when nothing else is held.
"""

from __future__ import annotations

import queue
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self._queue: queue.SimpleQueue[T] = queue.SimpleQueue()
        self._room = threading.Semaphore(max_messages)
        self._max_bytes = max_bytes
        self._held = 0
        self._bytes_freed = threading.Condition()

    @property
    def held_bytes(self) -> int:
        return self._held

    def put(self, item: T, size: int, stopping: threading.Event, poll_s: float) -> bool:
        """Wait for room (count and bytes), then enqueue; False if `stopping` was set."""
        while not self._room.acquire(timeout=poll_s):
            if stopping.is_set():
                return False
        with self._bytes_freed:
            while self._held and self._held + size > self._max_bytes:
                self._bytes_freed.wait(poll_s)
                if stopping.is_set():
                    self._room.release()
                    return False
            self._held += size
        self._queue.put(item)
        return True

    def take(self, timeout: float) -> T:
        """The next item (`queue.Empty` after `timeout`); frees its place in the count."""
        item = self._queue.get(timeout=timeout)
        self._room.release()
        return item

    def done(self, size: int) -> None:
        """A taken item of `size` bytes was acknowledged (or given up): free its bytes."""
        with self._bytes_freed:
            self._held = max(0, self._held - size)
            self._bytes_freed.notify_all()
