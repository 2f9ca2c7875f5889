"""The demo's SMS/pager endpoint: pages from the outbox's HTTP notifier are printed, and the
shipped escalation policy is fully served in the demo's environment (no start-up warning)."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from alerting.notify import HttpProviderNotifier
from alerting.outbox import OutboxItem
from ward.commands.demo import child_env
from ward.commands.demo_pager import demo_pager, page_line
from ward.settings import Settings


@pytest.mark.parametrize(("body", "line"), [
    (b'{"to": "+447700900101", "message": "NEWS2 7 high"}', "  page → +447700900101: NEWS2 7 high"),
    (b'{"to": "gp-out-of-hours"}', "  page → gp-out-of-hours: "),
    (b'{"message": "no recipient"}', None),
    (b"[1, 2]", None),
    (b"not json", None),
])
def test_page_line(body: bytes, line: str | None) -> None:
    assert page_line(body) == line


def test_a_page_sent_by_the_http_notifier_is_printed() -> None:
    said: list[str] = []
    with demo_pager(said.append) as (url, token):
        notifier = HttpProviderNotifier(url, token=token)
        try:
            item = OutboxItem(id=1, channel="pager", recipient="urgent-response-team",
                              payload={"kind": "news2", "severity": "high", "patient_id": 7,
                                       "summary": "NEWS2 7"},
                              idempotency_key="alert:1:raised", attempts=0)
            notifier.send(item)
        finally:
            notifier.close()
        nonsense = httpx.post(url, content=b"nonsense", headers={"Authorization": f"Bearer {token}"})
        stranger = httpx.post(url, content=b'{"to": "x"}')
    assert (nonsense.status_code, stranger.status_code) == (400, 401)
    assert len(said) == 1
    assert said[0].startswith("  page → urgent-response-team: ")


def test_the_shipped_policy_is_served_in_the_demo_environment() -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VW_")}
    with demo_pager() as pager:
        env = child_env(Settings(), "postgresql://postgres@127.0.0.1:5432/test",
                        "mqtt://127.0.0.1:1883", None, pager)
        env = {**base, **{k: v for k, v in env.items() if k.startswith("VW_")}}
        done = subprocess.run([sys.executable, "-m", "ward.cli", "alerting", "--check-policy"],
                              env=env, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every channel has a notifier" in done.stdout
