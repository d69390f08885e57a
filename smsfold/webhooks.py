"""Build requests exactly as the vendors send them: used by the demo, the tests and the load test."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from gateway.signatures import twilio_signature

__all__ = ["SignedRequest", "new_twilio_sid", "twilio_inbound"]


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request ready to POST: path relative to the gateway, headers and body."""

    path: str
    headers: dict[str, str]
    body: bytes


def new_twilio_sid(prefix: str = "SM") -> str:
    """A Twilio-shaped 34-character SID."""
    return prefix + secrets.token_hex(16)


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
    path = "/webhooks/twilio/inbound"
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
