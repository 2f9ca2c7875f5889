"""`observe_many` counts exactly what `Histogram.observe` per value counts (issue 14)."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Histogram

from gateway.metrics import _LAG_BUCKETS, GatewayMetrics, observe_many


def _samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    """Every sample but `_created` (the instant each histogram was made)."""
    return [(s.name, s.labels, s.value) for metric in registry.collect()
            for s in metric.samples if not s.name.endswith("_created")]


def _histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("lag", "lag", buckets=_LAG_BUCKETS, registry=registry)


def test_observe_many_exposes_what_observe_does() -> None:
    # On the bounds, between, below the first, past the last, negative (a clock ahead).
    amounts = [0.0, 0.01, 0.011, 0.3, 1.0, 2.5, 2.6, 86_400.0, 1e9, -3.0, 0.05, 0.05, 7.5]
    one_registry, one = _histogram()
    for amount in amounts:
        one.observe(amount)
    many_registry, many = _histogram()
    observe_many(many, amounts[:5])
    observe_many(many, [])
    observe_many(many, amounts[5:])
    assert _samples(many_registry) == _samples(one_registry)
    count = many_registry.get_sample_value("lag_count")
    assert count == len(amounts)
    assert math.isclose(many_registry.get_sample_value("lag_sum") or 0, sum(amounts))


def test_the_gateway_s_lag_histogram_takes_it() -> None:
    metrics = GatewayMetrics()
    observe_many(metrics.lag_seconds, [0.2, 700.0])
    value = metrics.registry.get_sample_value
    assert value("vw_gateway_measured_to_commit_seconds_bucket", {"le": "0.25"}) == 1
    assert value("vw_gateway_measured_to_commit_seconds_bucket", {"le": "3600.0"}) == 2
