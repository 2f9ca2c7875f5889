"""Evaluates alerts for the patients the gateways queued, in `vward alerting`'s own process.

Why a process of its own: run on a thread of the gateway, evaluation competed with ingest for
one GIL and halved its throughput (issue 14). The gateway now only writes the patients of each
committed batch to `alerting_queue` (ward.db.alerting_queue) in its ingest transaction and
never waits for evaluation; this loop takes them.

One pass is one transaction: take up to `take_rows` queued rows (each a committed batch's
patients), evaluate the union of their patients with `alerting.runner.evaluate_after_commit`
(inside this transaction it runs in a savepoint), commit. Rows and evaluation commit together,
so a crash before the commit puts the rows back and a crash after it has nothing left to do:
no evaluation is lost, none is stored twice. Everything queued while a pass runs is coalesced
into the next one, so under load passes simply grow (the runner's SQL is set-based).

A pass whose evaluation raises is retried patient by patient in the same transaction; the
patients that still fail are put back in the queue (and retried after a back-off), so a single
patient whose evaluation always fails cannot hold up the others. Nothing here holds clinical
logic; the clock is a parameter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from ward.db import alerting_queue, channels

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
Hook = Callable[[Conn, list[int], dt.datetime], object]

# Rows per pass: each row is one committed ingest batch (up to ~1,000 patients); 500 rows
# bound one pass to seconds even with the whole ward in it, and a backlog drains in passes.
TAKE_ROWS = 500
# An idle evaluator looks at the queue this often even without a NOTIFY (a notification
# lost with a dropped LISTEN connection costs at most this much delay).
POLL_S = 1.0
# Back-off after a failed pass or a lost database: soon (a blip), then at most every 10 s.
RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class Pass:
    """What one committed pass did."""

    patients: int
    rows: int
    failed: tuple[int, ...]  # patients put back in the queue
    lags_s: tuple[float, ...]  # per row: earliest MQTT receipt → this pass's commit


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Evaluator:
    """Consumes `alerting_queue`; several may run at once (rows are locked SKIP LOCKED)."""

    def __init__(self, conninfo: str, hook: Hook, *,
                 clock: Callable[[], dt.datetime] = _utcnow,
                 take_rows: int = TAKE_ROWS) -> None:
        self._conninfo = conninfo
        self._hook = hook
        self._clock = clock
        self._take_rows = take_rows
        self._conn: Conn | None = None
        self._listen: Conn | None = None
        # The server process of the evaluation connection, None while there is none: read by
        # another thread (alerting.worker cancels a stopping pass's statement by it).
        self.backend_pid: int | None = None

    # database -----------------------------------------------------------------------------

    def _ensure(self) -> Conn:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self.close()
            self._conn = psycopg.connect(self._conninfo, application_name="vw-alerting-eval")
            self._listen = psycopg.connect(self._conninfo, autocommit=True,
                                           application_name="vw-alerting-listen")
            channels.listen(self._listen, alerting_queue.CHANNEL)
            self.backend_pid = self._conn.info.backend_pid
        return self._conn

    def close(self) -> None:
        self.backend_pid = None
        for conn in (self._conn, self._listen):
            if conn is not None:
                with contextlib.suppress(psycopg.Error):  # closing a broken socket
                    conn.close()
        self._conn = self._listen = None

    # one pass -----------------------------------------------------------------------------

    def _evaluate(self, conn: Conn, patients: Sequence[int], now: dt.datetime) -> list[int]:
        """Evaluate `patients` in savepoints; return those whose evaluation failed."""
        try:
            with conn.transaction():
                self._hook(conn, list(patients), now)
        except psycopg.OperationalError:
            raise
        except Exception as exc:  # a rule bug must not stop alerting for the whole ward
            log.error("alerting evaluation failed patients=%d: %s: %s (retrying one by one)",
                      len(patients), type(exc).__name__, exc)
            if len(patients) == 1:
                return list(patients)
            failed: list[int] = []
            for pid in patients:
                try:
                    with conn.transaction():
                        self._hook(conn, [pid], now)
                except psycopg.OperationalError:
                    raise
                except Exception:  # requeued below; the error was logged above
                    failed.append(pid)
            return failed
        return []

    def run_once(self) -> Pass | None:
        """One pass (one transaction); None when the queue was empty."""
        conn = self._ensure()
        now = self._clock()
        with conn.transaction():
            taken = alerting_queue.take(conn, self._take_rows)
            if not taken.patient_ids:
                return None
            failed = self._evaluate(conn, taken.patient_ids, now)
            if failed:
                alerting_queue.requeue(conn, failed, min(taken.received_at))
        committed = self._clock()
        result = Pass(len(taken.patient_ids), len(taken.received_at), tuple(failed),
                      tuple((committed - at).total_seconds() for at in taken.received_at))
        if failed:
            log.error("alerting evaluation failed for patients=%s (requeued)", list(failed))
        log.debug("alerting pass patients=%d rows=%d lags_ms=%s", result.patients, result.rows,
                  ",".join(f"{lag * 1000:.1f}" for lag in result.lags_s))
        return result

    def drain(self) -> int:
        """Passes until the queue is empty or a pass fails; the number of patients evaluated."""
        evaluated = 0
        while (result := self.run_once()) is not None:
            evaluated += result.patients - len(result.failed)
            if result.failed:
                break
        return evaluated

    # the loop -----------------------------------------------------------------------------

    def _wait(self, timeout: float) -> None:
        """Until a NOTIFY on the queue's channel (or `timeout`); swallow the ones pending."""
        if self._listen is None:
            return
        for _ in self._listen.notifies(timeout=timeout, stop_after=1):
            pass
        for _ in self._listen.notifies(timeout=0):
            pass

    def run(self, stop: threading.Event) -> None:
        """Evaluate queued patients until `stop` is set; reconnects by itself."""
        delay = RETRY_MIN_S
        log.info("alerting evaluator listening channel=%s", alerting_queue.CHANNEL)
        while not stop.is_set():
            try:
                result = self.run_once()
                if result is None:
                    self._wait(POLL_S)
                    continue
            except psycopg.OperationalError as exc:
                if stop.is_set():  # a pass abandoned on stop (alerting.worker): rolled back
                    log.debug("alerting evaluator: pass abandoned on stop (%s)", exc)
                    break
                log.warning("alerting evaluator lost the database (%s: %s); retrying in %.1f s",
                            type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "",
                            delay)
                self.close()
                stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if result.failed:
                stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            else:
                delay = RETRY_MIN_S
        self.close()

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="vw-alerting-eval",
                                  daemon=True)
        thread.start()
        return thread
