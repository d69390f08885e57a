"""``GET /l/{code}``: the short-link redirect. 302 to the stored URL, never anywhere else.

The click is recorded as ``LinkClicked`` fire-and-forget: the redirect never waits for Kafka (a lost
click is logged, a slow redirect loses the customer). Unknown, expired or unsafe links answer 404.
``create_app`` wires it with :func:`add_link_routes`; the lookup is ``projections.links.RedisLinkStore``
in production (without one every code is unknown).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Protocol

from aiohttp import web

from gateway.api import Operation, add_operation
from gateway.clicks import classify_click
from gateway.errors import ApiError
from gateway.keys import SETTINGS_KEY
from gateway.openapi import error_responses
from gateway.ratelimit import ClientRateLimiter
from streams.events import Event, LinkClicked, event_id_for
from streams.urls import UnsafeUrlError, safe_url

__all__ = [
    "CLICK_EMITTER_KEY",
    "LINK_LIMITER_KEY",
    "LINK_LOOKUP_KEY",
    "ClickEmitter",
    "KafkaEventEmitter",
    "LinkLookup",
    "LinkTarget",
    "NoLinks",
    "add_link_routes",
    "redirect_link",
]

log = logging.getLogger(__name__)

# Base62 codes; anything else cannot be a code and is not looked up.
_CODE = re.compile(r"[0-9A-Za-z]{4,32}")
_MAX_USER_AGENT = 512


class LinkTarget(Protocol):
    """What the redirect needs of a stored link (``projections.links.StoredLink``)."""

    @property
    def url(self) -> str: ...
    @property
    def company_id(self) -> str: ...
    @property
    def profile_key(self) -> str: ...
    @property
    def message_id(self) -> str: ...


class LinkLookup(Protocol):
    async def get(self, code: str, now_ms: int | None = None) -> LinkTarget | None: ...


class ClickEmitter(Protocol):
    def emit_nowait(self, event: Event) -> None:
        """Hand an event to the log without waiting for its acknowledgement."""
        ...


class NowaitProducer(Protocol):
    """What KafkaEventEmitter needs of ``streams.producer.EventLogProducer``."""

    def send_nowait(self, topic: str, key: bytes | None, value: bytes, /) -> asyncio.Future[None]: ...


class EventEncoder(Protocol):
    def encode(self, model: Event, /) -> bytes: ...


class KafkaEventEmitter:
    """ClickEmitter over the event log producer: enqueue, and log (never raise) when Kafka refuses."""

    def __init__(self, producer: NowaitProducer, codec: EventEncoder, topic: str) -> None:
        self._producer = producer
        self._codec = codec
        self._topic = topic
        self.failed = 0

    def emit_nowait(self, event: Event) -> None:
        try:
            future = self._producer.send_nowait(
                self._topic, event.profile_key.encode(), self._codec.encode(event)
            )
        except Exception as exc:  # a full local queue or a stopped producer: the click is lost, logged
            self._lost(event, exc)
            return
        future.add_done_callback(lambda done: self._settled(event, done))

    def _settled(self, event: Event, done: asyncio.Future[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            self._lost(event, done.exception())

    def _lost(self, event: Event, exc: BaseException | None) -> None:
        self.failed += 1
        log.warning("%s %s not recorded: %s", event.event_type, event.event_id, exc)


LINK_LOOKUP_KEY = web.AppKey[LinkLookup]("link_lookup")
CLICK_EMITTER_KEY = web.AppKey[ClickEmitter]("click_emitter")
LINK_LIMITER_KEY = web.AppKey[ClientRateLimiter]("link_limiter")


class NoLinks:
    """The lookup and emitter of a gateway built without a link store: no code is known."""

    async def get(self, code: str, now_ms: int | None = None) -> LinkTarget | None:
        return None

    def emit_nowait(self, event: Event) -> None:
        return None


def add_link_routes(app: web.Application, lookup: LinkLookup, emitter: ClickEmitter) -> None:
    """Add ``GET /l/{code}`` (HEAD too, recorded as a bot click) to ``app`` and its OpenAPI document."""
    app[LINK_LOOKUP_KEY] = lookup
    app[CLICK_EMITTER_KEY] = emitter
    gateway = app[SETTINGS_KEY].gateway
    # Codes are guessable only by brute force: a per-client limit makes enumeration slow.
    app[LINK_LIMITER_KEY] = ClientRateLimiter(gateway.link_rate_per_s, gateway.link_burst)
    for method, op_id in (("GET", "followLink"), ("HEAD", "probeLink")):
        add_operation(app, Operation(
            method, "/l/{code}", redirect_link, op_id, "Follow a short link (302 to its stored URL)", "links",
            description="Records a LinkClicked without waiting for Kafka; HEAD and prefetches are bot clicks",
            responses={"302": {"description": "redirect to the link's stored http(s) URL"},
                       **error_responses("404", "429")},
        ))


def _not_found() -> ApiError:
    return ApiError(404, "unknown_link", "no such link, or it has expired")


async def redirect_link(request: web.Request) -> web.Response:
    """302 to the link's stored URL and record the click; 404 for an unknown or expired code."""
    request.app[LINK_LIMITER_KEY].check(request)
    code = request.match_info["code"]
    if not _CODE.fullmatch(code):
        raise _not_found()
    now_ms = time.time_ns() // 1_000_000
    link = await request.app[LINK_LOOKUP_KEY].get(code, now_ms)
    if link is None:
        raise _not_found()
    try:
        target = safe_url(link.url)
    except UnsafeUrlError as exc:
        log.error("short link %s holds an unsafe URL (%s); refusing to redirect", code, exc)
        raise _not_found() from None

    click = classify_click(request.method, request.headers)
    request.app[CLICK_EMITTER_KEY].emit_nowait(LinkClicked(
        # Each request is one click; the id only has to be unique and stable once minted.
        event_id=event_id_for("LinkClicked", code, uuid.uuid4().hex),
        company_id=link.company_id,
        profile_key=link.profile_key,
        occurred_at=now_ms,
        received_at=now_ms,
        message_id=link.message_id,
        code=code,
        is_bot=click.is_bot,
        agent_class=click.agent_class,
        bot_signal=click.signal,
        user_agent=request.headers.get("User-Agent", "")[:_MAX_USER_AGENT],
    ))
    # 302, not 301: a cached permanent redirect would never reach us again and its clicks would be lost.
    return web.Response(
        status=302,
        headers={"Location": target, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )
