"""`vward users create` and `vward hub` as real processes: start, serve SSE, stop cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from ward.embedded import free_port

REPO = Path(__file__).resolve().parents[2]


def test_users_command_then_hub_serves_and_stops_promptly(hub_settings, tmp_path):
    url = hub_settings.database_conninfo()
    env = {**os.environ, "VW_DATABASE_URL": url, "PYTHONPATH": str(REPO)}
    made = subprocess.run(
        [sys.executable, "-m", "ward.cli", "users", "create", "sister", "--role", "hub_nurse",
         "--password-stdin"], input=b"a long password\n", env=env, cwd=REPO,
        capture_output=True, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    short = subprocess.run(
        [sys.executable, "-m", "ward.cli", "users", "create", "brother", "--role", "admin",
         "--password-stdin"], input=b"short\n", env=env, cwd=REPO, capture_output=True,
        timeout=60, check=False)
    assert short.returncode == 1
    # The People screens' rules: a name is trimmed and lower-cased, so "Sister" is taken.
    again = subprocess.run(
        [sys.executable, "-m", "ward.cli", "users", "create", " Sister ", "--role", "admin",
         "--password-stdin"], input=b"another long password\n", env=env, cwd=REPO,
        capture_output=True, timeout=60, check=False)
    assert again.returncode == 1
    assert b"'sister' is taken" in again.stderr, again.stderr

    port = free_port()
    log = tmp_path / "hub.log"
    with log.open("wb") as out:
        hub = subprocess.Popen([sys.executable, "-m", "ward.cli", "hub", "--port", str(port)],
                               env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/login", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        token = httpx.post(base + "/api/auth/token", json={
            "username": "sister", "password": "a long password"}).json()["access_token"]
        opened = threading.Event()

        def listen() -> None:
            headers = {"Authorization": f"Bearer {token}"}
            try:
                with httpx.stream("GET", base + "/api/events", headers=headers,
                                  timeout=httpx.Timeout(5, read=30)) as stream:
                    for _line in stream.iter_lines():
                        opened.set()
            except httpx.HTTPError:
                pass

        reader = threading.Thread(target=listen, daemon=True)
        reader.start()
        assert opened.wait(10)
        started = time.monotonic()
        hub.send_signal(signal.SIGINT)
        assert hub.wait(15) == 0, log.read_text()
        assert time.monotonic() - started < 3  # open streams end at once, not after a timeout
        reader.join(5)
        assert "Cancel" not in log.read_text()
        # The start-up heap is frozen before serving (full collections then walk only what
        # the hub made since: ward.gcpolicy).
        frozen = re.search(r"([\d,]+) start-up objects frozen", log.read_text())
        assert frozen, log.read_text()
        assert int(frozen.group(1).replace(",", "")) > 10_000
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait()
