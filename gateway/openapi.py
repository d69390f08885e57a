"""The OpenAPI 3 document, built from the registered operations (so it cannot miss an endpoint)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gateway.api import Operation

__all__ = ["ERROR_RESPONSE", "build_openapi", "error_responses"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "request_id"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "machine-readable, e.g. missing_field"},
                "message": {"type": "string", "description": "what is wrong, naming the field"},
                "field": {"type": "string", "description": "the offending field, when there is one"},
            },
        },
        "request_id": {"type": "string", "description": "also sent as the X-Request-Id header"},
    },
}
ERROR_RESPONSE: dict[str, Any] = {
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_ERROR_TEXT = {
    "400": "malformed body or invalid field (the error names it)",
    "401": "missing signature, credentials or API key",
    "403": "wrong signature or credentials, or another company's data",
    "404": "unknown number or resource",
    "405": "method not allowed",
    "413": "body over the size limit",
    "415": "unsupported content type",
    "429": "too many requests from this client; retry after Retry-After seconds",
    "503": "not stored durably; retry after Retry-After seconds",
}
_SECURITY: dict[str, Any] = {
    "api_key": {"type": "http", "scheme": "bearer", "description": "a company's API key"},
    "twilio": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Twilio-Signature",
        "description": "HMAC-SHA1 of the URL and sorted params (or of the URL with bodySHA256)",
    },
    "telnyx": {
        "type": "apiKey",
        "in": "header",
        "name": "telnyx-signature-ed25519",
        "description": "Ed25519 over `telnyx-timestamp|body`, 300 s tolerance",
    },
    "bandwidth": {"type": "http", "scheme": "basic", "description": "per-application credentials"},
}
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def error_responses(*statuses: str) -> dict[str, Any]:
    """Error response objects for ``statuses``, all in the one error format."""
    return {status: {"description": _ERROR_TEXT[status], **ERROR_RESPONSE} for status in statuses}


def build_openapi(operations: Iterable[Operation], title: str, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        path = _PARAM.sub(lambda m: "{" + m.group(1) + "}", op.path)
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "responses": dict(op.responses) or {"200": {"description": "OK"}},
        }
        if op.description:
            entry["description"] = op.description
        given = {param["name"] for param in op.parameters}
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(op.path)
            if name not in given
        ] + [dict(param) for param in op.parameters]
        if params:
            entry["parameters"] = params
        if op.request_body is not None:
            entry["requestBody"] = dict(op.request_body)
        if op.auth != "none":
            entry["security"] = [{op.auth: []}]
        paths.setdefault(path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": {"Error": ERROR_SCHEMA}, "securitySchemes": _SECURITY},
    }
