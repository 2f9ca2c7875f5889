"""`vward demo` on a machine with nothing configured: embedded servers, clean stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest


def _processes_matching(pattern: str) -> set[int]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True)
    return {int(line.split(None, 1)[0]) for line in out.stdout.splitlines() if pattern in line}


@pytest.mark.slow
def test_demo_starts_embedded_servers_and_stops_cleanly_on_sigint() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VW_")}
    env["VW_HUB_PORT"] = str(18000 + os.getpid() % 1000)  # not the default 8000
    before_pg = _processes_matching("vw-pg-")
    before_mqtt = _processes_matching("vw-mqtt-")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ward.cli", "demo"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        _check_demo(proc, before_pg, before_mqtt)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _check_demo(proc: subprocess.Popen[str], before_pg: set[int], before_mqtt: set[int]) -> None:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Press Ctrl-C to stop." in line:
            break
    output = "".join(lines)
    assert "embedded PostgreSQL" in output, output
    assert "embedded mosquitto" in output or "embedded amqtt" in output, output
    assert re.search(r"schema: +\d+ migration\(s\) applied", output), output
    children = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", output)]
    assert _processes_matching("vw-pg-") - before_pg, "embedded PostgreSQL is not running"

    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output + rest
    assert "virtualward demo: stopped." in rest
    time.sleep(0.5)  # let the kernel reap the last exits before we look
    assert not (_processes_matching("vw-pg-") - before_pg), "PostgreSQL left behind"
    assert not (_processes_matching("vw-mqtt-") - before_mqtt), "broker left behind"
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid), f"child {pid} left behind"


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True
