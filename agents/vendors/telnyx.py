"""Telnyx webhooks: the JSON envelope ``{"data": {event_type, id, occurred_at, payload}, "meta": ...}``."""

from __future__ import annotations

from typing import Any

from agents.vendors.common import (
    ParsedInbound,
    ParsedStatus,
    VendorPayloadError,
    iso_to_epoch_ms,
    load_json_object,
    require_list,
    require_object,
    require_str,
)

__all__ = ["TELNYX_STATUS_EVENTS", "parse_telnyx"]

TELNYX_STATUS_EVENTS = frozenset({"message.sent", "message.finalized"})


def _to_numbers(payload: dict[str, Any]) -> list[dict[str, Any]]:
    to = require_list(payload, "to", "data.payload.")
    if not to or not all(isinstance(t, dict) for t in to):
        raise VendorPayloadError("data.payload.to must be a non-empty list of objects")
    return to


def _error_codes(payload: dict[str, Any]) -> tuple[str, ...]:
    errors = payload.get("errors") or []
    if not isinstance(errors, list):
        raise VendorPayloadError("data.payload.errors is not a list")
    return tuple(str(e["code"]) for e in errors if isinstance(e, dict) and e.get("code") is not None)


def parse_telnyx(body: bytes) -> list[ParsedInbound | ParsedStatus]:
    """One Telnyx event; a status event yields one record per recipient in ``payload.to``."""
    envelope = load_json_object(body)
    data = require_object(envelope, "data", "")
    event_type = require_str(data, "event_type", "data.")
    occurred_at = iso_to_epoch_ms(require_str(data, "occurred_at", "data."), "data.occurred_at")
    payload = require_object(data, "payload", "data.")
    message_id = require_str(payload, "id", "data.payload.")
    from_ = require_object(payload, "from", "data.payload.")
    sender = require_str(from_, "phone_number", "data.payload.from.")
    to = _to_numbers(payload)
    if event_type == "message.received":
        text = payload.get("text") or ""
        if not isinstance(text, str):
            raise VendorPayloadError("data.payload.text is not a string")
        media = payload.get("media") or []
        if not isinstance(media, list):
            raise VendorPayloadError("data.payload.media is not a list")
        urls = tuple(m["url"] for m in media if isinstance(m, dict) and isinstance(m.get("url"), str))
        our = require_str(to[0], "phone_number", "data.payload.to[0].")
        return [ParsedInbound("telnyx", message_id, sender, our, text, urls, occurred_at)]
    if event_type in TELNYX_STATUS_EVENTS:
        codes = _error_codes(payload)
        out: list[ParsedInbound | ParsedStatus] = []
        for i, recipient in enumerate(to):
            number = require_str(recipient, "phone_number", f"data.payload.to[{i}].")
            status = require_str(recipient, "status", f"data.payload.to[{i}].")
            out.append(ParsedStatus("telnyx", message_id, status.lower(), sender, number, codes, occurred_at))
        return out
    raise VendorPayloadError(f"unsupported Telnyx event_type {event_type[:40]!r}")
