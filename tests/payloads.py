"""Realistic vendor webhook bodies (DOMAIN.md section 1) and the RawWebhook records the gateway makes."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any
from urllib.parse import urlencode

from streams.events import RawWebhook

__all__ = [
    "bandwidth_event",
    "raw",
    "telnyx_inbound",
    "telnyx_status",
    "twilio_inbound_form",
    "twilio_status_form",
]


def twilio_inbound_form(sender: str, to: str, body: str, sid: str | None = None, **extra: str) -> bytes:
    sid = sid or "SM" + secrets.token_hex(16)
    params = {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "",
        "FromZip": "94105", "SmsSid": sid, "FromState": "CA", "SmsStatus": "received", "FromCity": "SF",
        "Body": body, "FromCountry": "US", "To": to, "MessagingServiceSid": "MG" + "0" * 32,
        "ToZip": "", "NumSegments": "1", "MessageSid": sid, "AccountSid": "AC" + "a" * 32,
        "From": sender, "ApiVersion": "2010-04-01", **extra,
    }
    return urlencode(params).encode()


def twilio_status_form(
    sid: str, status: str, our: str, recipient: str, error: str = "", **extra: str
) -> bytes:
    params = {
        "SmsSid": sid, "SmsStatus": status, "MessageStatus": status, "To": recipient, "MessageSid": sid,
        "AccountSid": "AC" + "a" * 32, "From": our, "ApiVersion": "2010-04-01", **extra,
    }
    if error:
        params["ErrorCode"] = error
    return urlencode(params).encode()


def _telnyx_envelope(event_type: str, occurred_at: str, payload: dict[str, Any]) -> bytes:
    return json.dumps({
        "data": {"event_type": event_type, "id": str(uuid.uuid4()), "occurred_at": occurred_at,
                 "payload": payload, "record_type": "event"},
        "meta": {"attempt": 1, "delivered_to": "https://hooks.example/webhooks/telnyx"},
    }).encode()


def telnyx_inbound(
    sender: str, to: str, text: str, message_id: str | None = None,
    occurred_at: str = "2025-11-28T20:16:07.588+00:00", media: list[str] | None = None,
) -> bytes:
    return _telnyx_envelope("message.received", occurred_at, {
        "cc": [], "completed_at": None, "cost": None, "direction": "inbound", "encoding": "GSM-7",
        "errors": [],
        "from": {"carrier": "T-Mobile USA", "line_type": "long_code", "phone_number": sender},
        "id": message_id or str(uuid.uuid4()),
        "media": [{"url": u, "content_type": "image/jpeg", "size": 1024, "hash_sha256": None}
                  for u in (media or [])],
        "messaging_profile_id": "740572b6-099c-44a1-89b9-6c92163bc68d", "parts": 1,
        "received_at": occurred_at, "record_type": "message", "sent_at": None, "tags": [], "text": text,
        "to": [{"carrier": "Telnyx", "line_type": "Wireless", "phone_number": to,
                "status": "webhook_delivered"}],
        "type": "SMS", "valid_until": None,
    })


def telnyx_status(
    message_id: str, our: str, recipient: str, status: str, event_type: str = "message.finalized",
    error_codes: tuple[str, ...] = (), occurred_at: str = "2025-11-28T20:16:09.000+00:00",
) -> bytes:
    return _telnyx_envelope(event_type, occurred_at, {
        "direction": "outbound", "encoding": "GSM-7", "id": message_id, "type": "SMS", "parts": 1,
        "cost": {"amount": "0.0051", "currency": "USD"},
        "errors": [{"code": c, "title": "error", "detail": ""} for c in error_codes],
        "from": {"carrier": "Telnyx", "line_type": "Wireless", "phone_number": our},
        "to": [{"carrier": "T-MOBILE USA, INC.", "line_type": "Wireless", "phone_number": recipient,
                "status": status}],
        "text": "Hi!", "media": [], "sent_at": occurred_at, "completed_at": occurred_at,
    })


def bandwidth_event(kind: str, *, message_id: str, sender: str, to: str, text: str = "",
                    time: str = "2025-11-28T18:20:16.000Z", error_code: int | None = None,
                    media: list[str] | None = None) -> bytes:
    """One element of Bandwidth's callback array, as compact JSON (the gateway splits the array)."""
    inbound = kind == "message-received"
    event: dict[str, Any] = {
        "type": kind, "time": time, "description": "Incoming message received" if inbound else "ok",
        "to": to,
        "message": {
            "id": message_id, "owner": to if inbound else sender,
            "applicationId": "93de2206-9669-4e07-948d-329f4b722ee2", "time": time, "segmentCount": 1,
            "direction": "in" if inbound else "out", "to": [to], "from": sender,
            "text": text if inbound else "", "media": media or [], "tag": "",
        },
    }
    if error_code is not None:
        event["errorCode"] = error_code
        event["description"] = "failed"
    return json.dumps(event, separators=(",", ":")).encode()


def raw(vendor: str, endpoint: str, body: bytes, received_at: int = 1_764_360_000_000) -> RawWebhook:
    content_type = "application/x-www-form-urlencoded" if vendor == "twilio" else "application/json"
    return RawWebhook(
        request_id=uuid.uuid4().hex, vendor=vendor, endpoint=endpoint,
        url=f"https://hooks.example/webhooks/{vendor}/{endpoint}", method="POST", content_type=content_type,
        headers={}, body=body, received_at=received_at, dedupe_key=uuid.uuid4().hex,
    )
