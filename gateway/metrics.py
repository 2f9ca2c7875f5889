"""Prometheus metrics of one gateway process (served on VW_METRICS_PORT when set).

Created per gateway on its own registry, never at import time, so tests can run several
gateways in one process and read their counters.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Batch sizes from one reading to the 100,000 the settings allow.
_BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 100_000)
# Commit latency: a healthy batch commits in milliseconds; seconds mean trouble.
_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
# measured_at → commit: live readings land under a second; store-and-forward ones hours later.
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0, 3600.0, 86_400.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.received = Counter("vw_gateway_messages_received", "MQTT messages received",
                                ["channel"], registry=r)
        self.accepted = Counter("vw_gateway_readings_accepted",
                                "readings newly stored", registry=r)
        self.duplicates = Counter("vw_gateway_readings_duplicate",
                                  "valid readings already stored (redelivery, resend)",
                                  registry=r)
        self.rejected = Counter("vw_gateway_rejections", "problems found, by reason code",
                                ["reason"], registry=r)
        self.late = Counter("vw_gateway_readings_late", "readings stored and flagged late",
                            registry=r)
        self.batch_size = Histogram("vw_gateway_batch_messages", "messages per batch",
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.commit_seconds = Histogram("vw_gateway_commit_seconds",
                                        "time to write and commit one batch",
                                        buckets=_COMMIT_BUCKETS, registry=r)
        self.lag_seconds = Histogram("vw_gateway_measured_to_commit_seconds",
                                     "measured_at → commit, per stored reading",
                                     buckets=_LAG_BUCKETS, registry=r)
        self.unacked = Gauge("vw_gateway_unacked_messages",
                             "messages received and not yet acknowledged", registry=r)
        self.database_up = Gauge("vw_gateway_database_up", "1 when the last write succeeded",
                                 registry=r)
        self.broker_connected = Gauge("vw_gateway_broker_connected",
                                      "1 while connected to the broker", registry=r)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose /metrics on `port` (0: do nothing)."""
        if port:
            start_http_server(port, addr=host, registry=self.registry)


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """`histogram.observe(a)` for every `a` of `amounts`, with one increment per bucket touched.

    Why: the gateway observes the measured → commit lag of every stored reading, and
    `observe` takes a lock and walks the buckets per value (the batch's `_observe` was ~6 %
    of the gateway's samples under the ingest benchmark, py-spy 2026-12-02). The counts are
    the same; it reads prometheus_client's own bucket fields (`tests/gateway/
    test_metrics_batch.py` compares the exposition with `observe`'s, so an upgrade that
    changes them fails there), and falls back to `observe` where they are missing.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for amount in amounts:
            histogram.observe(amount)
        return
    if not amounts:
        return
    counts = [0] * len(bounds)
    where = bisect.bisect_left
    for amount in amounts:  # the first bucket whose bound is >= amount (the last is +Inf)
        counts[where(bounds, amount)] += 1
    total.inc(sum(amounts))
    for bucket, count in zip(buckets, counts, strict=True):
        if count:
            bucket.inc(count)
