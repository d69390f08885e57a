"""Field checks shared by the JSON API's handlers: each failure is a 400 naming the field, and an event is
published only once Kafka acknowledged it (503 with Retry-After otherwise)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from gateway.errors import ApiError, PublishError
from gateway.keys import EVENTS_KEY, SETTINGS_KEY
from gateway.masking import mask_phone
from streams.events import Event

__all__ = ["E164", "bad_field", "json_object", "path_phone", "publish_or_503", "string_field"]

E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def bad_field(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_field", f"{field}: {message}", field=field)


def json_object(data: Any, allowed: frozenset[str]) -> dict[str, Any]:
    """``data`` if it is a JSON object with no field outside ``allowed``; a 400 otherwise."""
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_body", "the body must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        name = unknown[0][:64]
        raise ApiError(400, "unknown_field", f"unknown field {name!r}", field=name)
    return data


def string_field(
    data: dict[str, Any], field: str, pattern: re.Pattern[str] | None, required: bool
) -> str | None:
    """The string at ``field``, or None when absent and optional; a 400 naming the field otherwise."""
    value = data.get(field)
    if value is None:
        if required:
            raise ApiError(400, "missing_field", f"{field} is required", field=field)
        return None
    if not isinstance(value, str):
        raise bad_field(field, f"must be a string, not {type(value).__name__}")
    if pattern is not None and not pattern.fullmatch(value):
        raise bad_field(field, f"must match {pattern.pattern}")
    return value


def path_phone(request: web.Request) -> str:
    """The ``{phone}`` path parameter as E.164; the error shows only a masked form of what was sent."""
    phone = request.match_info["phone"]
    if not E164.fullmatch(phone):
        shown = mask_phone(phone[:32]) if phone else "nothing"
        raise ApiError(400, "invalid_field",
                       f"phone: {shown} is not an E.164 number (+, country code, up to 15 digits)",
                       field="phone")
    return phone


async def publish_or_503(request: web.Request, event: Event, what: str, hint: str = "retry it") -> None:
    """Publish ``event`` to the event log and return once Kafka acknowledged it; a 503 otherwise."""
    events = request.app.get(EVENTS_KEY)
    retry_after = {"Retry-After": str(request.app[SETTINGS_KEY].gateway.retry_after_s)}
    if events is None:
        raise ApiError(503, "unavailable", f"this gateway cannot accept {what}", headers=retry_after)
    try:
        await events.publish_event(event)
    except PublishError:
        raise ApiError(503, "not_durable", f"the {what} was not stored; {hint}",
                       headers=retry_after) from None
