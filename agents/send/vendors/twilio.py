"""Twilio's Messages REST API (2010-04-01) and Lookup v2, over aiohttp.

Twilio documents no idempotency key for creating a Message (its error 20500 page warns that retrying a
send after a 500 may send twice), so after an ambiguous failure :meth:`TwilioClient.find_sent` lists the
recent messages From→To and recognises ours by its body before anything is resent.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
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
from config.companies import TwilioAccount

__all__ = ["TWILIO_CATEGORIES", "TwilioClient"]

# Twilio REST error codes -> why the message can never go (https://www.twilio.com/docs/api/errors).
TWILIO_CATEGORIES: dict[str, FailureCategory] = {
    "21211": FailureCategory.INVALID_NUMBER,  # invalid 'To' phone number
    "21614": FailureCategory.NOT_MOBILE,  # 'To' number is not a valid mobile number
    "21610": FailureCategory.OPTED_OUT,  # attempt to send to unsubscribed recipient
    "21408": FailureCategory.FORBIDDEN_DESTINATION,  # permission to send to this region not enabled
    "21612": FailureCategory.FORBIDDEN_DESTINATION,  # 'To' number not currently reachable via SMS
    "21606": FailureCategory.SENDER_NOT_CONFIGURED,  # 'From' number is not SMS-capable for this account
    "21212": FailureCategory.SENDER_NOT_CONFIGURED,  # invalid 'From' number
    "21602": FailureCategory.REJECTED,  # message body is required
    "21617": FailureCategory.REJECTED,  # body exceeds the 1600 character limit
    "20003": FailureCategory.AUTHENTICATION,  # authentication error
}
# How far back find_sent looks for a message created by an attempt whose answer was lost.
_RECONCILE_WINDOW_S = 15 * 60


class TwilioClient(SMSClient):
    """Sends through one Twilio account (HTTP Basic: AccountSid and the first auth token)."""

    vendor = "twilio"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        account: TwilioAccount,
        *,
        api_base: str = "https://api.twilio.com",
        lookup_base: str = "https://lookups.twilio.com",
        timeout_s: float = 10.0,
    ) -> None:
        self._session = session
        self._sid = account.account_sid
        self._auth = aiohttp.BasicAuth(account.account_sid, account.auth_tokens[0].get_secret_value())
        self._messages_url = f"{api_base.rstrip('/')}/2010-04-01/Accounts/{self._sid}/Messages.json"
        self._lookup_base = lookup_base.rstrip("/")
        self._timeout_s = timeout_s

    async def send(self, message: OutboundMessage) -> VendorReceipt:
        form = {"To": message.to_number, "From": message.from_number, "Body": message.body}
        if message.status_callback_url:
            form["StatusCallback"] = message.status_callback_url
        status, headers, body = await request_json(
            self._session, self.vendor, "POST", self._messages_url, self._timeout_s, data=form,
            auth=self._auth,
        )
        if status in (200, 201) and isinstance(body, dict) and body.get("sid"):
            return _receipt(body)
        raise _error(status, headers, body)

    async def find_sent(self, message: OutboundMessage) -> VendorReceipt | None:
        params = {"To": message.to_number, "From": message.from_number, "PageSize": "50"}
        status, headers, body = await request_json(
            self._session, self.vendor, "GET", self._messages_url, self._timeout_s, params=params,
            auth=self._auth,
        )
        if status != 200 or not isinstance(body, dict):
            raise _error(status, headers, body)
        cutoff = time.time() - _RECONCILE_WINDOW_S
        for item in body.get("messages") or []:
            if item.get("body") == message.body and _created_after(item.get("date_created"), cutoff):
                return _receipt(item, replayed=True)
        return None

    async def lookup(self, number: str) -> NumberInfo:
        url = f"{self._lookup_base}/v2/PhoneNumbers/{quote(number, safe='+')}"
        status, headers, body = await request_json(
            self._session, self.vendor, "GET", url, self._timeout_s,
            params={"Fields": "line_type_intelligence"}, auth=self._auth,
        )
        if status != 200 or not isinstance(body, dict):
            raise _error(status, headers, body)
        line = body.get("line_type_intelligence") or {}
        return NumberInfo(number=body.get("phone_number") or number, valid=bool(body.get("valid")),
                          line_type=line.get("type"), carrier=line.get("carrier_name"))


def _receipt(resource: dict[str, Any], replayed: bool = False) -> VendorReceipt:
    segments = resource.get("num_segments")
    return VendorReceipt(
        vendor="twilio", vendor_message_id=str(resource["sid"]), status=str(resource.get("status") or ""),
        segments=int(segments) if segments not in (None, "") else None, replayed=replayed,
    )


def _created_after(value: object, cutoff: float) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return parsedate_to_datetime(value).timestamp() >= cutoff
    except (TypeError, ValueError):
        return False


def _error(status: int, headers: Any, body: Any) -> VendorError:
    code = str(body.get("code", "")) if isinstance(body, dict) else ""
    text = str(body.get("message", "")) if isinstance(body, dict) else ""
    what = f"HTTP {status} {code} {text}".strip()
    if status == 429:
        # Too Many Requests: Twilio refused the request, so nothing was created.
        return VendorError("twilio", what, transient=True, status=status, code=code,
                           retry_after_s=retry_after(headers))
    if status >= 500:
        return VendorError("twilio", what, transient=True, ambiguous=True, status=status, code=code)
    category = TWILIO_CATEGORIES.get(code)
    if category is None:
        category = FailureCategory.AUTHENTICATION if status in (401, 403) else FailureCategory.UNKNOWN
    return VendorError("twilio", what, transient=False, status=status, code=code, category=category)
