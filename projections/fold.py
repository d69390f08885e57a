"""The in-process fold of ``sms.events``: what every projection must equal, computed in plain Python.

Used by the verifier tests (and replay checks): fold the topic's events here, read the projection back
from its store, compare field by field. Pure functions over event dicts, duplicates included.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from projections.conversation import CONVERSATION_KEEP, conversation_entry, is_conversation
from projections.links import encode_link, link_from_event
from projections.message_status import status_of
from projections.redis_store import timeline_entry
from streams.statuses import delivery_outcome, status_rank

__all__ = ["FoldedRedis", "fold_message_stats", "fold_redis", "unique_events"]


def unique_events(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Events by id, first delivery kept: duplicates carry the same id and the same content."""
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        out.setdefault(e["event_id"], e)
    return out


@dataclass
class FoldedRedis:
    """The Redis read model as the fold computes it (values as the store returns them, as strings)."""

    consent: dict[str, dict[str, str]] = field(default_factory=dict)
    timeline: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    vendor_messages: dict[str, dict[str, str]] = field(default_factory=dict)
    message_status: dict[str, dict[str, str]] = field(default_factory=dict)
    message_status_by_id: dict[str, dict[str, str]] = field(default_factory=dict)
    # Conversation entries per profile, oldest first (by time, then entry), each event once.
    conversation: dict[str, list[str]] = field(default_factory=dict)


def _guarded(store: dict[str, dict[str, str]], key: str, version: int, values: dict[str, Any]) -> None:
    current = store.get(key)
    if current is not None and int(current["version"]) >= version:
        return
    store[key] = {"version": str(version), **{k: str(v) for k, v in values.items()}}


def fold_redis(events: Iterable[dict[str, Any]], timeline_entries: int, now_ms: int) -> FoldedRedis:
    """Consent, newest-N timeline (newest first, as (event_id, entry)), link map and vendor map.

    Links whose ``expires_at`` is not after ``now_ms`` are gone (Redis expires their keys).
    """
    out = FoldedRedis()
    timelines: dict[str, dict[str, tuple[int, str]]] = defaultdict(dict)
    conversations: dict[str, set[tuple[int, str]]] = defaultdict(set)
    for e in events:
        if is_conversation(e):
            conversations[e["profile_key"]].add((e["occurred_at"], conversation_entry(e)))
        if e["event_type"] == "DeliveryStatusChanged" and e.get("message_id"):
            rank = status_rank(e["status"])
            _guarded(out.message_status_by_id, e["message_id"], rank, {
                "status": e["status"], "rank": rank, "profile_key": e["profile_key"], "vendor": e["vendor"],
                "vendor_message_id": e["vendor_message_id"], "error_code": e["error_code"],
                "failure_category": e["failure_category"], "occurred_at": e["occurred_at"],
                "event_id": e["event_id"]})
        status = status_of(e)
        if status is not None:
            rank = status_rank(status)
            _guarded(out.message_status, f"{e['vendor']}:{e['vendor_message_id']}", rank, {
                "status": status, "rank": rank, "profile_key": e["profile_key"],
                "message_id": e.get("message_id") or "", "error_code": e.get("error_code") or "",
                "failure_category": e.get("failure_category") or "", "occurred_at": e["occurred_at"],
                "event_id": e["event_id"]})
        timelines[e["profile_key"]][e["event_id"]] = (e["occurred_at"], timeline_entry(e))
        kind = e["event_type"]
        if kind == "ConsentChanged":
            _guarded(out.consent, e["profile_key"], e["version"], {
                "status": e["status"], "source": e["source"], "method": e["method"],
                "updated_at": e["occurred_at"], "event_id": e["event_id"]})
        elif kind == "LinkCreated" and e["expires_at"] > now_ms:
            # Written only if absent: the first link to claim a code keeps it.
            out.links.setdefault(e["code"], encode_link(link_from_event(e)))
        elif kind == "MessageSent":
            _guarded(out.vendor_messages, f"{e['vendor']}:{e['vendor_message_id']}", e["occurred_at"], {
                "message_id": e.get("message_id") or "", "company_id": e["company_id"],
                "profile_key": e["profile_key"], "flow_id": e.get("flow_id") or "",
                "campaign_id": e.get("campaign_id") or "", "event_id": e["event_id"]})
    out.conversation = {p: [entry for _, entry in sorted(entries)[-CONVERSATION_KEEP:]]
                        for p, entries in conversations.items()}
    for profile, entries in timelines.items():
        newest = sorted(entries.items(), key=lambda item: (item[1][0], item[0]), reverse=True)
        out.timeline[profile] = [(eid, entry) for eid, (_, entry) in newest[:timeline_entries]]
    return out


_STAT_COLUMNS = ("requested", "skipped", "sent", "delivered", "failed", "human_clicks", "unique_clickers",
                 "bot_clicks", "conversions", "revenue_micros", "segments", "cost_micros")


def fold_message_stats(events: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str, str], dict[str, int]]:
    """``message_stats`` per (company, flow, campaign, message), over all days, from unique events."""
    stats: dict[tuple[str, str, str, str], dict[str, int]] = {}
    clickers: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    counted = {"SendRequested": "requested", "SendSkipped": "skipped", "MessageSent": "sent",
               "ConversionAttributed": "conversions"}
    for e in unique_events(events).values():
        kind = e["event_type"]
        if kind == "DeliveryStatusChanged":
            # Delivered and failed are our own status moves (with our message id), not vendor callbacks.
            column = delivery_outcome(e["status"], e["previous_status"])
        else:
            column = counted.get(kind, "")
        if not column and kind != "LinkClicked":
            continue
        key = (e["company_id"], e.get("flow_id") or "", e.get("campaign_id") or "", e.get("message_id") or "")
        row = stats.setdefault(key, dict.fromkeys(_STAT_COLUMNS, 0))
        if kind == "LinkClicked":
            if e["is_bot"]:
                row["bot_clicks"] += 1
            else:
                row["human_clicks"] += 1
                clickers[key].add(e["profile_key"])
            continue
        row[column] += 1
        if kind == "MessageSent":
            row["segments"] += e["segments"]
            row["cost_micros"] += e["cost_micros"]
        elif kind == "ConversionAttributed":
            row["revenue_micros"] += e["value_micros"]
    for key, who in clickers.items():
        stats[key]["unique_clickers"] = len(who)
    return stats


STAT_COLUMNS = _STAT_COLUMNS
