"""The ingest loop: take MQTT messages, decide, store, commit, and only then acknowledge.

One loop per gateway process, on the caller's thread (paho's network thread only fills the
inbox). Per batch (`VW_GATEWAY_BATCH_SIZE` readings or `VW_GATEWAY_BATCH_WAIT_MS`):

    decode (pure) → load unknown devices → plan (pure) → one transaction: COPY readings,
    dead letters, statuses, the batch's patients into `alerting_queue`, NOTIFY vw_events →
    commit → ack every message → publish results.

Alert evaluation is not done here: `vward alerting` (its own process, so its own GIL) takes
the queued patients in the transaction that stores their evaluation (`alerting.evaluator`).
Ingest never waits for it, and a crash of either process loses no evaluation.

Database down: the batch is kept and retried with backoff; nothing is acknowledged, so the
broker stops sending once the Receive Maximum is reached (bounded memory) and keeps the rest
in the session queue. The loop reconnects by itself. A write that fails for any other reason
is retried message by message, and a message that still fails is dead-lettered as
`internal_error` with its raw bytes, so one poison message never stalls the stream.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from itertools import compress

import psycopg

from gateway.contract import Channel, RejectReason, results_topic
from gateway.decode import Decoded, DecodedMessage, Limits, Problem, Rejection, decode
from gateway.directory import DeviceDirectory
from gateway.metrics import GatewayMetrics, observe_many
from gateway.mqtt import Inbound, MqttLink, broker_address
from gateway.pipeline import BatchPlan, Stored, answer, plan_batch, settle
from gateway.relative_times import rebase
from gateway.sink import Conn, write_batch
from ward.db import channels
from ward.db.registry import device_directory
from ward.db.store import ReadingStore
from ward.settings import Settings

log = logging.getLogger(__name__)

# Database reconnect backoff: quick first retry (a failover), then at most every 10 s.
DB_RETRY_MIN_S = 0.5
DB_RETRY_MAX_S = 10.0
# A connection attempt that takes longer than this is treated as a failure and retried.
DB_CONNECT_TIMEOUT_S = 5
# How long the loop waits for a first message before doing housekeeping (notifications).
IDLE_POLL_S = 0.2
_CHANNELS = {c.value for c in Channel}
# Results topics of the devices seen (the device id is checked once, not per result).
_results_topic = functools.lru_cache(maxsize=16_384)(results_topic)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def safe_error(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """The exception's class and first line, with any secret masked (logs never hold them)."""
    text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _reading_count(decoded: Decoded) -> int:
    return len(decoded.readings) if isinstance(decoded, DecodedMessage) else 1


def _secrets_of(settings: Settings) -> list[str]:
    secrets = [settings.database_conninfo()]
    with contextlib.suppress(psycopg.Error):
        password = psycopg.conninfo.conninfo_to_dict(secrets[0]).get("password")
        if password:
            secrets.append(str(password))
    if settings.mqtt_password is not None:
        secrets.append(settings.mqtt_password.get_secret_value())
    return secrets


class SubscriptionRefused(RuntimeError):
    """The broker refused the gateway's SUBSCRIBE (its ACL): the gateway cannot ingest."""


