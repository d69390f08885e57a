"""What the Avro types cannot say about an event: checked by projectors and deciders alike, so both
sides agree on what is poison (dead-lettered by the ClickHouse projector, skipped by everyone else)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["event_problem"]


def event_problem(kind: str, event: Mapping[str, Any]) -> str:
    """Why an event of record type ``kind`` cannot be folded, or "" when it can: its type matches the
    record, it has an id, and its profile belongs to its company."""
    if event["event_type"] != kind:
        return f"{kind}.event_type is {event['event_type']!r}"
    if not event["event_id"]:
        return f"{kind}.event_id is empty"
    company = event["company_id"]
    if not company or not event["profile_key"].startswith(company + ":"):
        return f"{kind}.profile_key {event['profile_key']!r} is not of company {company!r}"
    return ""
