"""The queue evaluator in a process of its own, supervised by `vward alerting`.

Why a process and not a thread: the timer sweep (every patient, every 15 s), the outbox
delivery and the evaluator shared one GIL, so a fresh reading's evaluation waited for
seconds of sweep work; a process lets each run at its own cadence and lets the operating
system share the cores (issue 14). The sweep still takes the patients' advisory locks, but
only for one small chunk at a time (`alerting.scheduler.SWEEP_CHUNK`).

Exactly-once does not depend on this process: queue rows are deleted in the evaluation's
transaction (`alerting.evaluator`), so a killed child loses nothing and the one started in
its place takes the rows back. The supervisor restarts a child that exits without being
asked to (back-off: 0.5 s doubling to 10 s), and a child whose parent dies stops by itself
(it checks its parent every second), so no orphan keeps evaluating with an old policy.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import LiteralString

import psycopg

from alerting import runner, store
from alerting.evaluator import Evaluator
from alerting.policy import configured_policy
from ward import gcpolicy
from ward.db import alerting_queue
from ward.logformat import formatter
from ward.settings import Settings

log = logging.getLogger(__name__)

RESTART_MIN_S = 0.5
RESTART_MAX_S = 10.0
# How often a child looks for its parent (an orphan stops within this).
PARENT_CHECK_S = 1.0
# A child that ran this long before it exited is restarted after the shortest back-off again.
HEALTHY_S = 60.0
# A child asked to stop abandons its pass (rolled back) and exits within this, else is killed.
STOP_TIMEOUT_S = 10.0


# The signals that stop a child. Blocked in every thread and taken by one thread with
# sigtimedwait, never by a handler: a handler raising KeyboardInterrupt (as before) landed
# inside psycopg's transaction and pipeline code, which then logged "error ignored in
# rollback" / "error ignored terminating" WARNINGs (tests/alerting/test_evaluator_process.py).
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
# A child asked to stop lets its pass finish (a pass is bounded: `evaluator.TAKE_ROWS`), but
# cancels a statement of it that has waited this long on a lock (a patient's evaluation lock
# held by a slow sweep chunk or another process: such a wait has no bound of its own).
LOCK_WAIT_S = 0.5
# How often the stopping thread looks at the pass.
STOP_POLL_S = 0.05
# A pass still running after this (2 s before the supervisor's kill) is abandoned by exiting:
# the server rolls back what the closed session held.
STOP_GRACE_S = STOP_TIMEOUT_S - 2.0

# The evaluation connection's statement, cancelled only when it waits on a lock, has done so
# for `LOCK_WAIT_S` and is not psycopg's own transaction control, and at most once per
# statement (`query_start`). Why so narrow: a cancel is a signal to the server process, so it
# lands on whatever statement runs when it arrives. On SAVEPOINT it leaves psycopg to roll back
# to a savepoint that was never made ("savepoint _pg3_3 does not exist", the WARNING that got
# the previous query-cancel stop reverted); on a statement whose error psycopg reads inside a
# pipeline block, the block's exit reports the aborted rest as a WARNING. A statement waiting
# on a lock is none of those: its error is read where the pass waits (a plain statement, or the
# pipeline's exit, not its block), each enclosing savepoint exists and rolls back, and the
# pass's outermost transaction rolls back (`Evaluator.run` ends on it quietly when stopping).
_CANCEL_LOCK_WAIT: LiteralString = (
    "SELECT query_start, pg_cancel_backend(pid) FROM pg_stat_activity "
    "WHERE pid = %s AND state = 'active' AND wait_event_type = 'Lock' "
    "AND query_start < clock_timestamp() - %s * interval '1 second' "
    "AND query_start IS DISTINCT FROM %s "
    "AND query !~* '^[[:space:]]*(savepoint|release|rollback|commit|begin|end)([^a-z_]|$)'")


def lower_priority(nice: int) -> int:
    """Lower this process's scheduling priority to `nice` (`Settings.alerting_nice`), never
    raise it (that needs privileges); returns the priority now held.

    Called before any thread or child starts: on Linux a priority belongs to the thread that
    set it, and threads and processes started afterwards inherit it.
    """
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > current:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        return nice
    return current


def child_main(conninfo: str, settings: Settings, policy_file: str, parent: int) -> None:
    """Entry point of the evaluator process (spawned: a fresh interpreter).

    The evaluator runs on this (main) thread and is never interrupted; a second thread waits
    for a stop signal or the parent's end, then asks the loop to stop: the pass in flight
    commits, or, waiting on a lock, has its statement cancelled and rolls back whole, so the
    queue rows it took stay queued for the next evaluator.
    """
    # Blocked before any thread starts, so every thread inherits the mask and none is
    # interrupted; the stopping thread collects them with sigtimedwait.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    stop = threading.Event()
    done = threading.Event()
    policy = configured_policy(settings, policy_file)
    # Open episodes decoded once and kept while their rows are unchanged (store.EpisodeCache).
    evaluator = Evaluator(conninfo, functools.partial(runner.evaluate_after_commit, policy=policy,
                                                      cache=store.EpisodeCache()))
    log.info("alerting evaluator pid=%d: %s", os.getpid(),
             gcpolicy.describe(gcpolicy.tune_for_service()))
    cancelled: list[bool] = []
    stopper = threading.Thread(target=_stop_when_asked, args=(evaluator, conninfo, parent),
                               kwargs={"stop": stop, "done": done, "cancelled": cancelled},
                               name="vw-eval-stop", daemon=True)
    stopper.start()
    try:
        evaluator.run(stop)
    finally:
        done.set()
    stopper.join(STOP_TIMEOUT_S)
    log.info("alerting evaluator pid=%d: stopped%s", os.getpid(),
             " (a pass in flight rolled back)" if cancelled else "")


def _stop_when_asked(evaluator: Evaluator, conninfo: str, parent: int, *, stop: threading.Event,
                     done: threading.Event, cancelled: list[bool]) -> None:
    """Wait for a stop signal (or the parent's end), stop the loop, and see its pass out."""
    while not done.is_set():
        if signal.sigtimedwait(STOP_SIGNALS, PARENT_CHECK_S) is not None:
            break
        if os.getppid() != parent:
            log.warning("alerting evaluator: parent %d is gone; stopping", parent)
            break
    else:
        return
    stop.set()
    deadline = time.monotonic() + STOP_GRACE_S
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=2,
                             application_name="vw-alerting-stop") as conn:
            # Wakes a loop waiting for work (its LISTEN) at once; other evaluators of the
            # schema look at the queue once more, which costs them one empty take.
            conn.execute("SELECT pg_notify(vw_channel(%s), '')", (alerting_queue.CHANNEL,))
            seen: object = None
            while not done.wait(STOP_POLL_S) and time.monotonic() < deadline:
                pid = evaluator.backend_pid
                if pid is None:
                    continue
                row = conn.execute(_CANCEL_LOCK_WAIT, (pid, LOCK_WAIT_S, seen)).fetchone()
                if row is not None:
                    seen = row[0]
                    cancelled.append(True)
                    log.info("alerting evaluator pid=%d: stopping; cancelled the pass's "
                             "statement waiting on a lock", os.getpid())
    except psycopg.Error as exc:  # no database: the pass cannot go on either, and ends by itself
        log.info("alerting evaluator pid=%d: stopping without a database (%s)", os.getpid(),
                 type(exc).__name__)
    if not done.wait(max(0.0, deadline - time.monotonic())):
        log.warning("alerting evaluator pid=%d: its pass did not end in %.0f s; exiting (the "
                    "server rolls it back)", os.getpid(), STOP_GRACE_S)
        logging.shutdown()
        os._exit(0)


