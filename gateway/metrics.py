"""The gateway's Prometheus metrics, in a registry of its own (no process-global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "GatewayMetrics", "SpoolStats"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (records waiting, bytes, oldest record's age in seconds)
SpoolStats = Callable[[], tuple[int, int, float]]


class _SpoolCollector(Collector):
    def __init__(self, stats: SpoolStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth, size, age = self._stats()
        yield GaugeMetricFamily(
            "smsfold_gateway_spool_records", "records in the spool, not yet in Kafka", value=depth
        )
        yield GaugeMetricFamily("smsfold_gateway_spool_bytes", "bytes in the spool", value=size)
        yield GaugeMetricFamily(
            "smsfold_gateway_spool_oldest_age_seconds", "age of the oldest spooled record", value=age
        )


class GatewayMetrics:
    """Requests by vendor/endpoint/status, Kafka ack latency, durability outcomes, spool depth and age."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "smsfold_gateway_requests",
            "requests answered, by vendor, endpoint and status",
            ["vendor", "endpoint", "status"],
            registry=self.registry,
        )
        self.kafka_ack = Histogram(
            "smsfold_gateway_kafka_ack_seconds",
            "time from publishing a raw record to Kafka's ack",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.outcomes = Counter(
            "smsfold_gateway_durability",
            "webhook requests by where they became durable (kafka, spool) or rejected",
            ["vendor", "outcome"],
            registry=self.registry,
        )
        self.drained = Counter(
            "smsfold_gateway_spool_forwarded_records",
            "spooled records the drainer forwarded to Kafka",
            registry=self.registry,
        )

        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._outcome_children: dict[tuple[str, str], Counter] = {}

    def observe_spool(self, stats: SpoolStats) -> None:
        self.registry.register(_SpoolCollector(stats))

    def request(self, vendor: str, endpoint: str, status: int) -> None:
        # labels() takes a lock and builds a key on every call: keep the children (a few dozen at most).
        key = (vendor, endpoint, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(vendor, endpoint, str(status))
        child.inc()

    def outcome(self, vendor: str, outcome: str) -> None:
        key = (vendor, outcome)
        child = self._outcome_children.get(key)
        if child is None:
            child = self._outcome_children[key] = self.outcomes.labels(vendor, outcome)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
