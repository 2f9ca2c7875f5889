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