class EvaluatorProcess:
    """Keeps one evaluator child running until `stop()`; `start()` returns at once."""

    def __init__(self, conninfo: str, settings: Settings, policy_file: str,
                 stop: threading.Event | None = None, *,
                 target: Callable[[str, Settings, str, int], None] | None = None) -> None:
        """`stop`: the caller's own stop event (set by its signal handler), so a child that
        exits on the same signal is never replaced while the caller is still finishing.
        `target`: the child's entry point (`child_main`; tests give a lighter one)."""
        self._args = (conninfo, settings, policy_file, os.getpid())
        self._target = target or child_main
        self._context = multiprocessing.get_context("spawn")
        self._stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._child: BaseProcess | None = None
        self._thread: threading.Thread | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        with self._lock:
            return None if self._child is None else self._child.pid

    def _spawn(self) -> BaseProcess:
        child = self._context.Process(target=self._target, args=self._args,
                                      name="vw-alerting-eval", daemon=True)
        child.start()
        return child

    def _supervise(self) -> None:
        delay = RESTART_MIN_S
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    return
                child = self._child = self._spawn()
            started = time.monotonic()
            log.info("alerting evaluator process started pid=%s", child.pid)
            child.join()
            if time.monotonic() - started >= HEALTHY_S:
                delay = RESTART_MIN_S
            # A stop signal reaches the whole process group: give the parent's own handler
            # the back-off's time to say so before a child that exited is replaced.
            if self._stop.wait(delay):
                return
            log.error("alerting evaluator process pid=%s exited (code %s); restarting",
                      child.pid, child.exitcode)
            self.restarts += 1
            delay = min(delay * 2, RESTART_MAX_S)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="vw-eval-supervisor",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """SIGTERM the child (it rolls back its pass), kill it if it does not exit in time.

        Only the supervising thread waits for the child. A second thread joining the same
        process raced it for the exit status: one `waitpid` reaps the child, the other gets
        ECHILD, which multiprocessing reports as "still running" until the first thread has
        recorded the status; stop() then logged "did not stop; killing it" for a child that
        had stopped a moment before (the demo's stop, tests/ward/test_demo.py, on a loaded
        machine). Here stop() waits for the supervising thread to see the exit instead.
        """
        with self._lock:
            self._stop.set()
            child = self._child
        if child is not None:
            child.terminate()  # a no-op once the supervising thread has reaped it
        thread = self._thread
        if thread is None:
            return
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive() and child is not None:
            log.error("alerting evaluator pid=%s did not stop; killing it", child.pid)
            child.kill()
            thread.join(STOP_TIMEOUT_S)
