"""`vward demo` on a machine with nothing configured: embedded servers, clean stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest


def _marked_processes(mark: str) -> set[int]:
    """Live processes whose environment carries `mark`: the demo and all it started.

    Other tests (and other people's runs) start brokers and databases too; the mark singles
    out ours, including daemons that pg_ctl re-parents to init.
    """
    needle = f"VW_TEST_DEMO_MARK={mark}".encode()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if needle in environ.read().split(b"\0") and not _is_zombie(int(entry)):
                    found.add(int(entry))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_demo_starts_embedded_servers_and_stops_cleanly_on_sigint() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VW_")}
    env["VW_HUB_PORT"] = str(18000 + os.getpid() % 1000)  # not the default 8000
    mark = uuid.uuid4().hex
    env["VW_TEST_DEMO_MARK"] = mark
    proc = subprocess.Popen(
        [sys.executable, "-m", "ward.cli", "demo"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        _check_demo(proc, mark)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _check_demo(proc: subprocess.Popen[str], mark: str) -> None:
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
    running = _marked_processes(mark)
    assert len(running) >= 3, "expected the demo, PostgreSQL and the broker to be running"

    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output + rest
    assert "virtualward demo: stopped." in rest
    deadline = time.monotonic() + 10  # postgres' last backends exit just after pg_ctl
    while _marked_processes(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {pid: _cmdline(pid) for pid in _marked_processes(mark)}
    assert not left, f"left behind: {left}"


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True
