"""The broker's control API: create and re-key clients of Mosquitto's dynamic-security plugin
while the broker runs (request on `$CONTROL/dynamic-security/v1`, answer on `…/response`).

A thin adapter: the commands are built in `gateway.dynsec`; this module only connects as the
broker admin, sends them and waits for the matching answers. Secrets travel inside the MQTT
payload, so connect over TLS or the broker host's loopback listener, never in clear over a
network. The admin credential comes from the file `vward broker setup` wrote (`admin.env`).
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway import dynsec
from gateway.mqtt import broker_address

Json = dict[str, Any]

# The plugin answers in milliseconds; 10 s covers a loaded broker and a slow TLS handshake.
TIMEOUT_S = 10.0


class BrokerAdminError(RuntimeError):
    """The broker refused the admin or a command, or did not answer in time."""


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=value` lines (the systemd EnvironmentFile form `vward broker setup` writes)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values


class BrokerAdmin:
    """`with BrokerAdmin(url, user, password) as admin: admin.call([...])`."""

    def __init__(self, url: str, username: str, password: str, *,
                 ca_file: str | None = None, timeout: float = TIMEOUT_S) -> None:
        self.address = broker_address(url, username, password)
        self.ca_file = ca_file
        self.timeout = timeout
        self._client: paho.Client | None = None
        self._answers: dict[str, Json] = {}
        self._arrived = threading.Condition()

    @classmethod
    def from_env_file(cls, path: Path, url: str | None = None, *,
                      ca_file: str | None = None) -> BrokerAdmin:
        env = read_env_file(path)
        try:
            return cls(url or env["VW_MQTT_URL"], env["VW_MQTT_USERNAME"],
                       env["VW_MQTT_PASSWORD"], ca_file=ca_file or env.get("VW_MQTT_CA_FILE"))
        except KeyError as exc:
            msg = f"{path} has no {exc.args[0]}"
            raise BrokerAdminError(msg) from None

    def __enter__(self) -> BrokerAdmin:
        client = paho.Client(CallbackAPIVersion.VERSION2,
                             client_id=f"{dynsec.ADMIN_USERNAME}-{uuid.uuid4().hex[:8]}",
                             protocol=MQTTProtocolVersion.MQTTv5)
        client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            client.tls_set(ca_certs=self.ca_file)
        ready = threading.Event()
        refused: list[str] = []

        def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                refused.append(str(reason))
                ready.set()
            else:
                client.subscribe(dynsec.RESPONSE_TOPIC, qos=1)

        def on_subscribe(_c: Any, _u: Any, _mid: Any, reasons: Any, _p: Any) -> None:
            if any(r.is_failure for r in reasons):
                refused.append(f"subscription to {dynsec.RESPONSE_TOPIC}: {reasons[0]}")
            ready.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = self._on_message
        try:
            client.connect(self.address.host, self.address.port)
        except OSError as exc:
            msg = f"cannot reach the broker at {self.address.safe}: {exc}"
            raise BrokerAdminError(msg) from exc
        client.loop_start()
        if not ready.wait(self.timeout) or refused:
            client.loop_stop()
            why = refused[0] if refused else "no answer"
            msg = f"broker at {self.address.safe} refused the admin: {why}"
            raise BrokerAdminError(msg)
        self._client = client
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        try:
            answers = json.loads(message.payload).get("responses", [])
        except (ValueError, AttributeError):
            return
        with self._arrived:
            for answer in answers:
                if isinstance(answer, dict) and "correlationData" in answer:
                    self._answers[str(answer["correlationData"])] = answer
            self._arrived.notify_all()

    def call(self, commands: list[Json], *, tolerate: frozenset[str] = frozenset()) -> list[Json]:
        """Send `commands`; their answers in order. An answer with an error raises, unless the
        error text is in `tolerate` (e.g. "Client not found" for a look-up)."""
        if self._client is None:
            msg = "BrokerAdmin is not connected (use it as a context manager)"
            raise BrokerAdminError(msg)
        keys = [uuid.uuid4().hex for _ in commands]
        tagged = [{**cmd, "correlationData": key} for cmd, key in zip(commands, keys, strict=True)]
        self._client.publish(dynsec.CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
        with self._arrived:
            if not self._arrived.wait_for(lambda: all(k in self._answers for k in keys),
                                          self.timeout):
                msg = f"the broker did not answer {[c['command'] for c in commands]}"
                raise BrokerAdminError(msg)
            answers = [self._answers.pop(k) for k in keys]
        for cmd, answer in zip(commands, answers, strict=True):
            error = answer.get("error")
            if error and error not in tolerate:
                msg = f"broker refused {cmd['command']}: {error}"
                raise BrokerAdminError(msg)
        return answers
