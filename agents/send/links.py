"""Link shortening: every safe http(s) link in a body becomes ``{company link domain}/{code}``.

Codes are random base62 (``secrets``), created insert-if-absent in the link store and retried on a
collision. The n-th link of a message keeps its code when the message is decided again, so re-processing
a send request re-emits the same ``LinkCreated`` events (same ids) and the same body.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from config.companies import Company
from projections.links import COLLISION, StoredLink
from streams.events import Event, LinkCreated, event_id_for
from streams.urls import UnsafeUrlError, safe_url

__all__ = [
    "BASE62",
    "LinkError",
    "LinkStore",
    "RefusedLink",
    "ShortenedBody",
    "find_links",
    "random_code",
    "shorten_body",
]

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
MAX_ATTEMPTS = 5
_DAY_MS = 86_400_000
# A link runs to the next whitespace or a character that never ends a URL in running text.
_LINK = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
# Punctuation that ends a sentence rather than the URL ("see https://x.example/a.").
_TRAILING = ".,;:!?)]}'\""


class LinkError(RuntimeError):
    """Links could not be shortened (the store kept colliding)."""


class LinkStore(Protocol):
    """What the shortener needs of ``projections.links.RedisLinkStore``."""

    async def put_if_absent(self, link: StoredLink, index: int) -> tuple[int, str]: ...


@dataclass(frozen=True, slots=True)
class RefusedLink:
    """A link left as written because it is not safe to shorten."""

    url: str
    reason: str


@dataclass(frozen=True, slots=True)
class ShortenedBody:
    body: str
    created: list[LinkCreated] = field(default_factory=list)
    refused: list[RefusedLink] = field(default_factory=list)


def random_code(length: int) -> str:
    """A random base62 code (62^8 ≈ 2.2e14 codes at the default length)."""
    return "".join(secrets.choice(BASE62) for _ in range(length))


def find_links(body: str) -> list[tuple[int, int, str]]:
    """(start, end, url) of every http(s) link in ``body``, trailing sentence punctuation excluded."""
    found = []
    for match in _LINK.finditer(body):
        url = match.group(0)
        while url and url[-1] in _TRAILING:
            # Keep a closing bracket that closes one inside the URL (Wikipedia-style paths).
            if url[-1] == ")" and url.count("(") >= url.count(")"):
                break
            url = url[:-1]
        if len(url) > len("https://"):
            found.append((match.start(), match.start() + len(url), url))
    return found


async def shorten_body(
    body: str,
    company: Company,
    cause: Event,
    now_ms: int,
    store: LinkStore,
    new_code: Callable[[int], str] = random_code,
) -> ShortenedBody:
    """Replace each safe link in ``body`` with a short link of ``company``; ``cause`` (the send request,
    with ``message_id`` set) gives the links their message, profile and event ids."""
    if cause.message_id is None:
        raise ValueError("the send request has no message_id; links are attributed to a message")
    sending = company.sending
    domain = sending.link_domain.rstrip("/")
    expires_at = now_ms + sending.link_ttl_days * _DAY_MS
    pieces: list[str] = []
    created: list[LinkCreated] = []
    refused: list[RefusedLink] = []
    last = 0
    for index, (start, end, url) in enumerate(find_links(body)):
        try:
            safe_url(url)
        except UnsafeUrlError as exc:
            refused.append(RefusedLink(url, str(exc)))
            continue
        code = await _insert(store, company, cause, url, index, now_ms, expires_at, new_code)
        pieces += [body[last:start], f"{domain}/{code}"]
        last = end
        created.append(LinkCreated(
            event_id=event_id_for("LinkCreated", cause.message_id, str(index)),
            company_id=company.id,
            profile_key=cause.profile_key,
            occurred_at=now_ms,
            received_at=cause.received_at,
            causation_id=cause.event_id,
            message_id=cause.message_id,
            flow_id=cause.flow_id,
            campaign_id=cause.campaign_id,
            code=code,
            url=url,
            expires_at=expires_at,
        ))
    pieces.append(body[last:])
    return ShortenedBody("".join(pieces), created, refused)


async def _insert(
    store: LinkStore, company: Company, cause: Event, url: str, index: int, now_ms: int, expires_at: int,
    new_code: Callable[[int], str],
) -> str:
    assert cause.message_id is not None
    for _ in range(MAX_ATTEMPTS):
        link = StoredLink(code=new_code(company.sending.link_code_length), url=url, company_id=company.id,
                          profile_key=cause.profile_key, message_id=cause.message_id,
                          created_at=now_ms, expires_at=expires_at)
        status, code = await store.put_if_absent(link, index)
        if status != COLLISION:
            return code
    raise LinkError(f"no free link code after {MAX_ATTEMPTS} attempts for message {cause.message_id}")
