"""The inbox between paho's thread and the ingest loop: bounds, stop, and what waits do."""

from __future__ import annotations

import queue
import threading

import pytest

from gateway.inbox import Inbox


def test_a_stopping_inbox_refuses_at_once() -> None:
    # A stop under backlog used to wait poll_s for every message still in the socket; with
    # an hour's poll this test would hang (and time out) if put still waited.
    stop = threading.Event()
    stop.set()
    inbox: Inbox[str] = Inbox(max_messages=1, max_bytes=100)
    assert not inbox.put("a", 1, stop, 3600)


def test_a_full_inbox_keeps_calling_while_waiting_until_stopped() -> None:
    stop = threading.Event()
    inbox: Inbox[str] = Inbox(max_messages=1, max_bytes=100)
    assert inbox.put("a", 1, stop, 0.01)
    calls: list[int] = []

    def flush() -> None:  # what the MQTT link does: send paho's queued acks and pings
        calls.append(1)
        if len(calls) == 3:
            stop.set()

    assert not inbox.put("b", 1, stop, 0.01, flush)
    assert len(calls) == 3
    assert inbox.take_many(10, 0) == ["a"]


def test_take_many_takes_what_is_queued_up_to_the_limit() -> None:
    stop = threading.Event()
    inbox: Inbox[int] = Inbox(max_messages=10, max_bytes=1000)
    for i in range(5):
        assert inbox.put(i, 10, stop, 0.01)
    assert inbox.take_many(3, 0) == [0, 1, 2]
    assert inbox.take_many(10, 0) == [3, 4]
    assert inbox.held_bytes == 50  # bytes are held until acknowledged
    inbox.done(50)
    assert inbox.held_bytes == 0
    with pytest.raises(queue.Empty):
        inbox.take_many(10, 0.01)


class _CountingCondition:
    """Wraps the inbox's `_ready` condition and counts the taker's wake-ups."""

    def __init__(self, inner: threading.Condition) -> None:
        self.inner = inner
        self.notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        self.inner.notify(n)

    def wait(self, timeout: float | None = None) -> bool:
        return self.inner.wait(timeout)


def test_filling_a_batch_wakes_the_taker_once_not_per_item() -> None:
    """Fails on the old inbox: every put woke the waiting taker (a thread switch each)."""
    stop = threading.Event()
    inbox: Inbox[int] = Inbox(max_messages=100, max_bytes=10_000)
    counting = _CountingCondition(inbox._ready)
    inbox._ready = counting  # type: ignore[assignment]
    got: list[list[int]] = []
    taker = threading.Thread(target=lambda: got.append(inbox.take_many(10, 30, fill=True)))
    taker.start()
    while not inbox._taker_waits:  # the taker is waiting for its ten
        threading.Event().wait(0.001)
    for i in range(10):
        assert inbox.put(i, 1, stop, 0.01)
    taker.join(30)
    assert got == [list(range(10))]
    assert counting.notified == 1


def test_filling_takes_what_came_by_the_deadline() -> None:
    stop = threading.Event()
    inbox: Inbox[int] = Inbox(max_messages=100, max_bytes=10_000)
    for i in range(3):
        assert inbox.put(i, 1, stop, 0.01)
    assert inbox.take_many(10, 0.01, fill=True) == [0, 1, 2]
    with pytest.raises(queue.Empty):
        inbox.take_many(10, 0.01, fill=True)
