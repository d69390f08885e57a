"""Build requests exactly as the vendors send them: used by the demo, the tests and the load test.

Telnyx requests are signed with the dev-only Ed25519 seeds of ``config/dev_vendor_keys.toml``; the
gateway itself only ever holds public keys.
"""

from __future__ import annotations

import json
import secrets
import time
import tomllib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from config.settings import PROJECT_ROOT
from gateway.signatures import basic_credentials, telnyx_sign, twilio_body_sha256, twilio_signature

__all__ = [
    "DEV_VENDOR_KEYS",
    "SignedRequest",
    "bandwidth_event",
    "bandwidth_request",
    "dev_telnyx_seed",
    "new_twilio_sid",
    "telnyx_event",
    "telnyx_request",
    "twilio_inbound",
    "twilio_json",
    "twilio_status",
]

DEV_VENDOR_KEYS = PROJECT_ROOT / "config" / "dev_vendor_keys.toml"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request ready to POST: path relative to the gateway, headers and body."""

    path: str
    headers: dict[str, str]
    body: bytes


def new_twilio_sid(prefix: str = "SM") -> str:
    """A Twilio-shaped 34-character SID."""
    return prefix + secrets.token_hex(16)


def _twilio_form(
    public_base_url: str, auth_token: str, path: str, params: Mapping[str, str]
) -> SignedRequest:
    signature = twilio_signature(auth_token, public_base_url.rstrip("/") + path, params)
    return SignedRequest(
        path=path,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
            "User-Agent": "TwilioProxy/1.1",
        },
        body=urlencode(params).encode(),
    )


def twilio_inbound(
    public_base_url: str,
    auth_token: str,
    *,
    sender: str,
    to: str,
    body: str,
    account_sid: str,
    message_sid: str | None = None,
) -> SignedRequest:
    """A signed Twilio inbound-SMS webhook, form-encoded with the fields Twilio sends."""
    sid = message_sid or new_twilio_sid()
    params = {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": to,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    return _twilio_form(public_base_url, auth_token, "/webhooks/twilio/inbound", params)


def twilio_status(
    public_base_url: str,
    auth_token: str,
    *,
    sender: str,
    to: str,
    status: str,
    account_sid: str,
    message_sid: str,
    error_code: str | None = None,
) -> SignedRequest:
    """A signed Twilio status callback for an outbound message (``sender`` is the company's number)."""
    params = {
        "MessageSid": message_sid,
        "SmsSid": message_sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "AccountSid": account_sid,
        "From": sender,
        "To": to,
        "ApiVersion": "2010-04-01",
    }
    if error_code is not None:
        params["ErrorCode"] = error_code
    return _twilio_form(public_base_url, auth_token, "/webhooks/twilio/status", params)


def twilio_json(
    public_base_url: str, auth_token: str, path: str, payload: Mapping[str, Any]
) -> SignedRequest:
    """A Twilio JSON webhook: ``bodySHA256`` in the query, the URL (without params) signed."""
    body = json.dumps(payload).encode()
    full_path = f"{path}?bodySHA256={twilio_body_sha256(body)}"
    signature = twilio_signature(auth_token, public_base_url.rstrip("/") + full_path, {})
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Signature": signature,
        "User-Agent": "TwilioProxy/1.1",
    }
    return SignedRequest(path=full_path, headers=headers, body=body)


def dev_telnyx_seed(name: str, path: Path = DEV_VENDOR_KEYS) -> str:
    """The dev-only Telnyx private seed (base64) of a dev company (``acme``, ``acme-next``, ...)."""
    keys = tomllib.loads(path.read_text(encoding="utf-8"))["telnyx"]
    return str(keys[name])


def telnyx_event(
    event_type: str,
    *,
    sender: str,
    to: str,
    text: str = "",
    message_id: str | None = None,
    event_id: str | None = None,
    status: str = "delivered",
) -> dict[str, Any]:
    """A Telnyx messaging event envelope as Telnyx sends it."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())
    inbound = event_type == "message.received"
    payload: dict[str, Any] = {
        "record_type": "message",
        "id": message_id or str(uuid.uuid4()),
        "direction": "inbound" if inbound else "outbound",
        "type": "SMS",
        "from": {"phone_number": sender, "carrier": "T-Mobile USA", "line_type": "Wireless"},
        "to": [{"phone_number": to, "status": "webhook_delivered" if inbound else status}],
        "text": text,
        "media": [],
        "encoding": "GSM-7",
        "parts": 1,
        "errors": [],
        "received_at": now,
    }
    return {
        "data": {
            "record_type": "event",
            "event_type": event_type,
            "id": event_id or str(uuid.uuid4()),
            "occurred_at": now,
            "payload": payload,
        },
        "meta": {"attempt": 1, "delivered_to": "https://example.com/webhooks/telnyx"},
    }


def telnyx_request(
    seed_b64: str, event: Mapping[str, Any], *, path: str = "/webhooks/telnyx", timestamp: int | None = None
) -> SignedRequest:
    """A Telnyx webhook signed with ``seed_b64`` (Ed25519 over ``timestamp|body``)."""
    body = json.dumps(event).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": "application/json",
        "telnyx-signature-ed25519": telnyx_sign(seed_b64, ts, body),
        "telnyx-timestamp": ts,
        "User-Agent": "telnyx-webhooks",
    }
    return SignedRequest(path=path, headers=headers, body=body)


def bandwidth_event(
    event_type: str,
    *,
    sender: str,
    to: str,
    application_id: str,
    text: str = "",
    message_id: str | None = None,
    error_code: int | None = None,
) -> dict[str, Any]:
    """One Bandwidth callback event (``to`` is the top-level recipient, ``sender`` the message's from)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    inbound = event_type == "message-received"
    event: dict[str, Any] = {
        "type": event_type,
        "time": now,
        "description": "Incoming message received" if inbound else event_type.replace("-", " "),
        "to": to,
        "message": {
            "id": message_id or f"{int(time.time() * 1000)}{secrets.token_hex(6)}",
            "owner": to if inbound else sender,
            "applicationId": application_id,
            "time": now,
            "segmentCount": 1,
            "direction": "in" if inbound else "out",
            "to": [to],
            "from": sender,
            "text": text if inbound else "",
            "media": [],
        },
    }
    if error_code is not None:
        event["errorCode"] = error_code
    return event


def bandwidth_request(
    username: str,
    password: str,
    events: Sequence[Mapping[str, Any]],
    *,
    path: str = "/webhooks/bandwidth/inbound",
) -> SignedRequest:
    """A Bandwidth callback batch with HTTP Basic credentials."""
    headers = {
        "Content-Type": "application/json",
        "Authorization": basic_credentials(username, password),
        "User-Agent": "BandwidthAPI/v2",
    }
    return SignedRequest(path=path, headers=headers, body=json.dumps(list(events)).encode())
