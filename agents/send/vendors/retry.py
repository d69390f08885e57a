"""Retrying a send: transient errors with exponential backoff, never a second message.

Every attempt carries the message's idempotency key. After an *ambiguous* failure (a timeout or 5xx once
the request had left) a vendor that deduplicates by that key (Telnyx) is simply asked again; for one
that does not (Twilio's Messages API has no idempotency key) the client first looks for the message
it may have created, and only resends when it is not there.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agents.send.vendors.base import OutboundMessage, SMSClient, VendorError, VendorReceipt
from config.settings import VendorSettings

__all__ = ["RetryPolicy", "send_with_retry"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 4
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0

    @classmethod
    def from_settings(cls, settings: VendorSettings) -> RetryPolicy:
        return cls(settings.max_attempts, settings.backoff_initial_s, settings.backoff_max_s)

    def delay(self, attempt: int, jitter: float) -> float:
        """Backoff before attempt ``attempt + 1``: doubling, capped, with jitter in [0.5, 1)."""
        base: float = self.backoff_initial_s * 2.0 ** (attempt - 1)
        return min(self.backoff_max_s, base) * (0.5 + jitter / 2)


async def send_with_retry(
    client: SMSClient,
    message: OutboundMessage,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    jitter: Callable[[], float] = random.random,
) -> VendorReceipt:
    """Send ``message``; retry transient errors; raise the last VendorError when giving up. A permanent
    error is raised at once (its ``category`` goes on MessageFailed)."""
    attempt = 1
    while True:
        try:
            return await client.send(message)
        except VendorError as exc:
            if not exc.transient or attempt >= policy.max_attempts:
                raise
            if exc.ambiguous and not client.deduplicates_retries:
                try:
                    found = await client.find_sent(message)
                except VendorError as lookup_exc:
                    # Unknown whether it went out: resending could send twice, so give up ambiguous.
                    log.warning("message %s: ambiguous failure and the lookup failed too (%s)",
                                message.message_id, lookup_exc)
                    raise exc from lookup_exc
                if found is not None:
                    return found
            delay = policy.delay(attempt, jitter())
            if exc.retry_after_s is not None:
                delay = max(delay, min(exc.retry_after_s, policy.backoff_max_s))
            log.info("message %s: attempt %d failed (%s); retrying in %.2fs",
                     message.message_id, attempt, exc, delay)
            await sleep(delay)
            attempt += 1
