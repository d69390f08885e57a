"""Read what the system itself recorded: end-to-end latency per type and the exactly-once verdict.

Latency is the pipeline's own: the gateway's receipt time (``received_at``) to the time the ClickHouse
projector wrote the event (``projected_at``), both recorded on the event's row, not the client's view.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from clickhouse_driver import Client

from smsfold.loadtest.runner import SendResult

__all__ = ["HOPS", "Projected", "Verdict", "fetch_hops", "fetch_projected", "percentile", "verify",
           "wait_for_projection"]


@dataclass(frozen=True, slots=True)
class Projected:
    """One projected inbound message (first projection of each distinct event id)."""

    message_id: str
    event_ids: frozenset[str]
    message_type: str
    received_at_ms: int
    projected_at_ms: int

    @property
    def latency_ms(self) -> int:
        return self.projected_at_ms - self.received_at_ms


@dataclass
class Verdict:
    """Every acknowledged message must appear exactly once, as the type it was sent as."""

    per_type: dict[str, dict[str, int]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    misclassified: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.missing or self.doubled or self.misclassified)


_QUERY = """
SELECT visitParamExtractString(payload, 'vendor_message_id') AS mid, event_id,
       any(visitParamExtractString(payload, 'message_type')), min(received_at), min(projected_at)
FROM events
WHERE event_type = 'InboundReceived' AND company_id IN %(companies)s AND received_at >= %(since)s
GROUP BY mid, event_id
"""


def fetch_projected(client: Client, companies: Sequence[str], since_ms: int) -> dict[str, Projected]:
    """Projected inbound messages of these companies since a time, by vendor message id."""
    rows = client.execute(_QUERY, {"companies": tuple(companies), "since": since_ms})
    by_mid: dict[str, list[tuple[str, str, int, int]]] = defaultdict(list)
    for mid, event_id, message_type, received_at, projected_at in rows:
        by_mid[mid].append((event_id, message_type, received_at, projected_at))
    out: dict[str, Projected] = {}
    for mid, items in by_mid.items():
        first = min(items, key=lambda item: item[3])
        out[mid] = Projected(mid, frozenset(i[0] for i in items), first[1], first[2], first[3])
    return out


_HOPS_QUERY = """
SELECT min(received_at), min(projected_at), any(visitParamExtractRaw(payload, 'stage_times'))
FROM events
WHERE event_type = 'InboundReceived' AND company_id IN %(companies)s AND received_at >= %(since)s
GROUP BY event_id
"""
# Where an inbound message's end-to-end latency goes, from the times it carries: gateway receipt →
# normalizer done validating it (the raw topic's hop: Kafka ack, fetch, batch wait) → normalizer done
# classifying it → projected into ClickHouse (sms.events hop and the projector's batch window).
HOPS = ("to_normalizer", "in_normalizer", "to_clickhouse")


def fetch_hops(client: Client, companies: Sequence[str], since_ms: int) -> dict[str, list[float]]:
    """Each hop's latencies (ms) of the inbound messages projected since a time."""
    hops: dict[str, list[float]] = {hop: [] for hop in HOPS}
    for received_at, projected_at, stage_json in client.execute(
        _HOPS_QUERY, {"companies": tuple(companies), "since": since_ms}
    ):
        stages = json.loads(stage_json or "{}")
        validated, classified = stages.get("validated"), stages.get("classified")
        if validated is None or classified is None:
            continue
        hops["to_normalizer"].append(float(validated - received_at))
        hops["in_normalizer"].append(float(classified - validated))
        hops["to_clickhouse"].append(float(projected_at - classified))
    return hops


def wait_for_projection(
    fetch: Callable[[], dict[str, Projected]],
    expected: set[str],
    timeout_s: float,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Projected]:
    """Poll until every expected id is projected, or nothing new arrived for ``timeout_s``."""
    last_count, last_change = -1, time.monotonic()
    while True:
        projected = fetch()
        count = len(expected & projected.keys())
        if on_progress:
            on_progress(count, len(expected))
        if count == len(expected):
            return projected
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > timeout_s:
            return projected
        time.sleep(0.5)


def verify(results: Sequence[SendResult], projected: dict[str, Projected]) -> Verdict:
    """Compare what the gateway acknowledged with what the projections hold."""
    verdict = Verdict()
    for r in results:
        if not r.acknowledged:
            continue
        counts = verdict.per_type.setdefault(
            r.message.message_type, {"acknowledged": 0, "projected": 0, "missing": 0, "doubled": 0}
        )
        counts["acknowledged"] += 1
        got = projected.get(r.message.message_id)
        if got is None:
            counts["missing"] += 1
            verdict.missing.append(r.message.message_id)
            continue
        counts["projected"] += 1
        if len(got.event_ids) > 1:
            counts["doubled"] += 1
            verdict.doubled.append(r.message.message_id)
        if got.message_type != r.message.message_type:
            verdict.misclassified.append((r.message.message_id, r.message.message_type, got.message_type))
    return verdict


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return float(ordered[rank])
