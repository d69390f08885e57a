"""``POST /v1/messages``: a send request for one profile → ``SendRequested`` on ``sms.events``, 202.

The company comes from the API key (so no company can send as another). The request is answered only
after Kafka acknowledged the event. A client-supplied ``message_id`` makes the request idempotent: the
event id derives from (company, message id), so a retried POST is the same event and the profile decider
folds it once. Checks (consent, quiet hours, frequency, number validity) and composition (prefix,
opt-out language) belong to the decider, at decision time: here only the request's shape is checked.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web

from gateway.api import Operation, add_operation
from gateway.fields import E164, bad_field, json_object, publish_or_503, string_field
from gateway.http import parse_json, read_body, require_content_type
from gateway.keys import COMPANY_KEY, RECEIVED_AT_KEY, SETTINGS_KEY
from gateway.openapi import error_responses
from streams.events import SendRequested, event_id_for, profile_key

__all__ = ["KINDS", "MAX_BODY_CHARS", "add_message_routes", "send_request_from_json"]

KINDS = ("flow", "campaign", "transactional", "auto_reply")
# Twilio's and Telnyx's limit for one message's text.
MAX_BODY_CHARS = 1600
# Message ids are the vendors' idempotency keys too, so they fit the keys both vendors accept.
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_:-]{1,128}")
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_FIELDS = frozenset({"to", "body", "kind", "message_id", "flow_id", "campaign_id", "from"})


def send_request_from_json(
    data: Any, company_id: str, company_numbers: tuple[str, ...], load_test: bool, received_at: int
) -> SendRequested:
    """The ``SendRequested`` a request body asks for, or an ApiError naming the first bad field."""
    data = json_object(data, _FIELDS)
    to = string_field(data, "to", E164, required=True)
    body = string_field(data, "body", None, required=True)
    kind = string_field(data, "kind", None, required=True)
    assert to is not None and body is not None and kind is not None
    if not body.strip():
        raise bad_field("body", "must not be empty")
    if len(body) > MAX_BODY_CHARS:
        raise bad_field("body", f"must be at most {MAX_BODY_CHARS} characters, got {len(body)}")
    if kind not in KINDS:
        raise bad_field("kind", f"must be one of {', '.join(KINDS)}")
    from_number = string_field(data, "from", E164, required=False)
    if from_number is not None and from_number not in company_numbers:
        raise bad_field("from", "is not one of the company's sending numbers")
    message_id = string_field(data, "message_id", _MESSAGE_ID, required=False)
    identity = ("api", company_id, message_id) if message_id else ("api", company_id, uuid.uuid4().hex)
    message_id = message_id or identity[2]
    return SendRequested(
        event_id=event_id_for("SendRequested", *identity),
        company_id=company_id,
        profile_key=profile_key(company_id, to),
        occurred_at=received_at,
        received_at=received_at,
        message_id=message_id,
        flow_id=string_field(data, "flow_id", _ID, required=False),
        campaign_id=string_field(data, "campaign_id", _ID, required=False),
        kind=kind,
        body=body,
        from_number=from_number,
        # A load-test company's sends are recorded and decided, never handed to a vendor.
        suppressed=load_test,
        stage_times={"requested": received_at},
    )


async def create_message(request: web.Request) -> web.Response:
    company = request[COMPANY_KEY]
    require_content_type(request, "application/json")
    limit = request.app[SETTINGS_KEY].gateway.max_body_bytes
    data = parse_json(await read_body(request, limit))
    event = send_request_from_json(data, company.id, company.numbers, company.load_test,
                                   request[RECEIVED_AT_KEY])
    await publish_or_503(request, event, "send request", "retry with the same message_id")
    return web.json_response({"message_id": event.message_id, "event_id": event.event_id,
                              "status": "requested"}, status=202)


_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["to", "body", "kind"],
    "additionalProperties": False,
    "properties": {
        "to": {"type": "string", "pattern": E164.pattern, "description": "the profile's number, E.164"},
        "body": {"type": "string", "maxLength": MAX_BODY_CHARS,
                 "description": "the text; marketing messages get the company's prefix and opt-out language"},
        "kind": {"type": "string", "enum": list(KINDS)},
        "message_id": {"type": "string", "pattern": _MESSAGE_ID.pattern,
                       "description": "your id for the message; a retried request with it is sent once"},
        "flow_id": {"type": "string"},
        "campaign_id": {"type": "string"},
        "from": {"type": "string", "description": "one of the company's numbers (default: the first)"},
    },
}


def add_message_routes(app: web.Application) -> None:
    add_operation(
        app,
        Operation(
            "POST", "/v1/messages", create_message, "createMessage",
            "Request one SMS to one profile", "api", auth="api_key",
            description=(
                "Accepted (202) once stored durably. Consent, quiet hours, frequency cap and number checks "
                "run later, in order with the profile's other events; a message that cannot go out is "
                "recorded as skipped with a reason."
            ),
            request_body={"required": True, "content": {"application/json": {"schema": _REQUEST_SCHEMA}}},
            responses={
                "202": {
                    "description": "stored; the message id to follow it by",
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "properties": {"message_id": {"type": "string"}, "event_id": {"type": "string"},
                                       "status": {"type": "string", "enum": ["requested"]}},
                    }}},
                },
                **error_responses("400", "401", "413", "415", "503"),
            },
        ),
    )
