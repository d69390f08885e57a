"""The sender's side effects, kept out of the pure fold: links shortened, segments counted, the vendor
called, for a batch of ``SendApproved`` decisions.

The guarantee: at most one message per approval reaches the vendor, whatever is redelivered.

- An approval is marked ``attempted`` in the attempt log (a changelog-backed Faust table in the worker)
  and the mark is made durable (the producer is flushed) *before* any vendor sees the message; it is
  marked ``done`` together with the MessageSent/MessageFailed it produced, both flushed before the batch's
  offsets are committed. A ``done`` approval that comes again (the profile decider re-emits its last
  outputs after a crash) is skipped.
- An approval found ``attempted`` was cut short by a crash after the mark and before its outcome: the
  vendor may have the message. A vendor that deduplicates by idempotency key (Telnyx, the simulator) is
  simply asked again under the same key (the message id); for one that does not (Twilio) the client's
  ``find_sent`` looks for it first, and if that lookup fails the message is reported failed
  (``unconfirmed``) rather than risk a second copy.
- Within one run, transient vendor errors are retried by ``send_with_retry`` under the same key.

So the effect is at-most-once per message with reconciliation; a message is lost only when a crash hits a
non-deduplicating vendor and its lookup fails, and that case is reported, never silent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agents.base import retry_forever
from agents.send.compose import message_failed, message_sent
from agents.send.links import LinkStore, shorten_body
from agents.send.segments import SegmentCount, count_segments
from agents.send.vendors.base import FailureCategory, OutboundMessage, SMSClient, VendorError, VendorReceipt
from agents.send.vendors.ratelimit import SendingRateLimiter
from agents.send.vendors.retry import RetryPolicy, send_with_retry
from config.companies import Company, CompanyDirectory
from streams.events import Event, SendApproved

__all__ = ["ATTEMPTED", "DONE", "AttemptLog", "Dispatcher", "MemoryAttemptLog", "SendOutcome"]

log = logging.getLogger(__name__)

ATTEMPTED, DONE = "attempted", "done"
# Where each vendor's status callbacks come in, under the gateway's public URL.
_CALLBACK_PATHS = {"twilio": "/webhooks/twilio/status", "telnyx": "/webhooks/telnyx/status"}


class AttemptLog(Protocol):
    """Per-message marks that survive a crash once flushed."""

    def get(self, approved: SendApproved) -> str | None: ...

    def put(self, approved: SendApproved, mark: str) -> None: ...

    async def flush(self) -> None:
        """Make every mark put so far durable."""
        ...


class MemoryAttemptLog:
    """An attempt log in a dict (tests; the worker's lives in a Faust table)."""

    def __init__(self) -> None:
        self.marks: dict[str, str] = {}
        self.flushes = 0

    def get(self, approved: SendApproved) -> str | None:
        return self.marks.get(str(approved.message_id))

    def put(self, approved: SendApproved, mark: str) -> None:
        self.marks[str(approved.message_id)] = mark

    async def flush(self) -> None:
        self.flushes += 1


@dataclass(slots=True)
class SendOutcome:
    """What one approval produced: its LinkCreated events, then MessageSent or MessageFailed."""

    approved: SendApproved
    events: list[Event] = field(default_factory=list)


@dataclass(slots=True)
class _Prepared:
    approved: SendApproved
    company: Company
    body: str
    count: SegmentCount
    outcome: SendOutcome
    reattempt: bool


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Dispatcher:
    """Turns approvals into vendor calls and their outcome events (see the module doc)."""

    def __init__(
        self,
        companies: CompanyDirectory,
        client_for: Callable[[Company], SMSClient],
        links: LinkStore,
        limiter: SendingRateLimiter,
        policy: RetryPolicy,
        callback_base_url: str,
        *,
        clock: Callable[[], int] = _now_ms,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_outcome: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self._companies = companies
        self._client_for = client_for
        self._links = links
        self._limiter = limiter
        self._policy = policy
        self._callback_base = callback_base_url.rstrip("/")
        self._clock = clock
        self._sleep = sleep
        self._on_outcome = on_outcome or (lambda vendor, company, outcome: None)

    async def dispatch(self, approvals: Sequence[SendApproved], attempts: AttemptLog) -> list[SendOutcome]:
        """Send every approval not done yet; outcomes in approval order (the caller emits them, then
        marks each ``done``)."""
        prepared: list[_Prepared] = []
        seen: set[str] = set()
        for approved in approvals:
            mark = attempts.get(approved)
            if mark == DONE or str(approved.message_id) in seen:
                continue
            seen.add(str(approved.message_id))
            item = await self._prepare(approved, reattempt=mark == ATTEMPTED)
            if item is not None:
                prepared.append(item)
        if not prepared:
            return []
        for item in prepared:
            attempts.put(item.approved, ATTEMPTED)
        await attempts.flush()
        groups: dict[str, list[_Prepared]] = {}
        for item in prepared:
            groups.setdefault(item.approved.from_number, []).append(item)
        # Numbers are rate limited independently: one slow long code does not hold up a short code.
        await asyncio.gather(*(self._send_group(group) for group in groups.values()))
        return [item.outcome for item in prepared]

    async def _prepare(self, approved: SendApproved, reattempt: bool) -> _Prepared | None:
        company = self._companies.get(approved.company_id)
        if company is None:
            log.error("approval %s names unknown company %r; dropped", approved.event_id, approved.company_id)
            return None
        # Codes are fixed per (message, link index) by the store, so preparing again yields the same body;
        # while the store is down the batch waits (nothing was sent yet).
        shortened = await retry_forever("link shortening", shorten_body, approved.body, company, approved,
                                        self._clock(), self._links)
        outcome = SendOutcome(approved, list(shortened.created))
        count = count_segments(shortened.body)
        return _Prepared(approved, company, shortened.body, count, outcome, reattempt)

    async def _send_group(self, group: list[_Prepared]) -> None:
        for item in group:
            item.outcome.events.append(await self._send_one(item))

    async def _send_one(self, item: _Prepared) -> Event:
        approved, company = item.approved, item.company
        try:
            client = self._client_for(company)
        except ValueError as exc:
            error = VendorError("smsfold", str(exc), transient=False,
                               category=FailureCategory.SENDER_NOT_CONFIGURED)
            return self._failed(approved, error)
        message = OutboundMessage(
            message_id=str(approved.message_id), company_id=company.id, from_number=approved.from_number,
            to_number=approved.phone, body=item.body, idempotency_key=str(approved.message_id),
            status_callback_url=self._callback_url(client.vendor),
        )
        receipt: VendorReceipt | None = None
        if item.reattempt and not client.deduplicates_retries:
            try:
                receipt = await client.find_sent(message)
            except VendorError as exc:
                log.warning("message %s: re-attempt after a crash and the lookup failed (%s); not resending",
                            message.message_id, exc)
                return self._failed(approved, VendorError(client.vendor, str(exc), transient=False,
                                                          code="unconfirmed"))
        if receipt is None:
            await self._limiter.acquire(message.from_number, self._sleep)
            try:
                receipt = await send_with_retry(client, message, self._policy, self._sleep)
            except VendorError as exc:
                return self._failed(approved, exc)
        self._on_outcome(receipt.vendor, company.id, "replayed" if receipt.replayed else "sent")
        return message_sent(approved, receipt, item.count, company.sending, self._clock())

    def _failed(self, approved: SendApproved, error: VendorError) -> Event:
        self._on_outcome(error.vendor, approved.company_id, "failed")
        return message_failed(approved, error, self._clock())

    def _callback_url(self, vendor: str) -> str | None:
        path = _CALLBACK_PATHS.get(vendor)
        return self._callback_base + path if path else None
