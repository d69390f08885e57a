"""The gateway's Prometheus metrics, in a registry of its own (no process-global state).

Every webhook updates three of them, so they are plain counts kept by the event loop (the only thread
that updates or renders them) and turned into metric families when ``/metrics`` is scraped:
prometheus_client's metric objects take a lock and check their state on every update.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

__all__ = ["CONTENT_TYPE", "GatewayMetrics", "SpoolStats"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# (records waiting, bytes, oldest record's age in seconds)
SpoolStats = Callable[[], tuple[int, int, float]]


class LabelledCounter:
    """A counter per combination of label values (any hashable values, rendered with ``str``)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self._counts: dict[tuple[object, ...], float] = {}
        self._created: dict[tuple[object, ...], float] = {}

    def inc(self, labels: tuple[object, ...], amount: float = 1) -> None:
        count = self._counts.get(labels)
        if count is None:
            count = 0
            self._created[labels] = time.time()
        self._counts[labels] = count + amount

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, count in self._counts.items():
            family.add_metric([str(value) for value in labels], count, created=self._created[labels])
        return family


class LoopHistogram:
    """A histogram without labels: one bucket count per upper bound, plus +Inf."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = [float(bound) for bound in buckets]
        # The le labels as prometheus_client writes them (1 as "1.0", infinity as "+Inf").
        self._les = [floatToGoString(bound) for bound in [*self._bounds, float("inf")]]  # type: ignore[no-untyped-call]
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0
        self._created = time.time()

    def observe(self, value: float) -> None:
        # A value equal to a bound belongs to that bound's bucket (le), as in prometheus_client.
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value

    def family(self) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for le, count in zip(self._les, self._counts, strict=True):
            cumulative += count
            buckets.append((le, cumulative))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], buckets, self._sum)
        family.samples.append(Sample(f"{self.name}_created", {}, self._created))
        return family


class _Families(Collector):
    def __init__(self, families: Callable[[], Iterator[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return self._families()


class GatewayMetrics:
    """Requests by vendor/endpoint/status, Kafka ack latency, durability outcomes, spool depth and age."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = LabelledCounter(
            "smsfold_gateway_requests",
            "requests answered, by vendor, endpoint and status",
            ["vendor", "endpoint", "status"],
        )
        self.kafka_ack = LoopHistogram(
            "smsfold_gateway_kafka_ack_seconds",
            "time from publishing a raw record to Kafka's ack",
            ACK_BUCKETS,
        )
        self._outcomes = LabelledCounter(
            "smsfold_gateway_durability",
            "webhook requests by where they became durable (kafka, spool) or rejected",
            ["vendor", "outcome"],
        )
        self._drained = LabelledCounter(
            "smsfold_gateway_spool_forwarded_records", "spooled records the drainer forwarded to Kafka", []
        )
        self._drained.inc((), 0)  # shown from the start, like any counter without labels
        self._spool: SpoolStats | None = None
        self.registry.register(_Families(self._families))

    def observe_spool(self, stats: SpoolStats) -> None:
        self._spool = stats

    def request(self, vendor: str, endpoint: str, status: int) -> None:
        self._requests.inc((vendor, endpoint, status))

    def outcome(self, vendor: str, outcome: str) -> None:
        self._outcomes.inc((vendor, outcome))

    def drained(self, records: int) -> None:
        """``records`` spooled records reached Kafka."""
        self._drained.inc((), records)

    def _families(self) -> Iterator[Metric]:
        yield self._requests.family()
        yield self.kafka_ack.family()
        yield self._outcomes.family()
        yield self._drained.family()
        if self._spool is not None:
            depth, size, age = self._spool()
            yield GaugeMetricFamily(
                "smsfold_gateway_spool_records", "records in the spool, not yet in Kafka", value=depth
            )
            yield GaugeMetricFamily("smsfold_gateway_spool_bytes", "bytes in the spool", value=size)
            yield GaugeMetricFamily(
                "smsfold_gateway_spool_oldest_age_seconds", "age of the oldest spooled record", value=age
            )

    def render(self) -> bytes:
        return generate_latest(self.registry)
