"""The JSON API's base: a registry of operations (route + OpenAPI description) and API-key auth that
resolves the calling company and refuses access to any other company's data.

Later modules add their endpoints with :func:`add_operation`; ``auth="api_key"`` wraps the handler so it
runs only for a valid key, with the company in ``request[COMPANY_KEY]``, and a ``{company_id}`` path
parameter must name that company.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from config.companies import Company, CompanyDirectory
from gateway.errors import ApiError
from gateway.keys import COMPANY_KEY

__all__ = [
    "API_KEYS_KEY",
    "OPERATIONS_KEY",
    "Auth",
    "Operation",
    "add_operation",
    "api_key_index",
    "authenticate",
    "hash_api_key",
    "require_company",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Auth = Literal["none", "api_key", "twilio", "telnyx", "bandwidth"]


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint: its route, its handler and what the OpenAPI document says about it."""

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    auth: Auth = "none"
    description: str = ""
    # An OpenAPI requestBody object, and response objects by status code.
    request_body: Mapping[str, Any] | None = None
    responses: Mapping[str, Any] = field(default_factory=dict)
    # OpenAPI parameter objects; a path parameter not listed here is documented as a plain string.
    parameters: tuple[Mapping[str, Any], ...] = ()


OPERATIONS_KEY = web.AppKey("operations", list[Operation])
API_KEYS_KEY = web.AppKey("api_keys", dict)


def hash_api_key(key: str) -> str:
    """How API keys are stored at rest: SHA-256 hex (keys are long random tokens, so no salt is needed)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_key_index(companies: CompanyDirectory) -> dict[str, Company]:
    """Key hash → company; a hash configured for two companies is refused."""
    index: dict[str, Company] = {}
    for company in companies:
        for digest in company.api_key_hashes:
            owner = index.setdefault(digest.lower(), company)
            if owner.id != company.id:
                raise ValueError(f"an API key hash is configured for both {owner.id!r} and {company.id!r}")
    return index


def _presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("X-Api-Key") or None


def authenticate(request: web.Request) -> Company:
    """The company whose API key the request carries (``Authorization: Bearer`` or ``X-Api-Key``)."""
    key = _presented_key(request)
    if key is None:
        raise ApiError(
            401,
            "missing_api_key",
            "send an API key as Authorization: Bearer <key> or X-Api-Key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Looking up a SHA-256 digest leaks nothing usable about the key through timing.
    company = request.app[API_KEYS_KEY].get(hash_api_key(key))
    if company is None:
        raise ApiError(
            401, "invalid_api_key", "the API key is not valid", headers={"WWW-Authenticate": "Bearer"}
        )
    assert isinstance(company, Company)
    return company


def require_company(request: web.Request, company_id: str) -> Company:
    """The authenticated company, if it is ``company_id``; a 403 for anyone else's data."""
    company = request[COMPANY_KEY]
    if company_id != company.id:
        raise ApiError(
            403, "forbidden", "this API key cannot access another company's data", field="company_id"
        )
    return company


def _with_api_key(handler: Handler) -> Handler:
    async def authenticated(request: web.Request) -> web.StreamResponse:
        request[COMPANY_KEY] = authenticate(request)
        if "company_id" in request.match_info:
            require_company(request, request.match_info["company_id"])
        return await handler(request)

    return authenticated


def add_operation(app: web.Application, operation: Operation) -> None:
    """Route ``operation`` and list it in the OpenAPI document."""
    handler = _with_api_key(operation.handler) if operation.auth == "api_key" else operation.handler
    app.router.add_route(operation.method, operation.path, handler, name=operation.operation_id)
    app[OPERATIONS_KEY].append(operation)