class Gateway:
    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str | None = None,
        ca_file: str | None = None,
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self.clock = clock
        self.limits = Limits(
            max_payload_bytes=settings.gateway_max_payload_bytes,
            future_tolerance=dt.timedelta(seconds=settings.gateway_future_tolerance_s),
            late_after=dt.timedelta(seconds=settings.gateway_late_after_s),
        )
        self.directory = DeviceDirectory()
        self.store = ReadingStore()
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        self.link = MqttLink(
            broker_address(settings.mqtt_url or "mqtt://127.0.0.1:1883",
                           settings.mqtt_username, password),
            client_id=client_id or settings.mqtt_client_id,
            share_group=settings.mqtt_share_group,
            receive_maximum=settings.gateway_receive_maximum,
            session_expiry_s=settings.gateway_session_expiry_s,
            ca_file=ca_file,
            protocol=settings.mqtt_protocol,
        )
        self._conn: Conn | None = None
        self._listen: Conn | None = None
        self._unacked = 0
        # Taken from the inbox but not yet in a batch (the last batch filled up with readings).
        self._carry: list[Inbound] = []
        self._received: collections.Counter[str] = collections.Counter()
        self._secrets = _secrets_of(settings)
        # The broker redelivers to this session for at most its expiry: a pack seen longer ago
        # than that is a new pack (gateway.relative_times).
        self._first_seen_window = dt.timedelta(seconds=settings.gateway_session_expiry_s)

    # database -----------------------------------------------------------------------------

    def _close_db(self) -> None:
        for conn in (self._conn, self._listen):
            if conn is not None:
                with contextlib.suppress(psycopg.Error):  # closing a broken socket
                    conn.close()
        self._conn = self._listen = None
        self.metrics.database_up.set(0)

    def _ensure_db(self) -> Conn:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._close_db()
        conninfo = self.settings.database_conninfo()
        conn = psycopg.connect(conninfo, connect_timeout=DB_CONNECT_TIMEOUT_S,
                               application_name="vw-gateway")
        listen = psycopg.connect(conninfo, autocommit=True, connect_timeout=DB_CONNECT_TIMEOUT_S,
                                 application_name="vw-gateway-listen")
        channels.listen(listen, channels.DEVICES)
        self.directory.replace(device_directory(conn), self.clock())
        conn.commit()
        # The staging tables, once per connection: no round trip per batch for them.
        self.store.prepare_session(conn)
        self._conn, self._listen = conn, listen
        self.metrics.database_up.set(1)
        log.info("database connected devices=%d", len(self.directory))
        return conn

    def _housekeeping(self) -> None:
        """Apply device-change notifications; reload the whole directory when due."""
        if self._listen is None or self._conn is None:
            return
        try:
            changed = [n.payload for n in self._listen.notifies(timeout=0)]
            if changed:
                self.directory.forget(changed)
            now = self.clock()
            if self.directory.refresh_due(now):
                self.directory.replace(device_directory(self._conn), now)
                self._conn.commit()
        except psycopg.OperationalError:
            log.warning("database connection lost during housekeeping; reconnecting")
            self._close_db()

    def _load_missing(self, conn: Conn, batch: Sequence[tuple[Inbound, Decoded]]) -> None:
        now = self.clock()
        ids = [d.device_id for _, d in batch if d.device_id is not None
               and not isinstance(d, Rejection)]
        wanted = self.directory.to_load(ids, now)
        if wanted:
            self.directory.merge(wanted, device_directory(conn, wanted), now)
            conn.commit()

    # the loop -----------------------------------------------------------------------------

    def _decode(self, message: Inbound) -> Decoded:
        channel = message.topic.rsplit("/", 1)[-1]
        self._received[channel if channel in _CHANNELS else "other"] += 1
        try:
            return decode(message.topic, message.payload, message.received_at, self.limits)
        except Exception as exc:  # a decoder bug must not stop the stream
            log.exception("decoder failed topic=%s", message.topic)
            return Rejection(None, None, None, (
                Problem(RejectReason.INTERNAL_ERROR, f"decoder failed: {type(exc).__name__}"),))

    def _take(self, limit: int, timeout: float, *, fill: bool = False) -> list[Inbound]:
        """Up to `limit` messages: first those left over from the last batch, then the inbox
        (`fill`: waiting up to `timeout` for `limit` of them, not just the first)."""
        if self._carry:
            taken, self._carry = self._carry[:limit], self._carry[limit:]
            return taken
        return self.link.take_many(limit, timeout, fill=fill)

    def _collect(self) -> list[tuple[Inbound, Decoded]]:
        limit = self.settings.gateway_batch_size
        try:
            taken = self._take(limit, IDLE_POLL_S)
        except queue.Empty:
            return []
        self._received.clear()
        batch: list[tuple[Inbound, Decoded]] = []
        count = 0
        deadline = time.monotonic() + self.settings.gateway_batch_wait_ms / 1000
        while True:
            for i, message in enumerate(taken):
                if count >= limit:  # a batch of many-reading messages is full: keep the rest
                    self._carry = taken[i:] + self._carry
                    break
                decoded = self._decode(message)
                batch.append((message, decoded))
                count += _reading_count(decoded)
            remaining = deadline - time.monotonic()
            if count >= limit or remaining <= 0:
                break
            try:
                # At most as many messages as readings still fit (a message carries >= 1);
                # woken once when they are there or at the deadline, not once per message.
                taken = self._take(limit - count, remaining, fill=True)
            except queue.Empty:
                break
        for channel, received in self._received.items():  # once per batch, not per message
            self.metrics.received.labels(channel).inc(received)
        return batch

    def _write(self, conn: Conn, batch: Sequence[tuple[Inbound, Decoded]]
               ) -> tuple[BatchPlan, Stored, list[int]]:
        """Plan and commit; on a non-availability error split the batch to isolate poison."""
        self._load_missing(conn, batch)
        # SenML relative times: one resolution base per pack, whichever delivery this is.
        batch = rebase(conn, batch, self.limits, self._first_seen_window)
        plan = plan_batch(
            [(m.topic, m.payload, m.received_at, d) for m, d in batch], self.directory.get)
        try:
            stored, patients = write_batch(conn, self.store, plan,
                                           queue_alerting=self.settings.gateway_alerting)
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            log.exception("batch write failed; retrying its %d messages one by one", len(batch))
            conn.rollback()
            if len(batch) == 1:
                message = batch[0][0]
                poisoned = Rejection(None, None, None, (Problem(
                    RejectReason.INTERNAL_ERROR, "the database refused this message"),))
                plan = plan_batch([(message.topic, message.payload, message.received_at,
                                    poisoned)], self.directory.get)
                stored, patients = write_batch(conn, self.store, plan,
                                               queue_alerting=self.settings.gateway_alerting)
                return plan, stored, patients
            parts = [self._write(conn, [item]) for item in batch]
            return (
                BatchPlan(tuple(r for p in parts for r in p[0].readings),
                          tuple(o for p in parts for o in p[0].outcomes),
                          tuple(d for p in parts for d in p[0].dead_letters),
                          tuple(s for p in parts for s in p[0].statuses)),
                Stored.concat(p[1] for p in parts),
                sorted({pid for p in parts for pid in p[2]}),
            )
        return plan, stored, patients

    def _process(self, batch: list[tuple[Inbound, Decoded]], stop: threading.Event) -> bool:
        """Commit `batch`, then ack and answer; False if stopped before it could commit."""
        self._unacked = len(batch)
        self.metrics.unacked.set(self._unacked)
        delay = DB_RETRY_MIN_S
        while True:
            try:
                conn = self._ensure_db()
                started = time.perf_counter()
                plan, stored, _patients = self._write(conn, batch)
                commit_s = time.perf_counter() - started
                break
            except psycopg.OperationalError as exc:
                self._close_db()
                log.error("database unavailable: %s; holding %d un-acked messages (the broker "
                          "stops sending at %d), retrying in %.1f s",
                          safe_error(exc, self._secrets),
                          len(batch), self.settings.gateway_receive_maximum, delay)
                if stop.wait(delay):
                    return False
                delay = min(delay * 2, DB_RETRY_MAX_S)
        committed_at = self.clock()
        self.link.ack_all([message for message, _ in batch])
        self._unacked = 0
        self.metrics.unacked.set(0)
        plan = settle(plan, stored)  # readings that conflict with stored ones: answered
        self._answer(plan, stored)
        self._observe(plan, stored, len(batch), commit_s, committed_at)
        return True

    def _answer(self, plan: BatchPlan, stored: Stored) -> None:
        qos = self.settings.gateway_results_qos
        problems_only = self.settings.gateway_results == "problems"
        results = [(outcome.device_id, body)
                   for outcome, new in zip(plan.outcomes, stored.outcomes, strict=True)
                   if outcome.answer and outcome.device_id is not None
                   and (body := answer(outcome, new, problems_only=problems_only))
                   is not None]
        if not results:  # a clean batch under `problems`: no burst, so no wake-up to send
            return
        publish = self.link.publish
        with self.link.burst():
            for device_id, body in results:
                publish(_results_topic(device_id), body, qos)

    def _observe(self, plan: BatchPlan, stored: Stored, messages: int, commit_s: float,
                 committed_at: dt.datetime) -> None:
        m = self.metrics
        m.batch_size.observe(messages)
        m.commit_seconds.observe(commit_s)
        m.accepted.inc(stored.count)
        m.duplicates.inc(sum(o.valid for o in plan.outcomes) - stored.count)
        for outcome in plan.outcomes:
            for problem in outcome.problems:
                m.rejected.labels(problem.reason.value).inc()
        new = (plan.readings if stored.count == len(plan.readings)
               else tuple(compress(plan.readings, stored.readings)))
        observe_many(m.lag_seconds, [(committed_at - r.measured_at).total_seconds()
                                     for r in new])
        m.late.inc(sum(r.late for r in new))
        log.debug("batch committed messages=%d readings_new=%d dead_letters=%d commit_ms=%.1f",
                  messages, stored.count, len(plan.dead_letters), commit_s * 1000)

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set; reconnects to the broker and the database by itself.
        Raises `SubscriptionRefused` when the broker refuses a subscription."""
        self.metrics.serve(self.settings.metrics_port)
        delay = DB_RETRY_MIN_S
        while not stop.is_set():
            try:
                self._ensure_db()
                break
            except psycopg.OperationalError as exc:
                log.error("database unavailable at start: %s; retrying in %.1f s",
                          safe_error(exc, self._secrets), delay)
                stop.wait(delay)
                delay = min(delay * 2, DB_RETRY_MAX_S)
        if stop.is_set():
            return
        self.link.start()
        log.info("gateway running share_group=%s batch_size=%d batch_wait_ms=%d",
                 self.settings.mqtt_share_group, self.settings.gateway_batch_size,
                 self.settings.gateway_batch_wait_ms)
        try:
            while not stop.is_set():
                if self.link.subscription_refused is not None:
                    raise SubscriptionRefused(self.link.subscription_refused)
                batch = self._collect()
                if batch and not self._process(batch, stop):
                    break
                self._housekeeping()
        finally:
            self.link.stop()
            self._close_db()
            log.info("gateway stopped")
