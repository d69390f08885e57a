"""Request plumbing shared by every route: request ids, JSON errors, bounded body reads, JSON parsing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.errors import ApiError
from gateway.keys import METRIC_LABELS_KEY, RECEIVED_AT_KEY, REQUEST_ID_KEY
from gateway.masking import redact_phones

__all__ = [
    "error_body",
    "error_middleware",
    "parse_json",
    "read_body",
    "require_content_type",
]

log = logging.getLogger("gateway.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RequestObserver = Callable[[web.Request, int], None]

# A caller may pass its own X-Request-Id (a load balancer's, say) if it is a sane token.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def error_body(code: str, message: str, request_id: str, field: str | None = None) -> dict[str, object]:
    """The one error format: ``{"error": {"code", "message", "field"?}, "request_id"}``."""
    error: dict[str, object] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error, "request_id": request_id}


def _code_for(exc: web.HTTPException) -> str:
    return exc.reason.lower().replace(" ", "_").replace("-", "_") or f"http_{exc.status}"


def error_middleware(observe: RequestObserver | None = None) -> Any:
    """Tags every request with an id, turns every error into a JSON body (never a traceback), and reports
    each answered status to ``observe`` (the request counter)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[RECEIVED_AT_KEY] = time.time_ns() // 1_000_000
        given = request.headers.get("X-Request-Id")
        # 32 random hex digits, like uuid4().hex without its version bits and ~1.4 us cheaper.
        request_id = given if given is not None and _REQUEST_ID.match(given) else os.urandom(16).hex()
        request[REQUEST_ID_KEY] = request_id
        try:
            response = await handler(request)
        except ApiError as exc:
            response = web.json_response(
                error_body(exc.code, exc.message, request_id, exc.field),
                status=exc.status,
                headers=exc.headers,
            )
        except web.HTTPException as exc:
            if exc.status < 400:
                exc.headers["X-Request-Id"] = request_id
                raise
            default_text = f"{exc.status}: {exc.reason}"
            message = exc.text if exc.text and exc.text != default_text else exc.reason
            # Keep headers such as Allow (405); the body and its framing are replaced.
            headers = {
                name: value
                for name, value in exc.headers.items()
                if name.lower() not in ("content-type", "content-length")
            }
            response = web.json_response(
                error_body(_code_for(exc), message, request_id), status=exc.status, headers=headers
            )
        except Exception as exc:
            # Exception messages may quote request data: phone numbers are masked before logging.
            lines = traceback.TracebackException.from_exception(exc).format()
            log.error(
                "unhandled error in %s %s (request %s)\n%s",
                request.method,
                request.path,
                request_id,
                redact_phones("".join(lines)).rstrip(),
            )
            response = web.json_response(
                error_body("internal_error", "internal error; the request was not accepted", request_id),
                status=500,
            )
        response.headers["X-Request-Id"] = request_id
        if observe is not None:
            observe(request, response.status)
        return response

    return middleware


def metric_labels(request: web.Request) -> tuple[str, str]:
    """(vendor, endpoint) for the request counter: set by vendor handlers, else the route's path."""
    labels = request.get(METRIC_LABELS_KEY)
    if labels is not None:
        return labels  # type: ignore[no-any-return]
    route = request.match_info.route.resource
    return ("none", route.canonical if route is not None else "unmatched")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes whether or not Content-Length was sent."""
    if request.content_length is not None:
        if request.content_length > limit:
            raise _too_large(limit)
        try:
            return await request.content.readexactly(request.content_length)
        except asyncio.IncompleteReadError:
            raise ApiError(400, "incomplete_body", "the body ended before Content-Length bytes") from None
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"request body exceeds {limit} bytes")


def require_content_type(request: web.Request, *allowed: str) -> str:
    """The request's media type if it is one of ``allowed``, else a 415 naming what is accepted."""
    if request.content_type not in allowed:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"content type must be {' or '.join(allowed)}, not {request.content_type or 'none'}",
        )
    return request.content_type


def parse_json(body: bytes) -> Any:
    """``body`` parsed as JSON, or a 400 saying where it is malformed."""
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_body", "JSON body is not valid UTF-8") from None
    except RecursionError:
        raise ApiError(400, "malformed_body", "JSON body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "malformed_body",
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
