"""The evaluator's supervisor stops a child that stops: no "did not stop; killing it" for a
child that exited on its SIGTERM (the demo's stop logged it on a loaded machine, issue 14)."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from alerting import worker
from ward.settings import Settings


def _waits_for_sigterm(conninfo: str, settings: Settings, policy_file: str,
                       parent: int) -> None:
    """A child that does nothing until SIGTERM ends it (the default action)."""
    del conninfo, settings, policy_file, parent
    time.sleep(60)


def test_a_child_that_exits_on_its_sigterm_is_never_reported_as_not_stopping(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """stop() and the supervising thread both waited for the child: one reaped it, the other
    got ECHILD, which multiprocessing reports as "alive" until the reaping thread has stored
    the exit status, so stop() logged an ERROR and sent SIGKILL to a reaped pid. On a loaded
    machine the reaping thread waits for the GIL; here it is made to wait 0.5 s after reaping
    (a real child, a real `waitpid`, only the descheduling is forced), and the old stop()
    fails every time (checked)."""
    real_waitpid = os.waitpid

    def descheduled_after_reaping(pid: int, options: int) -> tuple[int, int]:
        result = real_waitpid(pid, options)
        if threading.current_thread().name == "vw-eval-supervisor" and result[0] == pid:
            time.sleep(0.5)
        return result

    monkeypatch.setattr(os, "waitpid", descheduled_after_reaping)
    caplog.set_level(logging.INFO, logger=worker.__name__)
    process = worker.EvaluatorProcess("", Settings(), "", target=_waits_for_sigterm)
    process.start()
    deadline = time.monotonic() + 30
    while process.pid is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.pid is not None
    process.stop()
    assert process.restarts == 0
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []
