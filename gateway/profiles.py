"""The profile API: consent (read, and change requests), the timeline and the conversation of one profile.

The company always comes from the API key: a profile is ``{company}:{phone}`` with the caller's company,
so no key can name another company's profile. Reads go through :class:`ProfileReads` (the composition
root wires the Redis and ClickHouse read models behind it, off the event loop); a consent change is only
requested here (``ConsentChangeRequested``): the profile decider is the single writer of ConsentChanged.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from gateway.api import Operation, add_operation
from gateway.errors import ApiError
from gateway.fields import E164, bad_field, json_object, path_phone, publish_or_503, string_field
from gateway.http import parse_json, read_body, require_content_type
from gateway.keys import COMPANY_KEY, RECEIVED_AT_KEY, SETTINGS_KEY
from gateway.openapi import error_responses
from streams.events import ConsentChangeRequested, event_id_for, profile_key

__all__ = ["PROFILE_READS_KEY", "NoProfileReads", "ProfileReads", "add_profile_routes"]

REQUESTABLE_STATUSES = ("subscribed", "unsubscribed")
REQUEST_SOURCES = ("form", "api", "import")
TIMELINE_MAX_LIMIT = 200
CONVERSATION_MAX_LIMIT = 1000
_METHOD = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_CONSENT_FIELDS = frozenset({"status", "source", "method"})
_MAX_CURSOR = 512


class ProfileReads(Protocol):
    """The read models the profile API reads; a bad cursor is an ApiError naming ``cursor``."""

    async def consent(self, company_id: str, phone: str) -> Mapping[str, Any] | None:
        """status, source, method, version, updated_at; None if the consent never changed."""
        ...

    async def timeline(
        self, company_id: str, phone: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page, newest first, and the cursor of the next page (None at the end)."""
        ...

    async def conversation(self, company_id: str, phone: str, limit: int) -> list[dict[str, Any]]:
        """The latest ``limit`` conversation messages, oldest first."""
        ...


