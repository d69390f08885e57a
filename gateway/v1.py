"""The first JSON API endpoint, on the API base: a company reads its own profile (and nobody else's)."""

from __future__ import annotations

from aiohttp import web

from gateway.api import Operation, add_operation
from gateway.keys import COMPANY_KEY
from gateway.openapi import error_responses

__all__ = ["add_v1_routes"]


async def company_profile(request: web.Request) -> web.Response:
    company = request[COMPANY_KEY]
    return web.json_response(
        {
            "id": company.id,
            "name": company.name,
            "program_name": company.program_name,
            "numbers": list(company.numbers),
            "vendors": [v for v in ("twilio", "telnyx", "bandwidth") if getattr(company, v) is not None],
        }
    )


def add_v1_routes(app: web.Application) -> None:
    add_operation(
        app,
        Operation(
            "GET",
            "/v1/companies/{company_id}",
            company_profile,
            "getCompany",
            "The calling company's profile",
            "api",
            auth="api_key",
            responses={
                "200": {
                    "description": "the company",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "id": {"type": "string"},
                                    "name": {"type": "string"},
                                    "program_name": {"type": "string"},
                                    "numbers": {"type": "array", "items": {"type": "string"}},
                                    "vendors": {"type": "array", "items": {"type": "string"}},
                                },
                            }
                        }
                    },
                },
                **error_responses("401", "403"),
            },
        ),
    )
