"""The alerting worker: coalesces patients, retries failures, drains at shutdown."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import psycopg

from gateway.alerting_worker import AlertingWorker
from gateway.metrics import GatewayMetrics

NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


class RecordingHook:
    """Stands in for `alerting.runner.evaluate_after_commit`; the first `fail` calls raise."""

    def __init__(self, fail: int = 0, block: threading.Event | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail = fail
        self.block = block

    def __call__(self, conn: psycopg.Connection[Any], patients: list[int],
                 now: dt.datetime) -> None:
        conn.execute("SELECT 1")  # a real round trip on the worker's own connection
        if self.block is not None:
            self.block.wait(5)
        self.calls.append(patients)
        if self.fail > 0:
            self.fail -= 1
            msg = "evaluation failed"
            raise RuntimeError(msg)


def _worker(hook: RecordingHook, db_url: str) -> AlertingWorker:
    return AlertingWorker(hook, lambda: psycopg.connect(db_url), GatewayMetrics(),
                          lambda: NOW, str)


def _wait_for(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_patients_submitted_while_busy_are_coalesced(db_url: str) -> None:
    gate = threading.Event()
    hook = RecordingHook(block=gate)
    worker = _worker(hook, db_url)
    worker.start()
    try:
        worker.submit([3, 1])
        time.sleep(0.2)  # the worker is now inside the first (blocked) evaluation
        for batch in ([2], [1, 4], [2, 5]):
            worker.submit(batch)
        gate.set()
        _wait_for(lambda: len(hook.calls) == 2)
    finally:
        worker.stop()
    assert hook.calls == [[1, 3], [1, 2, 4, 5]]


def test_failed_evaluation_is_retried(db_url: str) -> None:
    hook = RecordingHook(fail=1)
    worker = _worker(hook, db_url)
    worker.start()
    try:
        worker.submit([7])
        _wait_for(lambda: len(hook.calls) == 2)
    finally:
        worker.stop()
    assert hook.calls == [[7], [7]]


def test_pending_patients_are_drained_at_stop(db_url: str) -> None:
    hook = RecordingHook()
    worker = _worker(hook, db_url)
    worker.submit([9, 8])  # not started: nothing runs until stop drains
    worker.start()
    worker.stop()
    assert [8, 9] in hook.calls
