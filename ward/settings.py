"""Configuration: every `VW_…` environment variable, read once into one typed object.

Read once at start-up (`Settings.from_env()`) and passed down; nothing here runs at import
time. An invalid value fails loudly with the variable's name, never with a silent default.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "VW_"


class SettingsError(ValueError):
    """A `VW_…` variable holds a value we cannot use; the message names the variable."""


class Settings(BaseSettings):
    """All tunables of one virtualward process."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # None means "not configured": `vward demo` then starts an embedded PostgreSQL; every
    # other command falls back to the machine's local server (`default_database_url`).
    database_url: SecretStr | None = None
    # None likewise makes the demo start its own broker.
    mqtt_url: str | None = None
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    # Prefix of the gateway's shared subscription group; several gateway processes with the
    # same group split the devices' messages between them (MQTT 5 `$share/…`).
    mqtt_share_group: str = "vw-gateway"
    mqtt_client_id: str = "vw-gateway-1"
    # MQTT protocol of the gateway and the simulators. "5" asks the broker for a Receive
    # Maximum, a session expiry and reason codes; "3.1.1" is what every broker speaks (amqtt,
    # NATS, RabbitMQ 3.x) and is cheaper per message, but then the broker's own in-flight
    # limit (Mosquitto's max_inflight_messages) bounds un-acked messages, the session never
    # expires, and SUBACK/PUBACK carry no reasons (docs/mqtt.md).
    mqtt_protocol: Literal["3.1.1", "5"] = "5"

    display_timezone: str = "Europe/London"
    # Hub hours (Europe/London wall clock): outside them escalations take the out-of-hours
    # route and low findings never page. None keeps the escalation policy's `hub_hours`
    # (08:00–20:00 in the shipped policy, as in most services: NHS England framework).
    hub_opens: dt.time | None = None
    hub_closes: dt.time | None = None
    hub_host: str = "127.0.0.1"
    hub_port: Annotated[int, Field(ge=1, le=65535)] = 8000
    # Capacity of the ward in beds (one hospital-at-home hub runs about 200 patients at once).
    ward_beds: Annotated[int, Field(ge=1)] = 200
    # Signing secret for session tokens; the demo generates one when it is not set.
    secret_key: SecretStr | None = None

    # Gateway batching: 500 readings or 50 ms, whichever first. Batches of ~1,000 rows reach
    # ~54,000 rows/s in COPY here; 50 ms keeps p99 publish→commit far under 250 ms.
    gateway_batch_size: Annotated[int, Field(ge=1, le=100_000)] = 500
    gateway_batch_wait_ms: Annotated[int, Field(ge=1, le=10_000)] = 50
    # 64 KiB is generous for a batch of a few hundred store-and-forward readings; anything
    # larger from a home device is a fault or an attack.
    gateway_max_payload_bytes: Annotated[int, Field(ge=256)] = 65_536
    # Device clocks drift; a reading dated more than 5 minutes ahead is a clock error.
    gateway_future_tolerance_s: Annotated[int, Field(ge=0)] = 300
    # A reading measured more than 10 minutes before it arrives is store-and-forward: "late".
    gateway_late_after_s: Annotated[int, Field(ge=0)] = 600
    # MQTT 5 Receive Maximum the gateway asks for: the broker never has more un-acknowledged
    # QoS 1 messages in flight to one gateway process. Acks come after commit, so this is the
    # gateway's whole un-acked buffer: it bounds memory when the database is down (2,000 ×
    # 64 KiB worst case; ~0.5 MB of typical messages) and is ≥ rate × commit latency
    # (10,000 msg/s × ~0.1 s) so it does not throttle a healthy gateway.
    gateway_receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 2000
    # The broker keeps the gateway's session (subscriptions, queued and un-acked messages)
    # this long after it disconnects: a day covers a night's outage of the gateway host.
    gateway_session_expiry_s: Annotated[int, Field(ge=0)] = 86_400
    # Results are advisory (the PUBACK after commit is the durable acknowledgement); QoS 1
    # lets a device with a persistent session read its answer after a reconnect.
    gateway_results_qos: Annotated[int, Field(ge=0, le=1)] = 1
    # Which messages get a result: "problems" (the default: only rejected, partial and
    # duplicate ones; a clean accept is said by the PUBACK, sent only after the commit) or
    # "all" (every readings message, for integrators who want an explicit acceptance). One
    # QoS 1 result per message was most of the gateway's per-message MQTT work, and at 20 in
    # flight the broker could not take them as fast as they came: over 60,000 messages paho
    # queued 20,000 (+41 MiB RSS) and dropped 38,107 (measured, gateway/mqtt.py).
    gateway_results: Literal["all", "problems"] = "problems"
    # Queue the patients of each committed batch for alert evaluation (`alerting_queue`, in
    # the ingest transaction); `vward alerting` evaluates them in its own process.
    gateway_alerting: bool = True
    # The OS scheduling priority (nice, 0-19) `vward alerting` lowers itself to: alert
    # evaluation is work-conserving (a pass follows a pass while patients are queued) and on a
    # busy host took the CPU ingest needed, while ingest falling behind delays every alert
    # too (an unstored reading is evaluated by no one). Lowered, evaluation yields only while
    # the CPU is contended, and then coalesces more (alerting.pass_plan). Measured in one
    # bench_ingest invocation (2 cores, 40,000 msgs, alerting on): gateway 4,676 → 5,849
    # msgs/s at nice 10, the queue still empty 1.7 s after the last row (issue 14).
    # 0 leaves the priority alone.
    alerting_nice: Annotated[int, Field(ge=0, le=19)] = 10
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 0

    # Hub sign-in: a browser session lasts one 12-hour nursing shift, then asks again; bearer
    # tokens for integrations live 1 hour (short, because they are harder to revoke by hand).
    hub_session_ttl_s: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 12 * 3600
    hub_token_ttl_s: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 3600
    # Mark the session cookie `Secure` (HTTPS only). Off by default because the demo and the
    # tests serve plain HTTP on 127.0.0.1; turn it on behind TLS.
    hub_cookie_secure: bool = False
    # Create the demo users (nurse/nurse, admin/admin) when the users table is empty. Only
    # `vward demo` sets this; never in production.
    demo_users: bool = False
    # Database connections per hub process: sync endpoints run in a threadpool of 40, but
    # most requests hold a connection for a few milliseconds, so 10 serve a busy hub.
    hub_pool_size: Annotated[int, Field(ge=1, le=200)] = 10
    # Largest request body a hub route accepts by default (the log-in routes take less; see
    # ward/hub/limits.py): every JSON or form body the hub takes is a few KiB.
    hub_max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    # Origins (scheme://host[:port], comma-separated) a cookie-authenticated change may come
    # from besides the hub's own (its Host header); set the public https origin when a
    # TLS-terminating proxy sits in front. See ward/hub/csrf.py.
    hub_allowed_origins: str = ""

    log_level: str = "INFO"
    # "text": logfmt-style lines for a person at a terminal; "json": one JSON object a line
    # for a log collector, with device/patient/batch/reason as their own fields.
    log_format: Literal["text", "json"] = "text"

    # Escalation policy YAML for `vward alerting` (and the runner's default); None means the
    # packaged alerting/policies/default.yaml (also deploy/escalation/default.yaml), which
    # suits a demo, not a real hub.
    escalation_policy: str | None = None

    @field_validator("display_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            msg = f"unknown time zone {value!r}"
            raise ValueError(msg) from exc
        return value

    @field_validator("mqtt_protocol", mode="before")
    @classmethod
    def _protocol_spelling(cls, value: object) -> object:
        # "5.0", "v5" and "311" are how operators write it in other brokers' configs.
        aliases = {"5.0": "5", "v5": "5", "mqttv5": "5", "3": "3.1.1", "311": "3.1.1",
                   "v3.1.1": "3.1.1", "mqttv311": "3.1.1"}
        if isinstance(value, str):
            return aliases.get(value.strip().lower(), value.strip())
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("mqtt://", "mqtts://")):
            msg = f"must start with mqtt:// or mqtts://, got {value!r}"
            raise ValueError(msg)
        return value

    @field_validator("database_url")
    @classmethod
    def _pg_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            msg = "must start with postgresql:// (value not shown: it may hold a password)"
            raise ValueError(msg)
        return value

    @classmethod
    def from_env(cls) -> Settings:
        """Read the environment once; raise `SettingsError` naming the bad variable."""
        try:
            return cls()
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                field = str(err["loc"][0]) if err["loc"] else "?"
                problems.append(f"{ENV_PREFIX}{field.upper()}: {err['msg']}")
            raise SettingsError("invalid configuration: " + "; ".join(problems)) from exc

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.display_timezone)

    def database_conninfo(self) -> str:
        """The database URL, falling back to the machine's local server."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return default_database_url()


def default_database_url() -> str:
    """The local PostgreSQL these machines run (trust auth, database `test`)."""
    return "postgresql://postgres@127.0.0.1:5432/test"
