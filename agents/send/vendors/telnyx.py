"""Telnyx's Messaging API v2 (``POST /v2/messages``) and number lookup, over aiohttp.

Telnyx honours an ``Idempotency-Key`` header: a retry with the same key and a byte-identical body is
answered with the original success and sends nothing (a different body under the key answers 422).
So the body is serialized once per message, and a retried attempt is safe even after a timeout.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp

from agents.send.vendors.base import (
    FailureCategory,
    NumberInfo,
    OutboundMessage,
    SMSClient,
    VendorError,
    VendorReceipt,
)
from agents.send.vendors.http import request_json, retry_after

__all__ = ["TELNYX_CATEGORIES", "TelnyxClient"]

# Telnyx API error codes -> category (developers.telnyx.com/development/api-fundamentals/api-errors and
# the messaging error reference).
TELNYX_CATEGORIES: dict[str, FailureCategory] = {
    "40310": FailureCategory.INVALID_NUMBER,  # invalid 'to' address
    "10002": FailureCategory.INVALID_NUMBER,  # invalid phone number
    "10016": FailureCategory.INVALID_NUMBER,  # phone number must be in +E.164 format
    "40001": FailureCategory.NOT_MOBILE,  # not routable (landline)
    "40300": FailureCategory.OPTED_OUT,  # blocked due to STOP message
    "40305": FailureCategory.SENDER_NOT_CONFIGURED,  # invalid 'from' address
    "40013": FailureCategory.SENDER_NOT_CONFIGURED,  # source number not associated with a profile
    "10001": FailureCategory.SENDER_NOT_CONFIGURED,  # inactive phone number
    "10004": FailureCategory.REJECTED,  # missing required parameter
    "40009": FailureCategory.REJECTED,  # invalid message body
    "10009": FailureCategory.AUTHENTICATION,  # authentication failed
    "10010": FailureCategory.AUTHENTICATION,  # authorization failed
}


class TelnyxClient(SMSClient):
    """Sends with one Telnyx API key (Bearer)."""

    vendor = "telnyx"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: str,
        *,
        api_base: str = "https://api.telnyx.com",
        messaging_profile_id: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if not api_key:
            raise ValueError("a Telnyx API key is required to send")
        self._session = session
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._base = api_base.rstrip("/")
        self._profile = messaging_profile_id
        self._timeout_s = timeout_s

    @property
    def deduplicates_retries(self) -> bool:
        return True

    def _payload(self, message: OutboundMessage) -> bytes:
        # Deterministic bytes: Telnyx compares a retried body byte for byte.
        payload: dict[str, Any] = {"from": message.from_number, "to": message.to_number, "text": message.body}
        if message.status_callback_url:
            payload["webhook_url"] = message.status_callback_url
        if self._profile:
            payload["messaging_profile_id"] = self._profile
        return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()

    async def send(self, message: OutboundMessage) -> VendorReceipt:
        headers = {**self._headers, "Content-Type": "application/json",
                   "Idempotency-Key": message.idempotency_key}
        status, response_headers, body = await request_json(
            self._session, self.vendor, "POST", f"{self._base}/v2/messages", self._timeout_s,
            data=self._payload(message), headers=headers,
        )
        data = body.get("data") if isinstance(body, dict) else None
        if status == 200 and isinstance(data, dict) and data.get("id"):
            recipients = data.get("to") or [{}]
            parts = data.get("parts")
            return VendorReceipt(vendor=self.vendor, vendor_message_id=str(data["id"]),
                                 status=str(recipients[0].get("status") or "queued"),
                                 segments=int(parts) if isinstance(parts, int) else None)
        raise _error(status, response_headers, body)

    async def lookup(self, number: str) -> NumberInfo:
        url = f"{self._base}/v2/number_lookup/{quote(number, safe='+')}"
        status, headers, body = await request_json(
            self._session, self.vendor, "GET", url, self._timeout_s, params={"type": "carrier"},
            headers=self._headers,
        )
        data = body.get("data") if isinstance(body, dict) else None
        if status != 200 or not isinstance(data, dict):
            raise _error(status, headers, body)
        carrier = data.get("carrier") or {}
        return NumberInfo(number=data.get("phone_number") or number, valid=bool(data.get("valid_number")),
                          line_type=carrier.get("type"), carrier=carrier.get("name"))


def _error(status: int, headers: Any, body: Any) -> VendorError:
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = str(first.get("code", ""))
    what = f"HTTP {status} {code} {first.get('title', '')}: {first.get('detail', '')}".strip(" :")
    if status == 429:
        return VendorError("telnyx", what, transient=True, status=status, code=code,
                           retry_after_s=retry_after(headers))
    if status >= 500:
        return VendorError("telnyx", what, transient=True, ambiguous=True, status=status, code=code)
    category = TELNYX_CATEGORIES.get(code)
    if category is None:
        category = FailureCategory.AUTHENTICATION if status in (401, 403) else FailureCategory.UNKNOWN
    return VendorError("telnyx", what, transient=False, status=status, code=code, category=category)
