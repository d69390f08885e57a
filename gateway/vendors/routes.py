"""The vendor webhook routes and their OpenAPI descriptions."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api import Operation, add_operation
from gateway.openapi import error_responses
from gateway.vendors.bandwidth import bandwidth_webhook
from gateway.vendors.telnyx import telnyx_webhook
from gateway.vendors.twilio import twilio_inbound, twilio_status

__all__ = ["add_vendor_routes"]

_ERRORS = error_responses("400", "401", "403", "404", "405", "413", "415", "503")
_OPEN_OBJECT = {"type": "object", "additionalProperties": True}


def _twilio_body(required: list[str]) -> dict[str, Any]:
    schema = {
        **_OPEN_OBJECT,
        "required": required,
        "properties": {name: {"type": "string"} for name in required},
    }
    return {
        "required": True,
        "description": "Twilio's parameters, form-encoded; JSON bodies must carry bodySHA256 in the URL. "
        "Unknown fields are accepted.",
        "content": {
            "application/x-www-form-urlencoded": {"schema": schema},
            "application/json": {"schema": schema},
        },
    }


_TELNYX_BODY = {
    "required": True,
    "description": "A Telnyx event envelope: data.event_type message.received, message.sent or "
    "message.finalized; other event types are answered 200 and ignored.",
    "content": {
        "application/json": {
            "schema": {
                **_OPEN_OBJECT,
                "required": ["data"],
                "properties": {"data": {**_OPEN_OBJECT, "required": ["id", "event_type", "payload"]}},
            }
        }
    },
}
_BANDWIDTH_BODY = {
    "required": True,
    "description": "A JSON array of Bandwidth message events (message-received, message-sending, "
    "message-delivered, message-failed); each becomes its own raw record.",
    "content": {
        "application/json": {
            "schema": {
                "type": "array",
                "minItems": 1,
                "items": {**_OPEN_OBJECT, "required": ["type", "time", "to", "message"]},
            }
        }
    },
}
# The router accepts only these two; documenting them keeps generated clients (and fuzzers) on the route.
_ENDPOINT_PARAM = {"name": "endpoint", "in": "path", "required": True,
                   "schema": {"type": "string", "enum": ["inbound", "status"]}}
_JSON_ACK = {
    "description": "durable (Kafka acknowledged it, or it is fsync'd to the spool)",
    "content": {"application/json": {"schema": _OPEN_OBJECT}},
}


def add_vendor_routes(app: web.Application) -> None:
    add_operation(
        app,
        Operation(
            "POST",
            "/webhooks/twilio/inbound",
            twilio_inbound,
            "twilioInbound",
            "Twilio inbound message",
            "webhooks",
            auth="twilio",
            request_body=_twilio_body(["To", "From", "MessageSid"]),
            responses={
                "200": {"description": "durable; empty TwiML", "content": {"text/xml": {}}},
                **_ERRORS,
            },
        ),
    )
    add_operation(
        app,
        Operation(
            "POST",
            "/webhooks/twilio/status",
            twilio_status,
            "twilioStatus",
            "Twilio message status callback",
            "webhooks",
            auth="twilio",
            request_body=_twilio_body(["MessageSid", "MessageStatus", "From"]),
            responses={"200": {"description": "durable"}, **_ERRORS},
        ),
    )
    for suffix, op_id, summary in (
        ("", "telnyxEvent", "Telnyx messaging event (any type; the event type decides)"),
        ("/{endpoint:inbound|status}", "telnyxEventByKind", "Telnyx messaging event (the path is a hint)"),
    ):
        add_operation(
            app,
            Operation(
                "POST",
                "/webhooks/telnyx" + suffix,
                telnyx_webhook,
                op_id,
                summary,
                "webhooks",
                auth="telnyx",
                parameters=(_ENDPOINT_PARAM,) if suffix else (),
                request_body=_TELNYX_BODY,
                responses={"200": _JSON_ACK, **_ERRORS},
            ),
        )
    add_operation(
        app,
        Operation(
            "POST",
            "/webhooks/bandwidth/{endpoint:inbound|status}",
            bandwidth_webhook,
            "bandwidthEvents",
            "Bandwidth message callbacks (a batch; each event's type decides)",
            "webhooks",
            auth="bandwidth",
            parameters=(_ENDPOINT_PARAM,),
            request_body=_BANDWIDTH_BODY,
            responses={"200": _JSON_ACK, **_ERRORS},
        ),
    )
