"""Per-sending-number rate limits: a token bucket per number, at its number type's rate.

US carriers throttle by sender: a 10DLC long code takes about 1 message/s, a toll-free number 3, a short
code 100 (settings). The bucket holds ``burst_s`` seconds of tokens, so a quiet number may burst a little.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

import phonenumbers

from config.settings import VendorSettings

__all__ = ["SendingRateLimiter", "TokenBucket", "number_kind"]

_SHORT_CODE = re.compile(r"\d{5,6}")


def number_kind(number: str) -> str:
    """``short_code``, ``toll_free`` or ``long_code`` for a sending number."""
    if _SHORT_CODE.fullmatch(number):
        return "short_code"
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        raise ValueError(f"sending number {number[:20]!r} is neither E.164 nor a short code") from None
    if phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.TOLL_FREE:
        return "toll_free"
    return "long_code"


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` saved up."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError(f"a token bucket needs rate > 0 and capacity >= 1, got {rate}, {capacity}")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._at = clock()

    def try_acquire(self) -> float:
        """Take a token and return 0.0, or return the seconds until one is available."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        # The epsilon absorbs float rounding: after waiting exactly the advised time the refill may come
        # to 0.999..., and a wait too small to move the clock would then spin forever.
        if self._tokens >= 1 - 1e-9:
            self._tokens = max(0.0, self._tokens - 1)
            return 0.0
        return (1 - self._tokens) / self.rate

    async def acquire(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Wait until a token is available, then take it."""
        while (wait := self.try_acquire()) > 0:
            await sleep(wait)


class SendingRateLimiter:
    """One token bucket per sending number, created on first use at the number type's rate."""

    def __init__(self, settings: VendorSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._rates = {"long_code": settings.long_code_mps, "toll_free": settings.toll_free_mps,
                       "short_code": settings.short_code_mps}
        self._burst_s = settings.burst_s
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, number: str) -> TokenBucket:
        bucket = self._buckets.get(number)
        if bucket is None:
            rate = self._rates[number_kind(number)]
            bucket = TokenBucket(rate, max(1.0, rate * self._burst_s), self._clock)
            self._buckets[number] = bucket
        return bucket

    async def acquire(self, number: str, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        await self.bucket(number).acquire(sleep)
