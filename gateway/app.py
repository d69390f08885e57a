"""The aiohttp gateway: vendor webhooks in, raw records to Kafka, a 2xx only once Kafka acknowledged.

Build it with :func:`create_app`; ``web.run_app`` belongs to the entry point.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import web

from config.companies import CompanyDirectory
from config.settings import Settings
from gateway.errors import ApiError, PublishError
from gateway.masking import mask_phone, redact_phones
from gateway.publisher import RawPublisher
from gateway.signatures import verify_twilio
from streams.events import RawWebhook

__all__ = [
    "COMPANIES_KEY",
    "PUBLISHER_KEY",
    "RECEIVED_AT_KEY",
    "REQUEST_ID_KEY",
    "SETTINGS_KEY",
    "TWIML_EMPTY",
    "create_app",
]

log = logging.getLogger(__name__)

SETTINGS_KEY = web.AppKey("settings", Settings)
COMPANIES_KEY = web.AppKey("companies", CompanyDirectory)
PUBLISHER_KEY = web.AppKey[RawPublisher]("publisher")
REQUEST_ID_KEY = web.RequestKey("request_id", str)
# Epoch milliseconds when the request reached the gateway (before its body was read).
RECEIVED_AT_KEY = web.RequestKey("received_at", int)

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Seconds a vendor is asked to wait before retrying when Kafka did not acknowledge.
RETRY_AFTER_S = 5
TWILIO_REQUIRED_FIELDS = ("To", "From", "MessageSid")
# The only request headers kept in the raw record: enough to re-verify and dedupe.
TWILIO_KEPT_HEADERS = ("X-Twilio-Signature", "I-Twilio-Idempotency-Token", "User-Agent")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(settings: Settings, companies: CompanyDirectory, publisher: RawPublisher) -> web.Application:
    """The gateway application, with its dependencies passed in (no globals)."""
    app = web.Application(middlewares=[_error_middleware])
    app[SETTINGS_KEY] = settings
    app[COMPANIES_KEY] = companies
    app[PUBLISHER_KEY] = publisher
    app.router.add_post("/webhooks/twilio/inbound", twilio_inbound)
    app.router.add_get("/healthz", healthz)
    return app


def _error_body(code: str, message: str, request_id: str) -> dict[str, object]:
    return {"error": {"code": code, "message": message}, "request_id": request_id}


def _code_for(exc: web.HTTPException) -> str:
    return exc.reason.lower().replace(" ", "_").replace("-", "_") or f"http_{exc.status}"


@web.middleware
async def _error_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Tags every request with an id, and turns every error into a JSON body; never leaks a traceback."""
    request[RECEIVED_AT_KEY] = time.time_ns() // 1_000_000
    request_id = uuid.uuid4().hex
    request[REQUEST_ID_KEY] = request_id
    try:
        response = await handler(request)
    except ApiError as exc:
        response = web.json_response(
            _error_body(exc.code, exc.message, request_id), status=exc.status, headers=exc.headers
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
            _error_body(_code_for(exc), message, request_id), status=exc.status, headers=headers
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
            _error_body("internal_error", "internal error; the request was not accepted", request_id),
            status=500,
        )
    response.headers["X-Request-Id"] = request_id
    return response


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes whether or not Content-Length was sent."""
    too_large = ApiError(413, "body_too_large", f"request body exceeds {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _parse_form(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_body", "form body is not valid UTF-8") from None
    except ValueError as exc:
        # parse_qsl names the bad field ("bad query field: 'x'"); it holds no full number unless sent so.
        raise ApiError(400, "malformed_body", f"form body is malformed: {redact_phones(str(exc))}") from None


def _required(fields: list[tuple[str, str]], name: str) -> str:
    values = [value for key, value in fields if key == name]
    if not values or not values[0]:
        raise ApiError(400, "missing_field", f"required field {name} is missing or empty")
    if len(values) > 1:
        raise ApiError(400, "duplicate_field", f"field {name} appears {len(values)} times")
    return values[0]


def _signed_url(settings: Settings, request: web.Request) -> str:
    # Twilio signs the URL it called: the public base (what sits in front of us) plus the request target
    # exactly as sent; raw_path keeps the percent-encoding that yarl may normalize.
    target = request.raw_path if request.raw_path.startswith("/") else request.path_qs
    return settings.gateway.public_base_url.rstrip("/") + target


async def twilio_inbound(request: web.Request) -> web.Response:
    """Twilio's inbound-message webhook: verify, record in ``sms.webhooks.raw``, then answer empty TwiML."""
    settings = request.app[SETTINGS_KEY]
    request_id = request[REQUEST_ID_KEY]

    if request.content_type != FORM_CONTENT_TYPE:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"content type must be {FORM_CONTENT_TYPE}, not {request.content_type}",
        )
    body = await _read_body(request, settings.gateway.max_body_bytes)
    fields = _parse_form(body)
    to_number, from_number, message_sid = (_required(fields, name) for name in TWILIO_REQUIRED_FIELDS)

    company = request.app[COMPANIES_KEY].by_number(to_number)
    if company is None:
        log.info("twilio inbound to unknown number %s (request %s)", mask_phone(to_number), request_id)
        raise ApiError(404, "unknown_number", f"no company owns the number {mask_phone(to_number)}")

    signature = request.headers.get("X-Twilio-Signature")
    if signature is None:
        raise ApiError(401, "missing_signature", "the X-Twilio-Signature header is missing")
    if company.twilio is None:
        log.warning("company %s has no Twilio account configured (request %s)", company.id, request_id)
        raise ApiError(403, "vendor_not_configured", "the receiving number has no Twilio account configured")
    url = _signed_url(settings, request)
    tokens = [token.get_secret_value() for token in company.twilio.auth_tokens]
    if not verify_twilio(tokens, url, fields, signature):
        log.warning("twilio inbound for %s with a bad signature (request %s)", company.id, request_id)
        raise ApiError(403, "bad_signature", "the X-Twilio-Signature does not match the request")

    idempotency_token = request.headers.get("I-Twilio-Idempotency-Token")
    record = RawWebhook(
        request_id=request_id,
        vendor="twilio",
        endpoint="inbound",
        url=url,
        method=request.method,
        content_type=request.headers.get("Content-Type", ""),
        headers={name: request.headers[name] for name in TWILIO_KEPT_HEADERS if name in request.headers},
        body=body,
        received_at=request[RECEIVED_AT_KEY],
        dedupe_key=idempotency_token or f"twilio:{message_sid}:received",
    )
    try:
        await request.app[PUBLISHER_KEY].publish_raw(record, key=from_number)
    except PublishError as exc:
        log.warning("twilio inbound not published (request %s): %s", request_id, exc)
        raise ApiError(
            503,
            "unavailable",
            "the message could not be stored durably; retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from None
    log.info(
        "twilio inbound %s from %s to %s accepted for %s (request %s)",
        message_sid,
        mask_phone(from_number),
        mask_phone(to_number),
        company.id,
        request_id,
    )
    return web.Response(text=TWIML_EMPTY, content_type="text/xml", charset="utf-8")
