"""Per-client rate limits for public routes (``/l/{code}``): a token bucket per client address, answered
429 with Retry-After when empty. The table is bounded: the least recently seen clients are forgotten
first, so a flood of distinct addresses cannot grow memory (a forgotten client starts with a full bucket).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

from gateway.errors import ApiError

__all__ = ["ClientRateLimiter", "client_address"]


class ClientRateLimiter:
    """``rate`` requests per second per client, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: float, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError(f"need rate > 0, burst >= 1 and max_clients >= 1, got {rate}, {burst}, "
                             f"{max_clients}")
        self.rate, self.burst, self.max_clients = rate, burst, max_clients
        self._clock = clock
        # client → (tokens, when they were counted)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """Take a token for ``client``: 0 when allowed, else the seconds until the next token."""
        now = self._clock()
        tokens, at = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    def check(self, request: web.Request) -> None:
        """Raise a 429 (JSON, Retry-After in whole seconds) when the request's client is over its rate."""
        wait = self.retry_after(client_address(request))
        if wait > 0:
            raise ApiError(429, "rate_limited", "too many requests from this client; retry later",
                           headers={"Retry-After": str(max(1, math.ceil(wait)))})


def client_address(request: web.Request) -> str:
    """The peer address. X-Forwarded-For is not trusted: any client could set it to dodge its limit
    (behind a load balancer, have the balancer rate limit, or terminate the limit there)."""
    return request.remote or "unknown"
