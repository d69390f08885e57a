"""ClickHouse read model: the ``events`` table, written in batches.

Inserts are plain INSERTs of whole batches into ``events``; materialized views fan each block out to
the analytics tables. Exactness under redelivery comes from the table design (ReplacingMergeTree keyed
by event_id everywhere, rollups read with FINAL; see migrations/), not from the writer.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

import orjson
from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException, TooLargeStringSize, TypeMismatchError

from config.settings import ClickHouseSettings
from streams.events import Event

__all__ = ["ENVELOPE_FIELDS", "ClickHouseSink", "clickhouse_client"]

ENVELOPE_FIELDS = frozenset(Event.model_fields) | {"event_type"}
_INSERT = "INSERT INTO events ({}) VALUES"
# Server error codes caused by the inserted values themselves (a parse, type or range error): retrying the
# same rows cannot help. Everything else (network, unknown database/table, too many parts, memory) is
# the store's state and is retried.
_DATA_ERROR_CODES = frozenset((6, 27, 38, 41, 53, 69, 70, 72, 117, 131, 321))
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


class ClickHouseSink:
    """The projector's sink: one columnar INSERT into ``events`` per batch of decoded event dicts."""

    def __init__(self, ch: ClickHouseSettings) -> None:
        self._ch = ch
        self._client: Client | None = None
        self._dates: dict[int, dt.date] = {}
        self._query = _INSERT.format(", ".join(_COLUMNS))

    def _date(self, epoch_ms: int) -> dt.date:
        day = epoch_ms // 86_400_000
        date = self._dates.get(day)
        if date is None:
            date = self._dates[day] = dt.date(1970, 1, 1) + dt.timedelta(days=day)
        return date

    def columns(self, events: Sequence[dict[str, Any]], projected_at: int) -> list[list[Any]]:
        """The batch as ``events`` columns, in :data:`_COLUMNS` order."""
        dumps, sort_keys = orjson.dumps, orjson.OPT_SORT_KEYS
        envelope = ENVELOPE_FIELDS
        cols: list[list[Any]] = [[] for _ in _COLUMNS]
        (event_id, event_type, company_id, profile, occurred_at, received_at, projected, event_date,
         causation_id, message_id, flow_id, campaign_id, payload) = cols
        for e in events:
            event_id.append(e["event_id"])
            event_type.append(e["event_type"])
            company_id.append(e["company_id"])
            profile.append(e["profile_key"])
            occurred_at.append(e["occurred_at"])
            received_at.append(e["received_at"])
            projected.append(projected_at)
            event_date.append(self._date(e["occurred_at"]))
            causation_id.append(e.get("causation_id") or "")
            message_id.append(e.get("message_id") or "")
            flow_id.append(e.get("flow_id") or "")
            campaign_id.append(e.get("campaign_id") or "")
            fields = {k: v for k, v in e.items() if k not in envelope and v.__class__ is not bytes}
            payload.append(dumps(fields, option=sort_keys).decode())
        return cols

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        """Insert a batch; raises on failure so the runner retries the same batch."""
        if not events:
            return
        cols = self.columns(events, int(time.time() * 1000))
        if self._client is None:
            self._client = clickhouse_client(self._ch)
        try:
            self._client.execute(self._query, cols, columnar=True)
        except Exception:
            # Drop the connection so the retry starts from a clean one.
            self._client.disconnect()
            self._client = None
            raise

    def refused_for_good(self, exc: Exception) -> bool:
        """A data error (the server's, or the driver's while encoding a value), not an outage."""
        if isinstance(exc, ServerException):
            return exc.code in _DATA_ERROR_CODES
        return isinstance(exc, (TypeMismatchError, TooLargeStringSize, TypeError, ValueError, OverflowError))

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client = None
