"""Send the planned messages through the gateway's public webhook endpoints at the requested rate."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import aiohttp

from smsfold.loadtest.generate import PlannedMessage
from smsfold.loadtest.options import LoadTestOptions
from smsfold.webhooks import SignedRequest

__all__ = ["SendResult", "SendStats", "send_all"]


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one message at the gateway."""

    message: PlannedMessage
    sent_at: float  # epoch seconds
    ack_ms: float
    status: int  # HTTP status, or 0 when the request itself failed
    error: str = ""

    @property
    def acknowledged(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class SendStats:
    """Live counters for the progress display."""

    sent: int = 0
    acked: int = 0
    errors: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    _recent: deque[float] = field(default_factory=deque)

    def record(self, result: SendResult) -> None:
        self.sent += 1
        if result.acknowledged:
            self.acked += 1
            self._recent.append(time.monotonic())
        else:
            self.errors += 1
        self.statuses[str(result.status) if result.status else result.error or "error"] += 1

    def current_rate(self) -> float:
        """Acknowledged messages per second over the last second."""
        cutoff = time.monotonic() - 1.0
        while self._recent and self._recent[0] < cutoff:
            self._recent.popleft()
        return float(len(self._recent))


# The longest a worker sleeps before it looks at the stop event again (Ctrl-C).
_STOP_CHECK_S = 0.25


async def _wait_until(due: float, stop: asyncio.Event) -> bool:
    """Sleep until ``due`` (monotonic); False if ``stop`` was set first. Plain sleeps checked against the
    event: ``wait_for(stop.wait(), delay)`` built a task and its cancellation for every message, which
    cost the generator (on the machine it loads) more than the request's own scheduling."""
    while (left := due - time.monotonic()) > 0:
        if stop.is_set():
            return False
        await asyncio.sleep(min(left, _STOP_CHECK_S))
    return not stop.is_set()


async def send_all(
    options: LoadTestOptions,
    gateway_url: str,
    plan: Iterator[PlannedMessage],
    sign: Callable[[PlannedMessage], SignedRequest],
    stats: SendStats,
    stop: asyncio.Event,
) -> list[SendResult]:
    """Send until the plan, the duration or ``stop`` ends the run; returns one result per message sent."""
    results: list[SendResult] = []
    start = time.monotonic()
    deadline = start + options.duration_s if options.duration_s is not None else None
    lock = asyncio.Lock()
    # Scheduled send time of the next message: the rate (or step pattern) spaces messages out.
    next_due = [start]
    messages = iter(plan)
    connector = aiohttp.TCPConnector(limit=options.workers, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)

    async def next_message() -> tuple[PlannedMessage, float] | None:
        async with lock:
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return None
            due = next_due[0]
            if deadline is not None and due >= deadline:
                return None  # scheduled past the end of the run: not sent
            message = next(messages, None)
            if message is None:
                return None
            rate = options.rate_at(due - start)
            next_due[0] = due + (1.0 / rate if rate else 0.0)
            return message, due

    async def worker(session: aiohttp.ClientSession) -> None:
        while (item := await next_message()) is not None:
            message, due = item
            if not await _wait_until(due, stop):
                return  # stopped while waiting: this message is not sent
            request = sign(message)
            sent_at = time.time()
            t0 = time.perf_counter()
            try:
                async with session.post(
                    gateway_url + request.path, data=request.body, headers=request.headers
                ) as resp:
                    await resp.read()
                    result = SendResult(message, sent_at, (time.perf_counter() - t0) * 1000, resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                result = SendResult(
                    message, sent_at, (time.perf_counter() - t0) * 1000, 0, type(exc).__name__
                )
            results.append(result)
            stats.record(result)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in itertools.repeat(None, options.workers)))
    return results
