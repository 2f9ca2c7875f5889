"""Runs the alerting core beside the ingest loop, so evaluating alerts never slows ingest.

The ingest loop hands over the patients of every committed batch (`submit`) and goes straight
on to the next batch. This worker, on its own thread and database connection, takes everything
handed over since its last pass and evaluates it in one call: the alerting runner's SQL is
set-based, so one call for 1,000 patients costs far less than ten calls for 100, and under
load the worker batches more by itself instead of falling behind.

A failed evaluation puts its patients back and retries with back-off (the readings are
committed already; only the alerts wait). At shutdown the worker drains what it holds.
Nothing here holds clinical logic.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
Hook = Callable[[Conn, list[int], dt.datetime], object]

# Retry after a failed evaluation: soon (a blip), then at most every 10 s (database down).
RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0
# How long a clean shutdown may spend evaluating what is still pending.
DRAIN_S = 10.0


class AlertingWorker:
    def __init__(
        self,
        hook: Hook,
        connect: Callable[[], Conn],
        metrics: GatewayMetrics,
        clock: Callable[[], dt.datetime],
        describe_error: Callable[[BaseException], str],
    ) -> None:
        self._hook = hook
        self._connect = connect
        self._metrics = metrics
        self._clock = clock
        self._describe = describe_error
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._conn: Conn | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def submit(self, patient_ids: Iterable[int]) -> None:
        """Queue patients for evaluation (called by the ingest loop after each commit)."""
        with self._lock:
            self._pending.update(patient_ids)
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vw-alerting", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Drain what is pending (bounded by DRAIN_S), then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(DRAIN_S + 5)
        self._close()

    def _take(self) -> list[int]:
        with self._lock:
            taken = sorted(self._pending)
            self._pending.clear()
            self._wake.clear()
        return taken

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def evaluate(self, patients: list[int]) -> bool:
        """One pass over `patients`; False (patients put back) when it failed."""
        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._close()
                self._conn = self._connect()
            self._hook(self._conn, patients, self._clock())
            self._conn.commit()
        except Exception as exc:  # alerts wait; the readings are safe in the database
            self._metrics.alerting_failures.inc()
            log.error("alerting evaluation failed patients=%d: %s (will retry)",
                      len(patients), self._describe(exc))
            with contextlib.suppress(psycopg.Error):
                if self._conn is not None:
                    self._conn.rollback()
            if isinstance(exc, psycopg.OperationalError):
                self._close()
            self.submit(patients)
            return False
        return True

    def _run(self) -> None:
        delay = RETRY_MIN_S
        while not self._stop.is_set():
            self._wake.wait()
            patients = self._take()
            if not patients:
                continue
            if self.evaluate(patients):
                delay = RETRY_MIN_S
            elif self._stop.wait(delay):
                break
            else:
                delay = min(delay * 2, RETRY_MAX_S)
        # Shutting down: one last pass for what the ingest loop committed meanwhile.
        patients = self._take()
        if patients:
            self.evaluate(patients)
