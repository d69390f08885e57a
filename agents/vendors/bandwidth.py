"""Bandwidth callbacks: the gateway splits the JSON array, so one body is one event object."""

from __future__ import annotations

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

__all__ = ["BANDWIDTH_STATUS_TYPES", "parse_bandwidth"]

BANDWIDTH_STATUS_TYPES = frozenset({"message-sending", "message-delivered", "message-failed"})


def parse_bandwidth(body: bytes) -> ParsedInbound | ParsedStatus:
    """One Bandwidth callback event ``{type, time, description, to, errorCode?, message{...}}``."""
    event = load_json_object(body)
    kind = require_str(event, "type", "")
    occurred_at = iso_to_epoch_ms(require_str(event, "time", ""), "time")
    message = require_object(event, "message", "")
    message_id = require_str(message, "id", "message.")
    sender = require_str(message, "from", "message.")
    if kind == "message-received":
        text = message.get("text") or ""
        if not isinstance(text, str):
            raise VendorPayloadError("message.text is not a string")
        media = message.get("media") or []
        if not isinstance(media, list) or not all(isinstance(m, str) for m in media):
            raise VendorPayloadError("message.media is not a list of URLs")
        # The receiving number: top-level "to" (the number this callback is about), else message.owner.
        our = event.get("to") or message.get("owner")
        if not isinstance(our, str) or not our:
            raise VendorPayloadError("to is missing (and message.owner too)")
        return ParsedInbound("bandwidth", message_id, sender, our, text, tuple(media), occurred_at)
    if kind in BANDWIDTH_STATUS_TYPES:
        recipient = require_str(event, "to", "")
        require_list(message, "to", "message.")
        code = event.get("errorCode")
        if code is not None and not isinstance(code, (int, str)):
            raise VendorPayloadError("errorCode is not a number")
        codes = (str(code),) if code not in (None, "", 0) else ()
        return ParsedStatus("bandwidth", message_id, kind, sender, recipient, codes, occurred_at)
    raise VendorPayloadError(f"unsupported Bandwidth type {kind[:40]!r}")
