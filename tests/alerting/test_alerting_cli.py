"""`vward alerting` on the console: a sweep that changed nothing is not worth a line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_an_idle_sweep_logs_nothing_at_info(db_url: str, to_url: Callable[[str], str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "VW_DATABASE_URL": to_url(db_url),
           "VW_LOG_LEVEL": "INFO"}
    env.pop("VW_MQTT_URL", None)
    done = subprocess.run([sys.executable, "-m", "ward.cli", "alerting", "--once"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "scheduler leadership acquired" in done.stderr  # it did sweep, as leader
    assert "sweep SweepResult" not in done.stderr, done.stderr


def test_vward_alerting_runs_at_the_configured_priority(
        db_url: str, to_url: Callable[[str], str]) -> None:
    """VW_ALERTING_NICE: evaluation yields the CPU to ingest (issue 14)."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    wanted = min(19, base + 4)
    env = {**os.environ, "PYTHONPATH": str(REPO), "VW_DATABASE_URL": to_url(db_url),
           "VW_LOG_LEVEL": "INFO", "VW_ALERTING_NICE": str(wanted)}
    env.pop("VW_MQTT_URL", None)
    done = subprocess.run([sys.executable, "-m", "ward.cli", "alerting", "--once"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert f"nice {wanted}" in done.stdout, done.stdout
