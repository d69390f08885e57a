"""Twilio webhooks: form-encoded (``X-Twilio-Signature`` over URL + sorted params) or JSON (signed
through the ``bodySHA256`` query parameter); inbound messages and status callbacks."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from gateway.errors import ApiError
from gateway.http import parse_json, read_body, require_content_type
from gateway.keys import REQUEST_ID_KEY, SETTINGS_KEY
from gateway.masking import mask_phone, redact_phones
from gateway.signatures import verify_twilio, verify_twilio_json
from gateway.vendors.common import (
    company_for_number,
    kept_headers,
    raw_record,
    record_durably,
    set_labels,
    signed_url,
)
from streams.forms import FormError, parse_form

__all__ = ["TWIML_EMPTY", "twilio_inbound", "twilio_status"]

log = logging.getLogger("gateway.vendors.twilio")

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# The only request headers kept in the raw record: enough to re-verify and dedupe.
KEPT_HEADERS = ("X-Twilio-Signature", "I-Twilio-Idempotency-Token", "User-Agent")
REQUIRED = {"inbound": ("To", "From", "MessageSid"), "status": ("MessageSid", "MessageStatus", "From")}


def _parse_form(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_form(body)
    except FormError as exc:
        problem = exc.reason if exc.field is None else f"malformed: bad field {redact_phones(exc.field)!r}"
        raise ApiError(400, "malformed_body", f"form body is {problem}") from None


def _json_fields(body: bytes) -> list[tuple[str, str]]:
    doc: Any = parse_json(body)
    if not isinstance(doc, dict):
        raise ApiError(400, "malformed_body", "JSON body must be an object", field="body")
    # Only scalar fields matter for routing and dedupe; nested values are kept in the raw body anyway.
    return [(name, str(value)) for name, value in doc.items() if isinstance(value, str | int | float)]


def _required(fields: list[tuple[str, str]], names: tuple[str, ...]) -> dict[str, str]:
    """The value of each of ``names`` (one pass over the fields), or a 400 naming the first field that is
    missing, empty or repeated."""
    found: dict[str, list[str]] = {name: [] for name in names}
    for key, value in fields:
        if key in found:
            found[key].append(value)
    for name, values in found.items():
        if not values or not values[0]:
            raise ApiError(400, "missing_field", f"required field {name} is missing or empty", field=name)
        if len(values) > 1:
            raise ApiError(400, "duplicate_field", f"field {name} appears {len(values)} times", field=name)
    return {name: values[0] for name, values in found.items()}


async def _handle(request: web.Request, endpoint: str) -> tuple[str, str]:
    set_labels(request, "twilio", endpoint)
    settings = request.app[SETTINGS_KEY]
    request_id = request[REQUEST_ID_KEY]
    content_type = require_content_type(request, FORM, JSON)
    signature = request.headers.get("X-Twilio-Signature")
    # Unsigned requests are refused before the body is read or any number is looked up.
    if signature is None:
        raise ApiError(401, "missing_signature", "the X-Twilio-Signature header is missing")
    body = await read_body(request, settings.gateway.max_body_bytes)
    fields = _parse_form(body) if content_type == FORM else _json_fields(body)
    values = _required(fields, REQUIRED[endpoint])
    message_sid, sender = values["MessageSid"], values["From"]
    # Our number: the recipient of an inbound message, the sender of an outbound one.
    ours = values["To"] if endpoint == "inbound" else sender
    company = company_for_number(request, ours, "twilio")

    if content_type == JSON and "bodySHA256" not in request.query:
        raise ApiError(401, "missing_body_hash", "a JSON request must carry bodySHA256 in its URL")
    if company.twilio is None:
        log.warning("company %s has no Twilio account configured (request %s)", company.id, request_id)
        raise ApiError(403, "vendor_not_configured", "the receiving number has no Twilio account configured")
    url = signed_url(request)
    tokens = [token.get_secret_value() for token in company.twilio.auth_tokens]
    valid = (
        verify_twilio(tokens, url, fields, signature)
        if content_type == FORM
        else verify_twilio_json(tokens, url, body, signature)
    )
    if not valid:
        log.warning("twilio %s for %s with a bad signature (request %s)", endpoint, company.id, request_id)
        raise ApiError(403, "bad_signature", "the X-Twilio-Signature does not match the request")

    status = values.get("MessageStatus", "received")
    token = request.headers.get("I-Twilio-Idempotency-Token")
    record = raw_record(
        request,
        vendor="twilio",
        endpoint=endpoint,
        url=url,
        headers=kept_headers(request, KEPT_HEADERS),
        body=body,
        dedupe_key=token or f"twilio:{message_sid}:{status}",
    )
    key = sender if endpoint == "inbound" else message_sid
    await record_durably(request, "twilio", [(record, key)])
    # DEBUG: a JSON line per accepted webhook cost ~15 us of CPU (~10% of a webhook); the request counter
    # (smsfold_gateway_requests) counts them, and refusals and errors are still logged at INFO/WARNING.
    # Checked first, so that the number is not masked for a line nobody writes.
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "twilio %s %s %s from %s accepted for %s (request %s)",
            endpoint,
            message_sid,
            status,
            mask_phone(sender),
            company.id,
            request_id,
        )
    return message_sid, status


async def twilio_inbound(request: web.Request) -> web.Response:
    """An inbound message: recorded, then answered with empty TwiML (no auto-reply from here)."""
    await _handle(request, "inbound")
    return web.Response(text=TWIML_EMPTY, content_type="text/xml", charset="utf-8")


async def twilio_status(request: web.Request) -> web.Response:
    """A status callback of an outbound message: recorded, then answered 200 with no body."""
    await _handle(request, "status")
    return web.Response(status=200)
