"""SMS/pager plug-ins: an escalation reaches a real local HTTP provider double through the
outbox, with retry; ``--check-policy`` fails when a route names a channel nobody delivers."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from alerting import cli, outbox, plugins, scheduler
from alerting.outbox import OutboxItem
from alerting.policy import parse_policy
from alerting.runner import evaluate_after_commit
from ward.settings import Settings

POLICY_FILE = Path(__file__).resolve().parents[2] / "deploy" / "escalation" / "default.yaml"
T0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)  # Monday, in hub hours
HIGH = {"spo2": 90, "pulse": 125, "resp_rate": 26, "temperature": 36.8, "systolic_bp": 125,
        "on_oxygen": 0, "consciousness": 0}


class Provider:
    """A tiny SMS provider API on a free port: answers 503 to the first ``fail`` requests."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                provider.received.append((dict(self.headers.items()), body))
                self.send_response(503 if len(provider.received) <= provider.fail else 202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                del args

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/messages"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider(fail=1)
    yield p
    p.close()


def _policy_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(POLICY_FILE.read_text())
    return data


def test_escalation_reaches_the_sms_provider_through_the_outbox_with_retry(
        db: psycopg.Connection[Any], provider: Provider, add_patients: Any, readings: Any,
        write_readings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VW_TEST_SMS_TOKEN", "s3cret")
    data = _policy_data()
    data["notifiers"] = {"sms": {"plugin": "http", "settings": {
        "url": provider.url, "token_env": "VW_TEST_SMS_TOKEN"}}}
    policy = parse_policy(data, source="test.yaml")
    built, problems = plugins.build(policy.notifiers)
    assert problems == []
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    write_readings(db, readings(pid, T0, **HIGH))
    evaluate_after_commit(db, [pid], T0, policy=policy)
    escalate_at = T0 + dt.timedelta(minutes=15)  # high: 15 min to acknowledge
    assert scheduler.sweep(db, policy, escalate_at).escalated == 1
    try:
        first = outbox.deliver_due(db, built, escalate_at)
        assert (first.delivered, first.retried) == (0, 1)
        assert "HTTP 503" in first.errors[0]
        retry_at = escalate_at + outbox.backoff(1)
        assert outbox.deliver_due(db, built, retry_at - dt.timedelta(seconds=1)).retried == 0
        second = outbox.deliver_due(db, built, retry_at)
        assert (second.delivered, second.retried) == (1, 0)
    finally:
        for notifier in built.values():
            notifier.close()  # type: ignore[attr-defined]
    assert len(provider.received) == 2
    (h1, b1), (h2, b2) = provider.received
    assert b1 == b2  # the same message, so the provider can dedupe on the key
    assert h1["Idempotency-Key"] == b1["idempotency_key"] == h2["Idempotency-Key"]
    assert h1["Authorization"] == "Bearer s3cret"
    assert b1["to"] == "+447700900101"  # the weekday day consultant on the rota
    assert b1["message"].startswith("VW HIGH escalated:")
    assert len(b1["message"]) <= 160
    assert b1["alert"]["event"] == "escalated"
    assert b1["alert"]["patient_id"] == pid
    row = db.execute("SELECT attempts, delivered_at IS NOT NULL FROM notification_outbox "
                     "WHERE channel = 'sms'").fetchone()
    assert row == (2, True)


def _settings(**kw: Any) -> Settings:
    return Settings(**kw)


@pytest.mark.parametrize(("env", "notifiers", "problems"), [
    ({}, None, ["notifiers.pager", "notifiers.sms", "channel 'mqtt'", "channel 'pager'",
                "channel 'sms'"]),
    ({"VW_SMS_PROVIDER_URL": "http://127.0.0.1:9/sms", "VW_SMS_PROVIDER_TOKEN": "t",
      "VW_PAGER_PROVIDER_URL": "http://127.0.0.1:9/pager", "VW_PAGER_PROVIDER_TOKEN": "t"},
     None, ["channel 'mqtt'"]),  # no VW_MQTT_URL here
    ({}, {"sms": {"plugin": "http", "settings": {"url": "http://127.0.0.1:9/sms"}}},
     ["channel 'mqtt'", "channel 'pager' (used by contacts.gp"]),
    ({}, {"sms": {"plugin": "no_such_module:factory"},
          "pager": {"plugin": "http", "settings": {"url": "ftp://x"}}},
     ["notifiers.pager: plug-in 'http': settings.url must be an http(s) URL",
      "notifiers.sms: plug-in 'no_such_module:factory': cannot import", "channel 'mqtt'",
      "channel 'pager'", "channel 'sms'"]),
    ({}, {"sms": {"plugin": "not-installed"}},
     ["notifiers.sms: plug-in 'not-installed': no plug-in", "channel 'mqtt'", "channel 'pager'",
      "channel 'sms'"]),
    ({}, {"sms": {"plugin": "tests.alerting.test_notifier_plugins:recording_factory"},
          "pager": {"plugin": "tests.alerting.test_notifier_plugins:recording_factory"}},
     ["channel 'mqtt'"]),
])
def test_check_names_every_channel_without_a_notifier(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], notifiers: dict[str, Any] | None,
        problems: list[str]) -> None:
    for name in ("VW_SMS_PROVIDER_URL", "VW_SMS_PROVIDER_TOKEN", "VW_PAGER_PROVIDER_URL",
                 "VW_PAGER_PROVIDER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    data = _policy_data()
    if notifiers is not None:
        data["notifiers"] = notifiers
    found = cli.check(parse_policy(data), _settings())
    assert found[-1] == ("channel 'mqtt' (used by full-set commands to home hubs) has no "
                         "notifier: set VW_MQTT_URL")
    found = found[:-1]
    assert len(found) == len(problems), found
    for line, expected in zip(found, problems, strict=True):
        assert expected in line
    # With the MQTT URL configured, the mqtt channel is served by the built-in notifier.
    assert not any("channel 'mqtt'" in p
                   for p in cli.check(parse_policy(data), _settings(mqtt_url="mqtt://h:1883")))


class _Recording:
    def __init__(self) -> None:
        self.sent: list[OutboxItem] = []

    def send(self, item: OutboxItem) -> None:
        self.sent.append(item)


def recording_factory(settings: Any) -> _Recording:
    """An import-path plug-in (``module:factory``) for the table above."""
    del settings
    return _Recording()


def _check_policy(path: Path, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VW_")}
    env.update(extra_env)
    return subprocess.run([sys.executable, "-m", "ward.cli", "alerting", "--check-policy",
                           "--policy", str(path)], env=env, capture_output=True, text=True,
                          check=False, timeout=60)


def test_check_policy_command_fails_on_an_undelivered_channel_and_passes_when_served(
        tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(_policy_data()))
    failing = _check_policy(path, {})
    assert failing.returncode == 2
    assert "channel 'pager'" in failing.stdout
    assert "has no notifier" in failing.stdout
    served = _check_policy(path, {
        "VW_SMS_PROVIDER_URL": "http://127.0.0.1:9/sms", "VW_SMS_PROVIDER_TOKEN": "t",
        "VW_PAGER_PROVIDER_URL": "http://127.0.0.1:9/pager", "VW_PAGER_PROVIDER_TOKEN": "t",
        "VW_MQTT_URL": "mqtt://127.0.0.1:1883"})
    assert served.returncode == 0, served.stdout
    assert "every channel has a notifier" in served.stdout
