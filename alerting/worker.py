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
from types import FrameType

from alerting import runner, store
from alerting.evaluator import Evaluator
from alerting.policy import configured_policy
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


def child_main(conninfo: str, settings: Settings, policy_file: str, parent: int) -> None:
    """Entry point of the evaluator process (spawned: a fresh interpreter)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        # Abandon the pass in flight rather than finish it: a pass over a busy ward (or one
        # waiting on a patient's lock) may outlast STOP_TIMEOUT_S, and the supervisor would
        # kill it anyway. KeyboardInterrupt is what psycopg answers by cancelling the query
        # in the server; the transaction rolls back, so the queue rows taken stay queued for
        # the next evaluator (exactly-once does not depend on how the child ends).
        del signum, frame
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    policy = configured_policy(settings, policy_file)

    def _watch_parent() -> None:
        while not stop.wait(PARENT_CHECK_S):
            if os.getppid() != parent:
                log.warning("alerting evaluator: parent %d is gone; stopping", parent)
                stop.set()

    threading.Thread(target=_watch_parent, name="vw-parent-watch", daemon=True).start()
    # Open episodes decoded once and kept while their rows are unchanged (store.EpisodeCache).
    evaluator = Evaluator(conninfo, functools.partial(runner.evaluate_after_commit, policy=policy,
                                                      cache=store.EpisodeCache()))
    try:
        evaluator.run(stop)
    except KeyboardInterrupt:
        log.info("alerting evaluator pid=%d: stopped (a pass in flight rolled back)", os.getpid())
        evaluator.close()


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
