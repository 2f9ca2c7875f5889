"""`vward demo` on a machine with nothing configured: embedded servers, clean stop; on a
laptop without Mosquitto (hidden from PATH) the embedded amqtt ingests, the readings are
scored and reach the hub's API, and the referral feed fills the triage queue; a part that
cannot start makes it fail with advice."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from ward.commands.demo import failure_hint, port_taken
from ward.embedded import free_port
from ward.settings import Settings


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


def _demo_env(mark: str, hide_mosquitto_in: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VW_")}
    env["VW_HUB_PORT"] = str(free_port())  # not the default 8000
    env["VW_TEST_DEMO_MARK"] = mark
    if hide_mosquitto_in is not None:
        env["PATH"] = _path_without_mosquitto(env.get("PATH", ""), hide_mosquitto_in)
        assert shutil.which("mosquitto", path=env["PATH"]) is None
    return env


def _path_without_mosquitto(path: str, shadows: Path) -> str:
    """PATH with every folder holding `mosquitto` replaced by a shadow folder of links to
    everything else in it (the embedded PostgreSQL needs its neighbours, e.g. useradd)."""
    folders = []
    for i, folder in enumerate(p for p in path.split(os.pathsep) if p):
        if not (Path(folder) / "mosquitto").exists():
            folders.append(folder)
            continue
        shadow = shadows / f"bin{i}"
        shadow.mkdir(parents=True)
        for entry in Path(folder).iterdir():
            if entry.name != "mosquitto":
                (shadow / entry.name).symlink_to(entry)
        folders.append(str(shadow))
    return os.pathsep.join(folders)


def _start_demo(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ward.cli", "demo"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@pytest.mark.slow
def test_demo_starts_embedded_servers_and_stops_cleanly_on_sigint() -> None:
    mark = uuid.uuid4().hex
    proc = _start_demo(_demo_env(mark))
    try:
        output = _wait_until_running(proc, mark)
        assert "embedded mosquitto" in output or "embedded amqtt" in output, output
        _stop_and_check(proc, mark, output)
    finally:
        _kill(proc)


@pytest.mark.slow
def test_demo_without_mosquitto_ingests_scores_and_serves_readings(tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    env = _demo_env(mark, hide_mosquitto_in=tmp_path)
    proc = _start_demo(env)
    try:
        output = _wait_until_running(proc, mark)
        assert "embedded amqtt, MQTT 3.1.1" in output, output
        hub = f"http://127.0.0.1:{env['VW_HUB_PORT']}"
        token = _post(f"{hub}/api/auth/token", {"username": "nurse", "password": "nurse"})
        bearer = token["access_token"]
        # Readings published by the simulator → amqtt → gateway → database → hub API, and
        # scored by the alerting core after the gateway's commit. The ward view scores the
        # latest readings live at once; the alerting core's stored score follows (it runs off
        # the ingest path, in its own niced process), so wait for that too.
        deadline = time.monotonic() + 120
        scored: int | None = None
        while time.monotonic() < deadline and scored is None:
            rows = _get(f"{hub}/api/ward", bearer)["rows"]
            for row in (r for r in rows if r["last_observation_at"] and r["score"]):
                pid = row["patient_id"]
                if _get(f"{hub}/api/patients/{pid}/scores", bearer)["total"] > 0:
                    scored = pid
                    break
            if scored is None:
                time.sleep(1)
        if scored is None:  # say why: the demo's own lines (the alerting core's among them)
            proc.send_signal(signal.SIGINT)
            rest, _ = proc.communicate(timeout=60)
            pytest.fail("no patient on the ward view has a reading and a score stored by the "
                        f"alerting core; ward rows {rows!r}; the demo printed:\n{output}{rest}")
        assert _get(f"{hub}/api/patients/{scored}/readings", bearer)["total"] > 0
        # The referral feed (started once the hub answers) opens the triage queue with the
        # last two hours' referrals waiting.
        deadline = time.monotonic() + 60
        waiting: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not waiting:
            waiting = _get(f"{hub}/api/admissions?status=referred", bearer)["items"]
            if not waiting:
                time.sleep(1)
        assert waiting, "the demo's triage queue is empty"
        assert {w["referred_by"] for w in waiting} == {"referral-feed"}
        _stop_and_check(proc, mark, output)
    finally:
        _kill(proc)


def test_demo_with_the_hub_port_taken_fails_and_names_the_variable() -> None:
    mark = uuid.uuid4().hex
    env = _demo_env(mark)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        env["VW_HUB_PORT"] = str(sock.getsockname()[1])
        done = subprocess.run([sys.executable, "-m", "ward.cli", "demo"], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"port {env['VW_HUB_PORT']} on 127.0.0.1 is taken" in done.stderr
    assert "set VW_HUB_PORT" in done.stderr
    assert "Hub dashboard" not in done.stdout  # no URL for a hub that will never answer


def test_port_taken_and_failure_hints() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert port_taken("127.0.0.1", sock.getsockname()[1])
    assert not port_taken("127.0.0.1", free_port())
    settings = Settings(hub_port=8123)
    assert "set VW_HUB_PORT" in failure_hint("hub", 3, settings)
    assert "127.0.0.1:8123" in failure_hint("hub", 3, settings)
    assert "VW_MQTT_URL" in failure_hint("gateway", 1, settings)
    assert failure_hint("other", 2, settings).startswith("other exited with 2")


def _kill(proc: subprocess.Popen[str]) -> None:
    """Kill a demo still running and close its pipe (a pipe left to the garbage collector is
    an unraisable ResourceWarning that fails whichever test happens to be running then)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _post(url: str, body: dict[str, str]) -> dict[str, Any]:
    response = httpx.post(url, json=body, timeout=10)
    response.raise_for_status()
    return dict(response.json())


def _get(url: str, bearer: str) -> dict[str, Any]:
    response = httpx.get(url, headers={"Authorization": f"Bearer {bearer}"}, timeout=10)
    response.raise_for_status()
    return dict(response.json())


def _wait_until_running(proc: subprocess.Popen[str], mark: str) -> str:
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
    assert "Press Ctrl-C to stop." in output, output
    assert "embedded PostgreSQL" in output, output
    assert "an empty ward on every run" in output, output
    assert re.search(r"schema: +\d+ migration\(s\) applied", output), output
    running = _marked_processes(mark)
    assert len(running) >= 3, "expected the demo, PostgreSQL and the broker to be running"
    return output


def _stop_and_check(proc: subprocess.Popen[str], mark: str, output: str) -> None:
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output + rest
    assert "virtualward demo: stopped." in rest
    # A normal run has no error, and a normal stop is quiet: no warning (e.g. the gateway's
    # "disconnected … will be redelivered") once Ctrl-C was pressed.
    assert "level=ERROR" not in output + rest, output + rest
    assert "level=WARNING" not in rest, rest
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
