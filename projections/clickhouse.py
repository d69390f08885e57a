"""ClickHouse read model: the ``events`` table, written in batches.

Inserts are plain INSERTs of whole batches; exactness under redelivery comes from the table design
(ReplacingMergeTree keyed by event_id, see migrations/001_events.sql), not from the writer.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from typing import Any

from clickhouse_driver import Client

from config.settings import ClickHouseSettings
from streams.events import Event

__all__ = ["ENVELOPE_FIELDS", "ClickHouseEventWriter", "clickhouse_client", "event_row"]

ENVELOPE_FIELDS = frozenset(Event.model_fields) | {"event_type"}
_COLUMNS = (
    "event_id", "event_type", "company_id", "profile_key", "occurred_at", "received_at", "projected_at",
    "event_date", "causation_id", "message_id", "flow_id", "campaign_id", "payload",
)


def clickhouse_client(ch: ClickHouseSettings, database: str | None = None) -> Client:
    """A native-protocol client; values are always passed as parameters, never formatted into SQL."""
    return Client(
        host=ch.host,
        port=ch.port,
        user=ch.user,
        password=ch.password.get_secret_value(),
        database=database if database is not None else ch.database,
        connect_timeout=3,
        send_receive_timeout=30,
        settings={"allow_experimental_low_cardinality_type": 1},
    )


def event_row(event: Event, projected_at: int) -> tuple[Any, ...]:
    """One ``events`` row: the envelope as columns, the event-specific fields as a JSON payload."""
    payload = {k: v for k, v in event.model_dump().items() if k not in ENVELOPE_FIELDS}
    return (
        event.event_id,
        event.event_type,
        event.company_id,
        event.profile_key,
        event.occurred_at,
        event.received_at,
        projected_at,
        dt.datetime.fromtimestamp(event.occurred_at / 1000, tz=dt.UTC).date(),
        event.causation_id or "",
        event.message_id or "",
        event.flow_id or "",
        event.campaign_id or "",
        json.dumps(payload, separators=(",", ":"), sort_keys=True),
    )


class ClickHouseEventWriter:
    """Writes batches of events to the ``events`` table; one INSERT per batch."""

    def __init__(self, ch: ClickHouseSettings) -> None:
        self._ch = ch
        self._client: Client | None = None

    def write(self, events: Sequence[Event]) -> None:
        """Insert a batch; raises on failure so the caller retries the same batch."""
        if not events:
            return
        now = int(time.time() * 1000)
        rows = [event_row(e, now) for e in events]
        if self._client is None:
            self._client = clickhouse_client(self._ch)
        try:
            self._client.execute(f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES", rows)
        except Exception:
            # Drop the connection so the retry starts from a clean one.
            self._client.disconnect()
            self._client = None
            raise

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client = None
