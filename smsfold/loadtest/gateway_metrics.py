"""The gateway's own view of a run: Kafka acknowledgement latency and where requests became durable.

Read from the gateway's ``/metrics`` before and after the run; the difference is this run's share.
Quantiles come from the histogram's buckets, so they are upper bounds at bucket resolution.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["GatewaySnapshot", "gateway_delta", "scrape_gateway"]

_ACK = "smsfold_gateway_kafka_ack_seconds"
_DURABILITY = "smsfold_gateway_durability"


@dataclass
class GatewaySnapshot:
    """Cumulative counters of one scrape."""

    ack_buckets: dict[float, float] = field(default_factory=dict)
    ack_count: float = 0.0
    ack_sum: float = 0.0
    durability: dict[str, float] = field(default_factory=dict)


def scrape_gateway(base_url: str, timeout_s: float = 5.0) -> GatewaySnapshot | None:
    """One scrape of ``/metrics``; None when the gateway does not answer."""
    try:
        with urllib.request.urlopen(base_url + "/metrics", timeout=timeout_s) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    snap = GatewaySnapshot()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{_ACK}_bucket":
                bound = float(sample.labels["le"])
                snap.ack_buckets[bound] = snap.ack_buckets.get(bound, 0.0) + sample.value
            elif sample.name == f"{_ACK}_count":
                snap.ack_count += sample.value
            elif sample.name == f"{_ACK}_sum":
                snap.ack_sum += sample.value
            elif sample.name == f"{_DURABILITY}_total":
                outcome = sample.labels.get("outcome", "")
                snap.durability[outcome] = snap.durability.get(outcome, 0.0) + sample.value
    return snap


def _quantile(buckets: dict[float, float], count: float, q: float) -> float:
    if count <= 0:
        return 0.0
    for bound in sorted(buckets):
        if buckets[bound] >= q * count:
            return bound
    return float("inf")


def gateway_delta(before: GatewaySnapshot | None, after: GatewaySnapshot | None) -> dict[str, object] | None:
    """This run's Kafka-ack latency (ms, bucket upper bounds) and durability outcomes."""
    if before is None or after is None:
        return None
    count = after.ack_count - before.ack_count
    buckets = {b: after.ack_buckets.get(b, 0.0) - before.ack_buckets.get(b, 0.0) for b in after.ack_buckets}
    return {
        "kafka_acks": int(count),
        "kafka_ack_mean_ms": (after.ack_sum - before.ack_sum) / count * 1000 if count > 0 else 0.0,
        "kafka_ack_p50_ms_at_most": _quantile(buckets, count, 0.50) * 1000,
        "kafka_ack_p99_ms_at_most": _quantile(buckets, count, 0.99) * 1000,
        "durable_by": {
            k: int(v - before.durability.get(k, 0.0)) for k, v in sorted(after.durability.items())
        },
    }
