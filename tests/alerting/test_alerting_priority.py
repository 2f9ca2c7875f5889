"""`vward alerting` lowers its scheduling priority (Settings.alerting_nice, issue 14)."""

from __future__ import annotations

import os
import subprocess
import sys

from ward.settings import Settings


def _priority_after(nice: int) -> tuple[int, int]:
    """(returned, held) after lower_priority(nice), in a fresh process (not the test's)."""
    out = subprocess.run(
        [sys.executable, "-c",
         "import os; from alerting.worker import lower_priority; "
         f"r = lower_priority({nice}); print(r, os.getpriority(os.PRIO_PROCESS, 0))"],
        capture_output=True, text=True, check=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.getcwd()})
    returned, held = out.stdout.split()
    return int(returned), int(held)


def test_the_evaluator_yields_the_cpu_by_default() -> None:
    assert Settings(_env_file=None).alerting_nice == 10


def test_lower_priority_lowers_and_never_raises_it() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert _priority_after(min(19, base + 3)) == (min(19, base + 3),) * 2
    assert _priority_after(0) == (base, base)  # asked for more than it holds: left alone
