"""``GET /join/{company}/{keyword}``: a click-to-consent sign-up link.

It answers with an ``sms:`` link to the company's first number with the opt-in keyword pre-filled. iOS
(8 and later) reads the body after ``&body=``, Android after ``?body=``; ``sms:+1...?&body=KEYWORD``
satisfies both, so that is the link given to an unknown agent, while a known iPhone or Android browser
gets its own form. The default answer is a tiny HTML page with the link (in-app browsers often refuse a
redirect to a non-http scheme); ``?redirect=1`` answers 302, ``Accept: application/json`` answers JSON.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

from aiohttp import web

from config.companies import Company, CompanyDirectory
from gateway.api import Operation, add_operation
from gateway.errors import ApiError
from gateway.openapi import error_responses

__all__ = ["JOIN_COMPANIES_KEY", "OPT_IN_KEYWORDS", "add_join_routes", "join_page", "sms_link"]

# The standard opt-in keywords (DOMAIN.md section 3); company keywords that subscribe are added.
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
_KEYWORD = re.compile(r"[A-Za-z0-9]{1,20}")

JOIN_COMPANIES_KEY = web.AppKey("join_companies", CompanyDirectory)


def add_join_routes(app: web.Application, companies: CompanyDirectory) -> None:
    """Add ``GET /join/{company}/{keyword}`` to ``app`` and its OpenAPI document."""
    app[JOIN_COMPANIES_KEY] = companies
    add_operation(app, Operation(
        "GET", "/join/{company}/{keyword}", join_page, "joinLink", "A click-to-consent sign-up link", "links",
        description=("An sms: link to the company's number with the opt-in keyword pre-filled (HTML by "
                     "default, JSON for Accept: application/json, 302 with ?redirect=1)."),
        responses={"200": {"description": "the sign-up page or JSON"},
                   "302": {"description": "redirect to the sms: link (?redirect=1)"},
                   **error_responses("404")},
    ))


def sms_link(number: str, body: str, platform: str = "any") -> str:
    """An ``sms:`` URI to ``number`` with ``body`` pre-filled, for ios, android or any platform."""
    separator = {"ios": "&", "android": "?", "any": "?&"}[platform]
    return f"sms:{number}{separator}body={quote(body, safe='')}"


def _platform(user_agent: str) -> str:
    ua = user_agent.lower()
    if "iphone" in ua or "ipad" in ua or "ipod" in ua:
        return "ios"
    if "android" in ua:
        return "android"
    return "any"


def _opt_in_keywords(company: Company) -> set[str]:
    custom = company.keywords.custom.items()
    return set(OPT_IN_KEYWORDS) | {word.upper() for word, kw in custom if kw.consent_effect == "subscribe"}


async def join_page(request: web.Request) -> web.StreamResponse:
    """The sign-up link for one company and opt-in keyword."""
    company = request.app[JOIN_COMPANIES_KEY].get(request.match_info["company"])
    if company is None or not company.numbers:
        raise ApiError(404, "unknown_company", "no such company, or it has no sending number")
    keyword = request.match_info["keyword"]
    if not _KEYWORD.fullmatch(keyword) or keyword.upper() not in _opt_in_keywords(company):
        raise ApiError(404, "unknown_keyword", f"{keyword[:20]!r} is not an opt-in keyword of {company.id}")
    keyword = keyword.upper()
    number = company.numbers[0]
    link = sms_link(number, keyword, _platform(request.headers.get("User-Agent", "")))

    if request.query.get("redirect") == "1":
        return web.Response(status=302, headers={"Location": link, "Cache-Control": "no-store"})
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"company": company.id, "number": number, "keyword": keyword,
                                  "sms_link": link, "sms_link_any": sms_link(number, keyword)})
    title = html.escape(company.program_name)
    page = (
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>Join {title}</title></head><body>"
        f"<p><a href=\"{html.escape(link)}\">Text {html.escape(keyword)} to {html.escape(number)} "
        f"to join {title}</a></p>"
        "<p>Msg&amp;data rates may apply. Reply STOP to opt out, HELP for help.</p>"
        "</body></html>"
    )
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})
