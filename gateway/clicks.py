"""Classifying a click: which kind of agent followed a short link, and whether it was a bot.

Bot and prefetch clicks are kept, flagged, and never attributed: a ``Sec-Purpose``/``Purpose: prefetch``
header, a HEAD request, or a link-preview agent (iMessage fetches previews as facebookexternalhit +
Twitterbot, Slack, WhatsApp, Telegram, Discord, ...), a crawler, or a plain HTTP client library.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ClickClass", "classify_click"]

# Link-preview fetchers of messengers and social apps (lower case substrings of their user agents).
PREVIEW_AGENTS = (
    "facebookexternalhit", "facebot", "twitterbot", "slackbot", "slack-imgproxy", "whatsapp",
    "telegrambot", "discordbot", "linkedinbot", "skypeuripreview", "applebot", "pinterestbot",
    "redditbot", "embedly", "snapchat", "viber", "google-pagerenderer", "iframely", "vkshare",
    "bitlybot", "outbrain", "mastodon",
)
_CRAWLER = re.compile(r"bot\b|bot/|crawl|spider|slurp|preview|fetcher|headless|lighthouse", re.IGNORECASE)
_HTTP_CLIENT = re.compile(
    r"^(curl|wget|python-requests|python-urllib|python-httpx|aiohttp|go-http-client|java/|okhttp|"
    r"axios|node-fetch|libwww-perl|httpie|postmanruntime)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ClickClass:
    """``agent_class``: ios, android, desktop, preview, crawler, http_client, unknown.
    ``signal`` names what made it a bot (empty for a human click)."""

    agent_class: str
    is_bot: bool
    signal: str = ""


def _agent_class(user_agent: str) -> str:
    ua = user_agent.lower()
    if any(agent in ua for agent in PREVIEW_AGENTS):
        return "preview"
    if _HTTP_CLIENT.match(user_agent):
        return "http_client"
    if _CRAWLER.search(user_agent):
        return "crawler"
    if "iphone" in ua or "ipad" in ua or "ipod" in ua:
        return "ios"
    if "android" in ua:
        return "android"
    if any(marker in ua for marker in ("windows nt", "macintosh", "x11", "cros")):
        return "desktop"
    return "unknown"


def classify_click(method: str, headers: Mapping[str, str]) -> ClickClass:
    """Classify one request for a short link by its method and headers."""
    agent_class = _agent_class(headers.get("User-Agent", ""))
    prefetch = any(
        "prefetch" in headers.get(name, "").lower() or "prerender" in headers.get(name, "").lower()
        for name in ("Sec-Purpose", "Purpose", "X-Purpose", "X-Moz")
    )
    if prefetch:
        return ClickClass(agent_class, True, "prefetch_header")
    if method.upper() == "HEAD":
        return ClickClass(agent_class, True, "head_request")
    if agent_class in ("preview", "crawler", "http_client"):
        return ClickClass(agent_class, True, f"{agent_class}_agent")
    return ClickClass(agent_class, False)
