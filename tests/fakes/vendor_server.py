"""A local fake of Twilio's and Telnyx's REST APIs: checks request shape and authentication, answers
with their success and error shapes, honours Telnyx's Idempotency-Key, and counts what was "sent".

Faults are queued per send request: ``"500"`` (refused, nothing created), ``"500_after_create"``
(created, then answered 500), ``"hang_after_create"`` (created, answer never arrives in time), ``"429"``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import phonenumbers
from aiohttp import web

__all__ = ["FakeVendorState", "create_fake_vendor_app"]

_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_:-]{1,255}")
_TWILIO_FIELDS = {"To", "From", "Body", "StatusCallback"}
_TELNYX_FIELDS = {"from", "to", "text", "webhook_url", "messaging_profile_id"}


@dataclass
class FakeVendorState:
    twilio_sid: str = "AC" + "f" * 32
    twilio_token: str = "fake-twilio-token"
    telnyx_key: str = "KEY_fake_telnyx"
    owned_numbers: set[str] = field(default_factory=lambda: {"+14155550100"})
    opted_out: set[str] = field(default_factory=set)
    faults: list[str] = field(default_factory=list)
    hang_s: float = 1.0
    twilio_messages: list[dict[str, Any]] = field(default_factory=list)
    telnyx_messages: list[dict[str, Any]] = field(default_factory=list)
    telnyx_idempotency: dict[str, tuple[bytes, dict[str, Any]]] = field(default_factory=dict)
    telnyx_replays: int = 0
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    shape_errors: list[str] = field(default_factory=list)

    def sent_to(self, number: str) -> int:
        """How many messages either vendor created for ``number``: what a phone would receive."""
        return sum(1 for m in self.twilio_messages if m["to"] == number) + sum(
            1 for m in self.telnyx_messages if m["to"][0]["phone_number"] == number)


STATE_KEY = web.AppKey("fake_vendor_state", FakeVendorState)


def create_fake_vendor_app(state: FakeVendorState) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = state
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", twilio_create)
    app.router.add_get("/2010-04-01/Accounts/{sid}/Messages.json", twilio_list)
    app.router.add_get("/v2/PhoneNumbers/{number}", twilio_lookup)
    app.router.add_post("/v2/messages", telnyx_create)
    app.router.add_get("/v2/number_lookup/{number}", telnyx_lookup)
    return app


def _valid(number: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False


# --- Twilio -------------------------------------------------------------------------------------------


def _twilio_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message,
                              "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
                             status=status)


def _twilio_authenticated(request: web.Request, state: FakeVendorState) -> bool:
    expected = base64.b64encode(f"{state.twilio_sid}:{state.twilio_token}".encode()).decode()
    return (request.headers.get("Authorization") == f"Basic {expected}"
            and request.match_info.get("sid", state.twilio_sid) == state.twilio_sid)


async def _fault(state: FakeVendorState) -> str | None:
    return state.faults.pop(0) if state.faults else None


async def twilio_create(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.requests.append(("twilio", request.method, request.path))
    if not _twilio_authenticated(request, state):
        return _twilio_error(401, 20003, "Authenticate")
    if request.content_type != "application/x-www-form-urlencoded":
        state.shape_errors.append(f"twilio content type {request.content_type}")
        return _twilio_error(400, 21601, "Request must be form-encoded")
    form = await request.post()
    unknown = set(form) - _TWILIO_FIELDS
    if unknown:
        state.shape_errors.append(f"twilio unknown fields {sorted(unknown)}")
    to, from_, body = (str(form.get(name, "")) for name in ("To", "From", "Body"))
    if not to:
        return _twilio_error(400, 21604, "A 'To' phone number is required.")
    if not from_:
        return _twilio_error(400, 21603, "A 'From' phone number is required.")
    if not body:
        return _twilio_error(400, 21602, "Message body is required.")
    if from_ not in state.owned_numbers:
        return _twilio_error(400, 21606, f"The From phone number {from_} is not a valid, SMS-capable "
                                         "inbound phone number or short code for your account.")
    if not _valid(to):
        return _twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
    if to in state.opted_out:
        return _twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
    fault = await _fault(state)
    if fault == "500":
        return _twilio_error(500, 20500, "Internal Server Error")
    if fault == "429":
        return web.json_response({"code": 20429, "message": "Too Many Requests", "status": 429}, status=429,
                                 headers={"Retry-After": "0"})
    sid = "SM" + uuid.uuid4().hex
    now = formatdate(time.time(), usegmt=False)
    resource = {
        "account_sid": state.twilio_sid, "api_version": "2010-04-01", "body": body, "date_created": now,
        "date_sent": None, "date_updated": now, "direction": "outbound-api", "error_code": None,
        "error_message": None, "from": from_, "messaging_service_sid": None, "num_media": "0",
        "num_segments": "1", "price": None, "price_unit": "USD", "sid": sid, "status": "queued",
        "subresource_uris": {"media": f"/2010-04-01/Accounts/{state.twilio_sid}/Messages/{sid}/Media.json"},
        "to": to, "uri": f"/2010-04-01/Accounts/{state.twilio_sid}/Messages/{sid}.json",
    }
    state.twilio_messages.append(resource)
    if fault == "500_after_create":
        return _twilio_error(500, 20500, "Internal Server Error")
    if fault == "hang_after_create":
        await asyncio.sleep(state.hang_s)
    return web.json_response(resource, status=201)


async def twilio_list(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.requests.append(("twilio", request.method, request.path))
    if not _twilio_authenticated(request, state):
        return _twilio_error(401, 20003, "Authenticate")
    to, from_ = request.query.get("To"), request.query.get("From")
    size = int(request.query.get("PageSize", "50"))
    found = [m for m in reversed(state.twilio_messages)
             if (to is None or m["to"] == to) and (from_ is None or m["from"] == from_)][:size]
    uri = f"/2010-04-01/Accounts/{state.twilio_sid}/Messages.json"
    return web.json_response({"messages": found, "end": len(found) - 1, "first_page_uri": uri,
                              "next_page_uri": None, "page": 0, "page_size": size,
                              "previous_page_uri": None, "start": 0, "uri": uri})


async def twilio_lookup(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if not _twilio_authenticated(request, state):
        return _twilio_error(401, 20003, "Authenticate")
    number = request.match_info["number"]
    valid = _valid(number)
    line = {"carrier_name": "Fake Wireless", "type": "mobile", "error_code": None,
            "mobile_country_code": "310", "mobile_network_code": "999"}
    return web.json_response({
        "calling_country_code": "1", "country_code": "US", "phone_number": number, "national_format": None,
        "valid": valid, "validation_errors": [] if valid else ["NOT_A_NUMBER"],
        "line_type_intelligence": line if valid else None,
        "url": f"https://lookups.twilio.com/v2/PhoneNumbers/{number}",
    })


# --- Telnyx -------------------------------------------------------------------------------------------


def _telnyx_error(
    status: int, code: str, title: str, detail: str, pointer: str | None = None
) -> web.Response:
    error: dict[str, Any] = {"code": code, "title": title, "detail": detail,
                             "meta": {"url": f"https://developers.telnyx.com/api/errors/{code}"}}
    if pointer:
        error["source"] = {"pointer": pointer}
    return web.json_response({"errors": [error]}, status=status)


def _telnyx_unauthorized() -> web.Response:
    return _telnyx_error(401, "10009", "Authentication failed", "The required authentication headers were "
                         "either invalid or not included in the request.")


async def telnyx_create(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.requests.append(("telnyx", request.method, request.path))
    if request.headers.get("Authorization") != f"Bearer {state.telnyx_key}":
        return _telnyx_unauthorized()
    if request.content_type != "application/json":
        state.shape_errors.append(f"telnyx content type {request.content_type}")
        return _telnyx_error(400, "10015", "Bad Request", "The request body must be JSON.")
    raw = await request.read()
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        if not _IDEMPOTENCY_KEY.fullmatch(key):
            return _telnyx_error(400, "10015", "Bad Request", "Invalid Idempotency-Key.")
        seen = state.telnyx_idempotency.get(key)
        if seen is not None:
            if seen[0] != raw:
                return _telnyx_error(422, "10015", "Bad Request",
                                     "Idempotency-Key reused with a different request body.")
            state.telnyx_replays += 1
            return web.json_response(seen[1])
    try:
        payload = json.loads(raw)
    except ValueError:
        return _telnyx_error(400, "10015", "Bad Request", "The request body is not valid JSON.")
    unknown = set(payload) - _TELNYX_FIELDS
    if unknown:
        state.shape_errors.append(f"telnyx unknown fields {sorted(unknown)}")
    for name in ("from", "to", "text"):
        if not payload.get(name):
            return _telnyx_error(400, "10004", "Missing required parameter", f"The '{name}' parameter is "
                                 "required.", f"/{name}")
    if payload["from"] not in state.owned_numbers:
        return _telnyx_error(400, "40305", "Invalid 'from' address",
                             "The 'from' address should be a number on your account.", "/from")
    if not _valid(payload["to"]):
        return _telnyx_error(400, "40310", "Invalid 'to' address",
                             "The 'to' address should be a single valid number.", "/to")
    if payload["to"] in state.opted_out:
        return _telnyx_error(400, "40300", "Blocked due to STOP message",
                             "The recipient replied STOP to this sender.", "/to")
    fault = await _fault(state)
    if fault == "500":
        return _telnyx_error(500, "10007", "Unexpected error", "An unexpected error occured.")
    if fault == "429":
        return _telnyx_error(429, "10011", "Too many requests", "You have exceeded the maximum number of "
                             "allowed requests.")
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())
    data = {
        "record_type": "message", "direction": "outbound", "id": str(uuid.uuid4()), "type": "SMS",
        "messaging_profile_id": payload.get("messaging_profile_id"), "organization_id": str(uuid.uuid4()),
        "from": {"phone_number": payload["from"], "carrier": "Telnyx", "line_type": "Wireless"},
        "to": [{"phone_number": payload["to"], "status": "queued", "carrier": "Fake Wireless",
                "line_type": "Wireless"}],
        "text": payload["text"], "media": [], "webhook_url": payload.get("webhook_url"),
        "encoding": "GSM-7", "parts": 1, "tags": [], "cost": None, "received_at": now, "sent_at": None,
        "completed_at": None, "valid_until": None, "errors": [],
    }
    state.telnyx_messages.append(data)
    response = {"data": data}
    if key is not None:
        # Telnyx replays only successful responses; this one is created, so it is one.
        state.telnyx_idempotency[key] = (raw, response)
    if fault == "500_after_create":
        return _telnyx_error(500, "10007", "Unexpected error", "An unexpected error occured.")
    if fault == "hang_after_create":
        await asyncio.sleep(state.hang_s)
    return web.json_response(response)


async def telnyx_lookup(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if request.headers.get("Authorization") != f"Bearer {state.telnyx_key}":
        return _telnyx_unauthorized()
    number = request.match_info["number"]
    return web.json_response({"data": {
        "record_type": "number_lookup", "phone_number": number, "country_code": "US",
        "national_format": None, "valid_number": _valid(number), "fraud": None, "portability": None,
        "carrier": {"type": "mobile", "name": "Fake Wireless", "mobile_country_code": "310",
                    "mobile_network_code": "999", "error_code": None},
        "caller_name": None,
    }})