class NoProfileReads:
    """The reads of a gateway built without read models: every profile reads as unavailable (503)."""

    def _unavailable(self) -> ApiError:
        return ApiError(503, "unavailable", "this gateway has no read models", headers={"Retry-After": "5"})

    async def consent(self, company_id: str, phone: str) -> Mapping[str, Any] | None:
        raise self._unavailable()

    async def timeline(
        self, company_id: str, phone: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        raise self._unavailable()

    async def conversation(self, company_id: str, phone: str, limit: int) -> list[dict[str, Any]]:
        raise self._unavailable()


PROFILE_READS_KEY = web.AppKey[ProfileReads]("profile_reads")


def _limit(request: web.Request, default: int, maximum: int) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise bad_field("limit", f"must be an integer between 1 and {maximum}")
    return int(raw)


async def get_consent(request: web.Request) -> web.Response:
    company, phone = request[COMPANY_KEY], path_phone(request)
    view = await request.app[PROFILE_READS_KEY].consent(company.id, phone)
    if view is None:
        view = {"status": "never_subscribed", "source": None, "method": None, "version": 0,
                "updated_at": None}
    return web.json_response({"phone": phone, **view})


def consent_request_from_json(data: Any, company_id: str, phone: str, received_at: int
                              ) -> ConsentChangeRequested:
    """The ``ConsentChangeRequested`` a PUT body asks for, or an ApiError naming the first bad field."""
    data = json_object(data, _CONSENT_FIELDS)
    status = string_field(data, "status", None, required=True)
    source = string_field(data, "source", None, required=True)
    method = string_field(data, "method", _METHOD, required=False) or "api"
    if status not in REQUESTABLE_STATUSES:
        raise bad_field("status", f"must be one of {', '.join(REQUESTABLE_STATUSES)}")
    if source not in REQUEST_SOURCES:
        raise bad_field("source", f"must be one of {', '.join(REQUEST_SOURCES)}")
    return ConsentChangeRequested(
        # Each request is its own cause; a repeated one changes nothing in the decider's fold.
        event_id=event_id_for("ConsentChangeRequested", company_id, phone, uuid.uuid4().hex),
        company_id=company_id,
        profile_key=profile_key(company_id, phone),
        occurred_at=received_at,
        received_at=received_at,
        status=status,
        source=source,
        method=method,
    )


async def put_consent(request: web.Request) -> web.Response:
    company, phone = request[COMPANY_KEY], path_phone(request)
    require_content_type(request, "application/json")
    data = parse_json(await read_body(request, request.app[SETTINGS_KEY].gateway.max_body_bytes))
    event = consent_request_from_json(data, company.id, phone, request[RECEIVED_AT_KEY])
    await publish_or_503(request, event, "consent change")
    return web.json_response({"event_id": event.event_id, "status": "requested"}, status=202)


async def get_timeline(request: web.Request) -> web.Response:
    company, phone = request[COMPANY_KEY], path_phone(request)
    limit = _limit(request, 50, TIMELINE_MAX_LIMIT)
    cursor = request.query.get("cursor") or None
    if cursor is not None and len(cursor) > _MAX_CURSOR:
        raise bad_field("cursor", "not a cursor this API issued")
    items, next_cursor = await request.app[PROFILE_READS_KEY].timeline(company.id, phone, limit, cursor)
    return web.json_response({"items": items, "next_cursor": next_cursor})


async def get_conversation(request: web.Request) -> web.Response:
    company, phone = request[COMPANY_KEY], path_phone(request)
    limit = _limit(request, 100, CONVERSATION_MAX_LIMIT)
    messages = await request.app[PROFILE_READS_KEY].conversation(company.id, phone, limit)
    return web.json_response({"messages": messages})


_PHONE_PARAM = {"name": "phone", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": f"^{E164.pattern}$"},
                "description": "the profile's number, E.164 (+ may be sent as %2B)"}


def _limit_param(default: int, maximum: int) -> dict[str, Any]:
    return {"name": "limit", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_CONSENT_VIEW = {"type": "object", "properties": {
    "phone": {"type": "string"},
    "status": {"type": "string", "enum": ["never_subscribed", "pending", "subscribed", "unsubscribed"]},
    "source": {"type": "string", "nullable": True}, "method": {"type": "string", "nullable": True},
    "version": {"type": "integer"}, "updated_at": {"type": "integer", "nullable": True}}}
_CONSENT_REQUEST = {"type": "object", "required": ["status", "source"], "additionalProperties": False,
                    "properties": {"status": {"type": "string", "enum": list(REQUESTABLE_STATUSES)},
                                   "source": {"type": "string", "enum": list(REQUEST_SOURCES)},
                                   "method": {"type": "string", "pattern": f"^{_METHOD.pattern}$"}}}
_ACCEPTED = _json({"type": "object", "properties": {"event_id": {"type": "string"},
                                                    "status": {"type": "string", "enum": ["requested"]}}},
                  "stored; the profile decider applies it in order with the profile's other events")
_OBJECTS = {"type": "array", "items": {"type": "object"}}


def add_profile_routes(app: web.Application, reads: ProfileReads) -> None:
    """The profile routes, API key required, in ``app`` and its OpenAPI document."""
    app[PROFILE_READS_KEY] = reads
    reads_errors = error_responses("400", "401", "503")
    for method, path, handler, op_id, summary, params, body, responses in (
        ("GET", "/v1/profiles/{phone}/consent", get_consent, "getConsent", "A profile's consent now",
         [], None, {"200": _json(_CONSENT_VIEW, "the consent (never_subscribed if it never changed)"),
                    **reads_errors}),
        ("PUT", "/v1/profiles/{phone}/consent", put_consent, "requestConsentChange",
         "Request a consent change (form, API or import)", [],
         {"required": True, "content": {"application/json": {"schema": _CONSENT_REQUEST}}},
         {"202": _ACCEPTED, **error_responses("400", "401", "413", "415", "503")}),
        ("GET", "/v1/profiles/{phone}/timeline", get_timeline, "getTimeline",
         "A profile's events, newest first, a page at a time",
         [_limit_param(50, TIMELINE_MAX_LIMIT),
          {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
           "description": "next_cursor of the previous page"}], None,
         {"200": _json({"type": "object", "properties": {
             "items": _OBJECTS, "next_cursor": {"type": "string", "nullable": True}}}, "one page"),
          **reads_errors}),
        ("GET", "/v1/profiles/{phone}/conversation", get_conversation, "getConversation",
         "A profile's unrecognized messages (for a human), oldest first",
         [_limit_param(100, CONVERSATION_MAX_LIMIT)], None,
         {"200": _json({"type": "object", "properties": {"messages": _OBJECTS}}, "the messages"),
          **reads_errors}),
    ):
        add_operation(app, Operation(
            method, path, handler, op_id, summary, "profiles", auth="api_key",
            parameters=(_PHONE_PARAM, *params), request_body=body, responses=responses))
