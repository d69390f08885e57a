"""Bandwidth callbacks: a JSON array of events behind HTTP Basic credentials. Each element becomes its own
raw record (its own dedupe key); the request is acknowledged once all of them are durable."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from gateway.errors import ApiError
from gateway.http import parse_json, read_body, require_content_type
from gateway.keys import COMPANIES_KEY, REQUEST_ID_KEY, SETTINGS_KEY
from gateway.signatures import parse_basic_auth, verify_basic
from gateway.vendors.common import (
    company_for_number,
    get_field,
    kept_headers,
    raw_record,
    record_durably,
    set_labels,
    signed_url,
)

__all__ = ["bandwidth_webhook"]

log = logging.getLogger("gateway.vendors.bandwidth")

ENDPOINT_BY_TYPE = {
    "message-received": "inbound",
    "message-sending": "status",
    "message-delivered": "status",
    "message-failed": "status",
}
# Credentials are never copied into the topic.
KEPT_HEADERS = ("User-Agent",)
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="smsfold"'}


def _authenticated_companies(request: web.Request) -> set[str]:
    header = request.headers.get("Authorization")
    if not header:
        raise ApiError(401, "missing_credentials", "HTTP Basic credentials are required", headers=_CHALLENGE)
    given = parse_basic_auth(header)
    if given is None:
        raise ApiError(
            401, "malformed_credentials", "the Authorization header is not HTTP Basic", headers=_CHALLENGE
        )
    matched = {
        company.id
        for company in request.app[COMPANIES_KEY]
        if company.bandwidth is not None
        and verify_basic(
            [(c.username, c.password.get_secret_value()) for c in company.bandwidth.credentials], given
        )
    }
    if not matched:
        raise ApiError(403, "bad_credentials", "the HTTP Basic credentials are not valid")
    return matched


async def bandwidth_webhook(request: web.Request) -> web.Response:
    """A batch of Bandwidth message events; the route is a hint, each event's ``type`` decides."""
    set_labels(request, "bandwidth", request.match_info.get("endpoint", "any"))
    settings = request.app[SETTINGS_KEY]
    request_id = request[REQUEST_ID_KEY]
    require_content_type(request, "application/json")
    body = await read_body(request, settings.gateway.max_body_bytes)
    allowed = _authenticated_companies(request)

    doc: Any = parse_json(body)
    if not isinstance(doc, list) or not doc:
        raise ApiError(400, "malformed_body", "body must be a non-empty JSON array of events", field="body")
    url = signed_url(request)
    headers = kept_headers(request, KEPT_HEADERS)
    records: list[tuple[bytes, str]] = []
    ignored = 0
    endpoints = set()
    for index, event in enumerate(doc):
        where = f"[{index}]"
        event_type = get_field(event, "type", prefix=where)
        endpoint = ENDPOINT_BY_TYPE.get(event_type)
        if endpoint is None:
            ignored += 1
            log.info("bandwidth event type %s ignored (request %s)", event_type, request_id)
            continue
        message_id = get_field(event, "message.id", prefix=where)
        sent_at = get_field(event, "time", prefix=where)
        recipient = get_field(event, "to", prefix=where)
        sender = get_field(event, "message.from", prefix=where)
        ours = recipient if endpoint == "inbound" else sender
        company = company_for_number(request, ours, "bandwidth")
        if company.id not in allowed:
            raise ApiError(
                403, "bad_credentials", f"the credentials do not belong to the company of event {where}"
            )
        element = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        record = raw_record(
            request,
            vendor="bandwidth",
            endpoint=endpoint,
            url=url,
            headers=headers,
            body=element,
            dedupe_key=f"bandwidth:{event_type}:{message_id}:{sent_at}:{recipient}",
        )
        records.append((record, sender if endpoint == "inbound" else message_id))
        endpoints.add(endpoint)
    if len(endpoints) == 1:
        set_labels(request, "bandwidth", endpoints.pop())
    if records:
        await record_durably(request, "bandwidth", records)
    log.debug("bandwidth: %d events accepted, %d ignored (request %s)", len(records), ignored, request_id)
    return web.json_response(
        {"status": "accepted", "accepted": len(records), "ignored": ignored, "request_id": request_id}
    )
