"""Evaluates alerts for the patients the gateways queued, in `vward alerting`'s own process.

Why a process of its own: run on a thread of the gateway, evaluation competed with ingest for
one GIL and halved its throughput (issue 14). The gateway now only writes the patients of each
committed batch to `alerting_queue` (ward.db.alerting_queue) in its ingest transaction and
never waits for evaluation; this loop takes them.

One pass is one transaction: lock every waiting row (up to `take_rows`; each a committed
batch's patients, or an earlier pass's leftover), coalesce them (each patient once, with its
earliest receipt), evaluate a bounded subset chosen by `alerting.pass_plan` — urgent patients
first and at once, then those whose receipt is `hold_s` old, oldest first, at most `budget`
patients, the budget adapted to keep a pass near PASS_TARGET_S — with
`alerting.runner.evaluate_after_commit` (in a savepoint), delete the rows and put the
leftover back as ONE row keeping each patient's earliest receipt and urgency, commit. Rows,
leftover and evaluation commit together, so a crash before the commit puts every row back as
it was and a crash after it has nothing left to do: no evaluation is lost, none is stored
twice. A pass with nothing due writes nothing (it rolls back its locks) and the loop sleeps
until a NOTIFY or the next patient falls due.

Why bounded and held (issue 14): unbounded passes grew to the whole ward (seconds each), so
an alerting reading waited for the pass in flight and the next: p99 17 s at 2,000 msgs/s.
Small passes alone re-evaluated each patient ~4.6x as often and fell behind; holding the
non-urgent patients keeps their coalescing while urgent ones skip the queue.

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
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from alerting.pass_plan import next_budget, plan_pass
from ward.db import alerting_queue, channels

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
Hook = Callable[[Conn, list[int], dt.datetime], object]

# Rows locked per pass: all of them in practice (one leftover row plus the batches committed
# during the last pass, ~20-40 at 2,000 msgs/s); the cap bounds memory after an outage.
TAKE_ROWS = 5000
# A pass aims at this much wall time, so an urgent patient queued while one runs waits about
# this long for its own pass (target: publish → alert committed p99 < 250 ms, issue 14).
# Measured in bench_latency at 2,000 msgs/s, load average ~10 on 2 cores: ~6 ms of wall time
# per patient evaluated whatever the pass size (20 patients: 0.07-0.24 s; the whole-ward
# passes before: 801 per 4.66 s) with the evaluator at ~27 % of a core (the database's share
# of a loaded CPU), so the budget follows the measured cost, down to BUDGET_MIN. A second run
# (load 2-4) showed a fixed cost too: 15-patient passes 127 ms apart (~70 ms fixed + ~3.6 ms
# per patient, the whole-ward passes' rate), 3.4 ms CPU per patient against 1.4 ms. Session 6
# (the pass log's phase timings, load 5-6): the fixed part is the hook (~15 statements per
# pass): 75-90 ms whatever the size (8-76 patients), and settle's leftover row ~15 ms (~50 us
# per leftover patient). A least-squares fit fixed + n x per patient on recent passes was
# tried: too noisy at this load, it collapsed the budget to BUDGET_MIN (fewer evaluations,
# worse p99), so it was not kept (issue 14).
PASS_TARGET_S = 0.1
BUDGET_START = 50
BUDGET_MIN = 10
BUDGET_MAX = 2000
# Non-urgent patients wait until their earliest receipt is this old, coalescing the readings
# that arrive meanwhile (at 2,000 msgs/s over 1,000 patients, ~4 per patient): about one
# evaluation per patient per HOLD_S, as many as the whole-ward passes before issue 14 did
# (8,670 in a 20 s bench_latency run, ~2.3 s apart).
HOLD_S = 2.0
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
    lags_s: tuple[float, ...]  # per patient evaluated: earliest MQTT receipt → about commit
    leftover: int = 0  # patients put back, not yet due or over the budget


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Evaluator:
    """Consumes `alerting_queue`; several may run at once (rows are locked SKIP LOCKED)."""

    def __init__(self, conninfo: str, hook: Hook, *,
                 clock: Callable[[], dt.datetime] = _utcnow,
                 take_rows: int = TAKE_ROWS, hold_s: float = HOLD_S,
                 budget: int = BUDGET_START, adapt: bool = True) -> None:
        self._conninfo = conninfo
        self._hook = hook
        self._clock = clock
        self._take_rows = take_rows
        self._hold_s = hold_s
        self._budget = budget
        self._adapt = adapt
        self.next_due: dt.datetime | None = None  # the earliest held patient falls due then
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

    def run_once(self, *, hold: bool = True) -> Pass | None:
        """One pass (one transaction); None when nothing was due (then it wrote nothing).

        `hold=False` evaluates non-urgent patients without their coalescing hold (drain).
        """
        conn = self._ensure()
        now = self._clock()
        started = time.monotonic()
        started_wall = time.time()
        with conn.transaction() as tx:
            waiting = alerting_queue.lock_waiting(conn, self._take_rows)
            locked = time.monotonic()
            # The hold is measured on the wall clock: receipts are wall-clock times, `now`
            # is the clinical clock (a test's may be anywhere).
            plan = plan_pass(waiting.receipts, waiting.urgent, _utcnow(), budget=self._budget,
                             hold_s=self._hold_s if hold else 0.0, red=waiting.red)
            self.next_due = plan.next_due
            if not plan.evaluate:
                raise psycopg.Rollback(tx)
            failed = self._evaluate(conn, plan.evaluate, now)
            hooked = time.monotonic()
            alerting_queue.settle(conn, waiting, plan.leftover)
            if failed:
                alerting_queue.requeue(conn, failed, min(waiting.receipts[p] for p in failed))
            settled = time.monotonic()
        if not plan.evaluate:
            return None
        elapsed = time.monotonic() - started
        if self._adapt:
            self._budget = next_budget(self._budget, len(plan.evaluate), elapsed,
                                       target_s=PASS_TARGET_S, smallest=BUDGET_MIN,
                                       largest=BUDGET_MAX)
        committed = self._clock()
        lags = tuple((committed - waiting.receipts[p]).total_seconds() for p in plan.evaluate)
        result = Pass(len(plan.evaluate), len(waiting.row_ids), tuple(failed), lags,
                      len(plan.leftover))
        if failed:
            log.error("alerting evaluation failed for patients=%s (requeued)", list(failed))
        if log.isEnabledFor(logging.DEBUG):  # its joins are work every pass otherwise
            log.debug("alerting pass patients=%d rows=%d leftover=%d budget=%d seconds=%.3f "
                      "lock_ms=%.1f hook_ms=%.1f settle_ms=%.1f commit_ms=%.1f started=%.3f "
                      "red=%s lags_ms=%s",
                      result.patients, result.rows, result.leftover, self._budget, elapsed,
                      1000 * (locked - started), 1000 * (hooked - locked),
                      1000 * (settled - hooked), 1000 * (started + elapsed - settled),
                      started_wall, ",".join(str(p) for p in plan.evaluate if p in waiting.red),
                      ",".join(f"{lag * 1000:.1f}" for lag in result.lags_s))
        return result

    def drain(self) -> int:
        """Passes until the queue is empty or a pass fails; the number of patients evaluated."""
        evaluated = 0
        while (result := self.run_once(hold=False)) is not None:
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
                    due = self.next_due
                    wait = POLL_S if due is None else max(
                        0.0, min(POLL_S, (due - _utcnow()).total_seconds()))
                    if wait > 0:
                        self._wait(wait)
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
