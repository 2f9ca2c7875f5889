"""Notifiers: the outbox's delivery channels.

* :class:`WebhookNotifier` — POSTs the JSON payload, signed: ``X-VW-Timestamp`` (Unix
  seconds) and ``X-VW-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``
  (the timestamp inside the MAC lets receivers reject replays), plus ``Idempotency-Key``.
  Any non-2xx answer or network error is a failed attempt (retried by the outbox).
* :class:`MqttNotifier` — publishes to the row's topic (``vw/v1/alerts/<patient>/<kind>``) at
  QoS 1 and waits for the broker's PUBACK.
* :class:`DashboardNotifier` — ``NOTIFY vw_events`` with ``{"type": "notification", …}``.
* :class:`HttpProviderNotifier` — the generic SMS/pager provider adapter (plug-in ``http``,
  see :mod:`alerting.plugins`): POSTs ``{"to", "message", "idempotency_key", "alert"}`` as
  JSON with an optional bearer token; 2xx is accepted, anything else is retried by the outbox.
  Other providers plug in through :class:`alerting.outbox.Notifier`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from alerting.outbox import DeliveryError, OutboxItem


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-VW-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def body_of(item: OutboxItem) -> bytes:
    return json.dumps(item.payload, separators=(",", ":"), sort_keys=True).encode()


class WebhookNotifier:
    def __init__(self, secret: bytes, *, timeout: float = 5.0,
                 client: httpx.Client | None = None) -> None:
        if not secret:
            raise ValueError("a webhook signing secret is required")
        self._secret = secret
        self._client = client or httpx.Client(timeout=timeout)

    def send(self, item: OutboxItem) -> None:
        body = body_of(item)
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-VW-Timestamp": stamp,
                   "X-VW-Signature": signature(self._secret, stamp, body),
                   "Idempotency-Key": item.idempotency_key}
        try:
            response = self._client.post(item.recipient, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise DeliveryError(f"HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


def page_text(payload: Mapping[str, Any], max_chars: int) -> str:
    """The text a phone shows: severity, event, summary, patient id — no name, no NHS number."""
    severity = str(payload.get("severity", "")).upper().replace("_", "-")
    text = (f"VW {severity} {payload.get('event', 'alert')}: {payload.get('summary', '')} "
            f"(patient {payload.get('patient_id')}, alert {payload.get('alert_id')})")
    return text if len(text) <= max_chars else text[:max_chars - 1] + "…"


class HttpProviderNotifier:
    """An SMS or pager provider behind an HTTP API; the outbox row's recipient is the number."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 5.0,
                 max_chars: int = 160, client: httpx.Client | None = None) -> None:
        # 160: one GSM-7 SMS segment; pagers show about as much on one screen.
        if max_chars < 20:
            raise ValueError(f"max_chars must be at least 20, got {max_chars}")
        self.url = url
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._max_chars = max_chars
        self._client = client or httpx.Client(timeout=timeout)

    def send(self, item: OutboxItem) -> None:
        body = json.dumps({"to": item.recipient, "message": page_text(item.payload, self._max_chars),
                           "idempotency_key": item.idempotency_key, "alert": dict(item.payload)},
                          separators=(",", ":"), sort_keys=True).encode()
        try:
            response = self._client.post(self.url, content=body, headers={
                **self._headers, "Idempotency-Key": item.idempotency_key})
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise DeliveryError(f"provider answered HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


class MqttNotifier:
    """Publishes outbox rows at QoS 1 over one connection (re-established when lost)."""

    def __init__(self, url: str, *, client_id: str = "vw-alerting-notifier",
                 username: str | None = None, password: str | None = None,
                 timeout: float = 5.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or (8883 if parsed.scheme == "mqtts" else 1883)
        self._timeout = timeout
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if username:
            self._client.username_pw_set(username, password)
        if parsed.scheme == "mqtts":
            self._client.tls_set()
        self._connected = False

    def _connect(self) -> None:
        if self._connected and self._client.is_connected():
            return
        try:
            self._client.connect(self._host, self._port, keepalive=30)
        except OSError as exc:
            raise DeliveryError(f"MQTT connect to {self._host}:{self._port} failed: {exc}") from exc
        self._client.loop_start()
        self._connected = True

    def send(self, item: OutboxItem) -> None:
        self._connect()
        info = self._client.publish(item.recipient, body_of(item), qos=1)
        try:
            info.wait_for_publish(timeout=self._timeout)
        except (RuntimeError, ValueError) as exc:
            raise DeliveryError(f"MQTT publish failed: {exc}") from exc
        if not info.is_published():
            raise DeliveryError(f"MQTT publish to {item.recipient} not acknowledged")

    def close(self) -> None:
        if self._connected:
            self._client.disconnect()
            self._client.loop_stop()
            self._connected = False


class DashboardNotifier:
    """Live dashboard: a ``notification`` event on ``vw_events`` (autocommit connection)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def send(self, item: OutboxItem) -> None:
        payload: dict[str, Any] = {"type": "notification", "outbox_id": item.id,
                                   "alert_id": item.payload.get("alert_id"),
                                   "patient_id": item.payload.get("patient_id"),
                                   "event": item.payload.get("event")}
        try:
            with self._conn.transaction():
                self._conn.execute("SELECT vw_notify(%s)", (json.dumps(payload),))
        except psycopg.Error as exc:
            raise DeliveryError(f"NOTIFY failed: {exc}") from exc
