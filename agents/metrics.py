"""Prometheus metrics of the worker: records and time per pipeline stage, latency per message type.

Stages in pipeline order: validation, hydration, normalization, classification (normalizer), consent
update (profile decider), attribution (later), event log (ClickHouse projector) and timeline (Redis
projector). Latency is from the gateway's ``received_at`` to the stage's completion. Each app gets its own
registry, so building two apps in one process (tests) never registers a metric twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

__all__ = ["STAGES", "STAGE_OF_TIME", "PipelineMetrics"]

STAGES = (
    "validation", "hydration", "normalization", "classification",
    "consent_update", "attribution", "event_log", "timeline",
)
# The key an event's ``stage_times`` uses for each stage's completion.
STAGE_OF_TIME = {
    "validated": "validation",
    "hydrated": "hydration",
    "normalized": "normalization",
    "classified": "classification",
    "consent_updated": "consent_update",
}
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800)
_DURATION_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1)


class PipelineMetrics:
    """The worker's stage counters and histograms, in one registry served over HTTP."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.records = Counter(
            "smsfold_stage_records", "Records that finished a pipeline stage, by outcome",
            ["stage", "outcome"], registry=self.registry,
        )
        self.duration = Histogram(
            "smsfold_stage_duration_seconds", "Time spent inside one pipeline stage per record",
            ["stage"], buckets=_DURATION_BUCKETS, registry=self.registry,
        )
        self.latency = Histogram(
            "smsfold_stage_latency_seconds", "Gateway receipt to completion of a stage, by message type",
            ["stage", "message_type"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.vendor_sends = Counter(
            "smsfold_vendor_sends", "Messages handed to a vendor (or refused by it), by company and outcome",
            ["vendor", "company", "outcome"], registry=self.registry,
        )
        self._server: WSGIServer | None = None

    def stage_failed(self, stage: str) -> None:
        self.records.labels(stage, "error").inc()

    def observe_durations(self, durations: Mapping[str, float]) -> None:
        """Seconds spent per stage, keyed by ``stage_times`` names (validated, hydrated, ...)."""
        for key, seconds in durations.items():
            stage = STAGE_OF_TIME.get(key, key)
            self.duration.labels(stage).observe(seconds)
            self.records.labels(stage, "ok").inc()

    def observe_latency(self, received_at: int, stage_times: Mapping[str, int], message_type: str) -> None:
        """Latency from receipt to each recorded stage completion (epoch ms)."""
        for key, done_at in stage_times.items():
            stage = STAGE_OF_TIME.get(key, key)
            self.latency.labels(stage, message_type).observe(max(0, done_at - received_at) / 1000)

    def observe_stage(self, stage: str, items: Iterable[tuple[int, str]], now_ms: int | None = None) -> None:
        """Records (received_at, message_type) that just finished ``stage`` (e.g. the projectors)."""
        now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        for received_at, message_type in items:
            self.records.labels(stage, "ok").inc()
            self.latency.labels(stage, message_type).observe(max(0, now - received_at) / 1000)

    def observe_projected(self, stage: str, events: Sequence[dict[str, Any]]) -> None:
        """Inbound messages that a projector (event log, timeline) just wrote (decoded field dicts)."""
        self.observe_stage(
            stage,
            [(e["received_at"], e["message_type"]) for e in events if e["event_type"] == "InboundReceived"],
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``host:port`` in a background thread."""
        if self._server is None:
            self._server, _ = start_http_server(port, host, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
