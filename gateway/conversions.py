"""``POST /v1/conversions``: a conversion (e.g. "Placed Order") by one profile → ``ConversionRecorded``, 202.

The company comes from the API key. The client's ``idempotency_key`` (an order id, say) makes the event id
deterministic, so a retried POST is the same event and the attribution decider credits it once (it emits
ConversionAttributed for the last qualifying SMS touch, or nothing).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from gateway.api import Operation, add_operation
from gateway.errors import ApiError
from gateway.fields import E164, bad_field, json_object, publish_or_503, string_field
from gateway.http import parse_json, read_body, require_content_type
from gateway.keys import COMPANY_KEY, RECEIVED_AT_KEY, SETTINGS_KEY
from gateway.openapi import error_responses
from streams.events import ConversionRecorded, event_id_for, profile_key

__all__ = ["add_conversion_routes", "conversion_from_json"]

_FIELDS = frozenset({"metric", "value", "currency", "phone", "occurred_at", "idempotency_key"})
_METRIC = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
MAX_VALUE = Decimal(10) ** 12
# Conversions from before this (2000-01-01) or more than a day ahead of the gateway's clock are refused.
_EARLIEST_MS = 946_684_800_000
_AHEAD_MS = 24 * 3600 * 1000


def _value_micros(data: dict[str, Any]) -> int:
    value = data.get("value")
    if value is None:
        raise ApiError(400, "missing_field", "value is required", field="value")
    # bool is an int in Python, and NaN/Infinity parse from JSON: neither is an amount.
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise bad_field("value", "must be a finite number")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise bad_field("value", "must be a finite number") from None
    if not 0 <= amount <= MAX_VALUE:
        raise bad_field("value", f"must be between 0 and {MAX_VALUE}")
    return int((amount * 1_000_000).to_integral_value())


def _occurred_at(data: dict[str, Any], now_ms: int) -> int:
    value = data.get("occurred_at")
    if value is None:
        return now_ms
    if isinstance(value, bool):
        raise bad_field("occurred_at", "must be epoch milliseconds or an ISO 8601 time with a zone")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise bad_field("occurred_at", "is not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise bad_field("occurred_at", "needs a time zone (e.g. Z or +00:00)")
        ms = int(parsed.timestamp() * 1000)
    elif isinstance(value, int):
        ms = value
    else:
        raise bad_field("occurred_at", "must be epoch milliseconds or an ISO 8601 time with a zone")
    if not _EARLIEST_MS <= ms <= now_ms + _AHEAD_MS:
        raise bad_field("occurred_at", "must be after 2000-01-01 and at most a day ahead")
    return ms


def conversion_from_json(data: Any, company_id: str, received_at: int) -> ConversionRecorded:
    """The ``ConversionRecorded`` a request body asks for, or an ApiError naming the first bad field."""
    data = json_object(data, _FIELDS)
    metric = string_field(data, "metric", _METRIC, required=True)
    phone = string_field(data, "phone", E164, required=True)
    currency = string_field(data, "currency", _CURRENCY, required=True)
    key = string_field(data, "idempotency_key", _KEY, required=True)
    assert metric is not None and phone is not None and currency is not None and key is not None
    value_micros = _value_micros(data)
    return ConversionRecorded(
        event_id=event_id_for("ConversionRecorded", company_id, key),
        company_id=company_id,
        profile_key=profile_key(company_id, phone),
        occurred_at=_occurred_at(data, received_at),
        received_at=received_at,
        metric=metric,
        value_micros=value_micros,
        currency=currency,
    )


async def record_conversion(request: web.Request) -> web.Response:
    company = request[COMPANY_KEY]
    require_content_type(request, "application/json")
    data = parse_json(await read_body(request, request.app[SETTINGS_KEY].gateway.max_body_bytes))
    event = conversion_from_json(data, company.id, request[RECEIVED_AT_KEY])
    await publish_or_503(request, event, "conversion", "retry with the same idempotency_key")
    return web.json_response({"event_id": event.event_id, "status": "recorded"}, status=202)


_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["metric", "value", "currency", "phone", "idempotency_key"],
    "additionalProperties": False,
    "properties": {
        "metric": {"type": "string", "minLength": 1, "maxLength": 128, "example": "Placed Order"},
        "value": {"type": "number", "minimum": 0, "maximum": float(MAX_VALUE)},
        "currency": {"type": "string", "pattern": f"^{_CURRENCY.pattern}$", "example": "USD"},
        "phone": {"type": "string", "pattern": f"^{E164.pattern}$"},
        "occurred_at": {"description": "epoch ms or ISO 8601 with a zone; default: now",
                        "oneOf": [{"type": "integer"}, {"type": "string", "format": "date-time"}]},
        "idempotency_key": {"type": "string", "pattern": f"^{_KEY.pattern}$",
                            "description": "your id for the conversion (an order id); counted once"},
    },
}


def add_conversion_routes(app: web.Application) -> None:
    add_operation(app, Operation(
        "POST", "/v1/conversions", record_conversion, "recordConversion",
        "Record a conversion of one profile (attributed to its last SMS touch)", "api", auth="api_key",
        request_body={"required": True, "content": {"application/json": {"schema": _REQUEST_SCHEMA}}},
        responses={
            "202": {"description": "stored", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"event_id": {"type": "string"},
                                                 "status": {"type": "string", "enum": ["recorded"]}}}}}},
            **error_responses("400", "401", "413", "415", "503"),
        },
    ))
