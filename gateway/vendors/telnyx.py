"""Telnyx webhooks: a JSON envelope signed with Ed25519 over ``timestamp|body``; ``message.received`` is
inbound, ``message.sent``/``message.finalized`` are status. Telnyx sends every event type to one URL."""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from config.companies import CompanyDirectory
from gateway.errors import ApiError
from gateway.http import parse_json, read_body, require_content_type
from gateway.keys import REQUEST_ID_KEY, SETTINGS_KEY
from gateway.masking import mask_phone
from gateway.signatures import TelnyxKeys
from gateway.vendors.common import (
    company_for_number,
    get_field,
    kept_headers,
    raw_record,
    record_durably,
    set_labels,
    signed_url,
)

__all__ = ["TELNYX_KEYS_KEY", "telnyx_keys", "telnyx_webhook"]

log = logging.getLogger("gateway.vendors.telnyx")

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
KEPT_HEADERS = (SIGNATURE_HEADER, TIMESTAMP_HEADER, "User-Agent")
ENDPOINT_BY_EVENT = {"message.received": "inbound", "message.sent": "status", "message.finalized": "status"}

TELNYX_KEYS_KEY = web.AppKey("telnyx_keys", TelnyxKeys)


def telnyx_keys(companies: CompanyDirectory) -> TelnyxKeys:
    """Every configured Telnyx public key: a request is verified before its body is trusted for routing."""
    return TelnyxKeys(key for company in companies if company.telnyx for key in company.telnyx.public_keys)


def _verify(request: web.Request, body: bytes) -> str:
    """The configured key that signed the request, or 401/403 saying what is wrong."""
    signature = request.headers.get(SIGNATURE_HEADER)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    for name, value in ((SIGNATURE_HEADER, signature), (TIMESTAMP_HEADER, timestamp)):
        if not value:
            raise ApiError(401, "missing_signature", f"the {name} header is missing")
    assert signature is not None and timestamp is not None
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise ApiError(403, "bad_timestamp", f"{TIMESTAMP_HEADER} must be Unix seconds") from None
    tolerance = request.app[SETTINGS_KEY].gateway.telnyx_tolerance_s
    if abs(time.time() - sent_at) > tolerance:
        raise ApiError(403, "stale_timestamp", f"{TIMESTAMP_HEADER} is more than {tolerance} s from now")
    key = request.app[TELNYX_KEYS_KEY].verify(timestamp, body, signature)
    if key is None:
        raise ApiError(403, "bad_signature", f"the {SIGNATURE_HEADER} does not match the request")
    return key


async def telnyx_webhook(request: web.Request) -> web.Response:
    """Any Telnyx messaging event; the route (``/inbound``, ``/status`` or none) is only a hint, the
    event type decides."""
    set_labels(request, "telnyx", request.match_info.get("endpoint", "any"))
    settings = request.app[SETTINGS_KEY]
    request_id = request[REQUEST_ID_KEY]
    require_content_type(request, "application/json")
    body = await read_body(request, settings.gateway.max_body_bytes)
    signing_key = _verify(request, body)

    doc: Any = parse_json(body)
    event_type = get_field(doc, "data.event_type")
    event_id = get_field(doc, "data.id")
    endpoint = ENDPOINT_BY_EVENT.get(event_type)
    if endpoint is None:
        # Other event types (number orders, calls) are not ours; a 2xx stops Telnyx retrying them.
        log.info("telnyx event %s of type %s ignored (request %s)", event_id, event_type, request_id)
        return web.json_response({"status": "ignored", "event_type": event_type, "request_id": request_id})
    set_labels(request, "telnyx", endpoint)
    if endpoint == "inbound":
        ours = get_field(doc, "data.payload.to[0].phone_number")
        key = sender = get_field(doc, "data.payload.from.phone_number")
    else:
        ours = sender = get_field(doc, "data.payload.from.phone_number")
        key = get_field(doc, "data.payload.id")
    company = company_for_number(request, ours, "telnyx")
    if company.telnyx is None or signing_key not in company.telnyx.public_keys:
        log.warning(
            "telnyx %s for %s signed with another account's key (request %s)",
            event_type,
            company.id,
            request_id,
        )
        raise ApiError(403, "bad_signature", "the request is not signed with a key of the number's company")

    record = raw_record(
        request,
        vendor="telnyx",
        endpoint=endpoint,
        url=signed_url(request),
        headers=kept_headers(request, KEPT_HEADERS),
        body=body,
        dedupe_key=f"telnyx:{event_id}",
    )
    await record_durably(request, "telnyx", [(record, key)])
    log.debug(
        "telnyx %s %s from %s accepted for %s (request %s)",
        event_type,
        event_id,
        mask_phone(sender),
        company.id,
        request_id,
    )
    return web.json_response({"status": "accepted", "request_id": request_id})
