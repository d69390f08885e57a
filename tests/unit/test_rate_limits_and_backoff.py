"""Per-sending-number token buckets and the retry backoff, on a fake clock."""

from __future__ import annotations

import pytest

from agents.send.vendors.ratelimit import SendingRateLimiter, TokenBucket, number_kind
from agents.send.vendors.retry import RetryPolicy
from config.settings import VendorSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(("number", "kind"), [
    ("+14155550100", "long_code"), ("+18005550100", "toll_free"), ("+18885550100", "toll_free"),
    ("12345", "short_code"), ("123456", "short_code"), ("+447911123456", "long_code"),
])
def test_number_kind(number: str, kind: str) -> None:
    assert number_kind(number) == kind


def test_a_sending_number_that_is_neither_e164_nor_a_short_code_is_refused() -> None:
    with pytest.raises(ValueError, match="neither E.164 nor a short code"):
        number_kind("4155550100x")


async def test_each_number_sends_at_its_types_rate() -> None:
    clock = Clock()
    limiter = SendingRateLimiter(VendorSettings(long_code_mps=1, toll_free_mps=3, short_code_mps=100,
                                                burst_s=1), clock)
    # A long code: one now, then one per second.
    for _ in range(4):
        await limiter.acquire("+14155550100", clock.sleep)
    assert clock.now == pytest.approx(1003.0)
    # A toll-free number has its own bucket: three at once, the fourth a third of a second later.
    start = clock.now
    for _ in range(4):
        await limiter.acquire("+18005550100", clock.sleep)
    assert clock.now - start == pytest.approx(1 / 3)
    # A short code bursts 100 before it waits.
    start = clock.now
    for _ in range(100):
        await limiter.acquire("12345", clock.sleep)
    assert clock.now == start
    await limiter.acquire("12345", clock.sleep)
    assert clock.now - start == pytest.approx(0.01)


def test_a_bucket_refills_but_never_beyond_its_capacity() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2, capacity=2, clock=clock)
    assert [bucket.try_acquire() for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]
    clock.now += 60
    assert [bucket.try_acquire() for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(rate=0, capacity=1)


def test_backoff_doubles_is_capped_and_jittered() -> None:
    policy = RetryPolicy(max_attempts=6, backoff_initial_s=0.5, backoff_max_s=4.0)
    assert [policy.delay(n, jitter=1.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.delay(1, jitter=0.0) == 0.25
    assert RetryPolicy.from_settings(VendorSettings(max_attempts=2)).max_attempts == 2
