"""What every vendor endpoint shares: field extraction that names the bad field, company lookup, building
the raw record, and recording it durably (Kafka, else spool, else 503)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from config.companies import Company
from gateway.errors import ApiError, PublishError, SpoolError, SpoolFull
from gateway.keys import (
    COMPANIES_KEY,
    METRIC_LABELS_KEY,
    RAW_ENCODER_KEY,
    RECEIVED_AT_KEY,
    RECORDER_KEY,
    REQUEST_ID_KEY,
    SETTINGS_KEY,
)
from gateway.masking import mask_phone

__all__ = [
    "company_for_number",
    "get_field",
    "kept_headers",
    "raw_record",
    "record_durably",
    "set_labels",
    "signed_url",
]

log = logging.getLogger("gateway.vendors")

_INDEX = re.compile(r"^([^\[\]]+)\[(\d+)\]$")


def set_labels(request: web.Request, vendor: str, endpoint: str) -> None:
    request[METRIC_LABELS_KEY] = (vendor, endpoint)


def get_field(doc: Any, path: str, *, prefix: str = "", required: bool = True) -> Any:
    """The value at ``path`` (``data.payload.to[0].phone_number``) as a non-empty string, or a 400 that
    names the field and says why. Unknown sibling fields are ignored."""
    current = doc
    walked = prefix
    for part in path.split("."):
        match = _INDEX.match(part)
        name, index = (match.group(1), int(match.group(2))) if match else (part, None)
        if not isinstance(current, Mapping):
            raise ApiError(
                400, "invalid_field", f"{walked or 'the body'} must be a JSON object", field=walked or "body"
            )
        walked = f"{walked}.{name}" if walked else name
        current = current.get(name)
        if current is None:
            if not required:
                return None
            raise ApiError(400, "missing_field", f"required field {walked} is missing", field=walked)
        if index is not None:
            if not isinstance(current, list) or len(current) <= index:
                raise ApiError(
                    400,
                    "invalid_field",
                    f"{walked} must be a list with at least {index + 1} items",
                    field=walked,
                )
            current = current[index]
            walked = f"{walked}[{index}]"
    if not isinstance(current, str) or not current:
        raise ApiError(400, "invalid_field", f"{walked} must be a non-empty string", field=walked)
    return current


def company_for_number(request: web.Request, number: str, vendor: str) -> Company:
    """The company that owns ``number``, or 404 (masked: no full number in responses or logs)."""
    company = request.app[COMPANIES_KEY].by_number(number)
    if company is None:
        log.info(
            "%s webhook for unknown number %s (request %s)",
            vendor,
            mask_phone(number),
            request[REQUEST_ID_KEY],
        )
        raise ApiError(404, "unknown_number", f"no company owns the number {mask_phone(number)}")
    return company


def signed_url(request: web.Request) -> str:
    """The URL the vendor called: the public base (what sits in front of us) plus the request target as
    sent; raw_path keeps the percent-encoding that yarl may normalize."""
    base = request.app[SETTINGS_KEY].gateway.public_base_url.rstrip("/")
    target = request.raw_path if request.raw_path.startswith("/") else request.path_qs
    return base + target


def kept_headers(request: web.Request, names: Sequence[str]) -> dict[str, str]:
    return {name: request.headers[name] for name in names if name in request.headers}


def raw_record(
    request: web.Request,
    *,
    vendor: str,
    endpoint: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    dedupe_key: str,
) -> bytes:
    """The request as a RawWebhook record, Avro-encoded (what goes to Kafka, or to the spool)."""
    return request.app[RAW_ENCODER_KEY].encode(
        request_id=request[REQUEST_ID_KEY],
        vendor=vendor,
        endpoint=endpoint,
        url=url,
        method=request.method,
        content_type=request.headers.get("Content-Type", ""),
        headers=headers,
        body=body,
        received_at=request[RECEIVED_AT_KEY],
        dedupe_key=dedupe_key,
    )


async def record_durably(request: web.Request, vendor: str, records: Sequence[tuple[bytes, str]]) -> None:
    """Kafka's ack within the vendor's budget, else the spool; a 503 with Retry-After when neither."""
    settings = request.app[SETTINGS_KEY]
    budget = float(getattr(settings.gateway.ack_budgets, vendor))
    retry = {"Retry-After": str(settings.gateway.retry_after_s)}
    try:
        await request.app[RECORDER_KEY].record(vendor, records, budget)
    except SpoolFull as exc:
        log.warning("%s webhook refused, spool full (request %s): %s", vendor, request[REQUEST_ID_KEY], exc)
        raise ApiError(
            503, "spool_full", "the gateway cannot store more requests right now; retry later", headers=retry
        ) from None
    except (PublishError, SpoolError) as exc:
        log.warning("%s webhook not durable (request %s): %s", vendor, request[REQUEST_ID_KEY], exc)
        raise ApiError(
            503, "unavailable", "the request could not be stored durably; retry later", headers=retry
        ) from None
