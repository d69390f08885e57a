"""Processing latency by message type (the seed's Grafana panel), projected from the ``events`` table.

Every InboundReceived row carries the gateway's ``received_at``, the epoch ms at which each normalizer
stage finished (``stage_times`` in its JSON payload) and ``projected_at`` (when the event log row was
written). Runs on ClickHouse 18.16: visitParamExtract* finds the stage keys inside the payload.
"""

from __future__ import annotations

from dataclasses import dataclass

from clickhouse_driver import Client

__all__ = ["StageLatency", "latency_by_message_type"]

# Stage name -> SQL for its completion time (epoch ms) in an InboundReceived row.
_STAGE_SQL = {
    "normalized": "visitParamExtractUInt(payload, 'classified')",
    "event_log": "projected_at",
}


@dataclass(frozen=True, slots=True)
class StageLatency:
    """Latency from gateway receipt to a stage's completion for one message type, in milliseconds."""

    message_type: str
    stage: str
    messages: int
    p50_ms: float
    p95_ms: float
    max_ms: int


def latency_by_message_type(
    client: Client, company_id: str | None = None, since_ms: int = 0
) -> list[StageLatency]:
    """p50/p95/max receipt-to-stage latency per message type, each message counted once."""
    out: list[StageLatency] = []
    for stage, done_at in _STAGE_SQL.items():
        rows = client.execute(
            f"""
            SELECT message_type, count(), quantiles(0.5, 0.95)(latency), max(latency)
            FROM (
                SELECT visitParamExtractString(payload, 'message_type') AS message_type,
                       toInt64({done_at}) - toInt64(received_at) AS latency
                FROM events FINAL
                WHERE event_type = 'InboundReceived' AND received_at >= %(since)s
                  AND (%(company)s = '' OR company_id = %(company)s)
            )
            WHERE latency >= 0
            GROUP BY message_type
            ORDER BY message_type
            """,
            {"since": since_ms, "company": company_id or ""},
        )
        for message_type, count, (p50, p95), max_latency in rows:
            out.append(StageLatency(str(message_type), stage, int(count), float(p50), float(p95),
                                    int(max_latency)))
    return out
