"""The sender's side effects: links, segments and the vendor call per approval; at most one message per
approval across redeliveries, with reconciliation after a crash (a fake vendor stands in for the outside
world; the dispatcher, shortener, limiter and retries are the real ones)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.send.dispatch import ATTEMPTED, DONE, Dispatcher, MemoryAttemptLog
from agents.send.vendors.base import (
    FailureCategory,
    NumberInfo,
    OutboundMessage,
    SMSClient,
    VendorError,
    VendorReceipt,
)
from agents.send.vendors.ratelimit import SendingRateLimiter
from agents.send.vendors.retry import RetryPolicy
from config.companies import Company, load_companies
from config.settings import VendorSettings
from projections.links import COLLISION, CREATED, EXISTING, StoredLink
from streams.events import LinkCreated, MessageFailed, MessageSent, SendApproved, event_id_for

COMPANIES = load_companies(Path("config/companies.toml"))
LONG_URL = "https://shop.example/collections/winter-sale/products/merino-wool-sweater?utm_source=sms&utm_campaign=w"


class FakeVendor(SMSClient):
    """Like Twilio: no idempotency key, so a second send is a second message."""

    vendor = "twilio"

    def __init__(self, log: MemoryAttemptLog, fail_with: VendorError | None = None) -> None:
        self.attempts = log
        self.delivered: list[OutboundMessage] = []
        self.flushes_at_send: list[int] = []
        self.fail_with = fail_with
        self.lookup_fails = False

    async def send(self, message: OutboundMessage) -> VendorReceipt:
        self.flushes_at_send.append(self.attempts.flushes)
        if self.fail_with is not None:
            raise self.fail_with
        self.delivered.append(message)
        return VendorReceipt("twilio", f"SM{len(self.delivered)}", "queued")

    async def find_sent(self, message: OutboundMessage) -> VendorReceipt | None:
        if self.lookup_fails:
            raise VendorError("twilio", "HTTP 500", transient=True, ambiguous=True)
        for i, m in enumerate(self.delivered, start=1):
            if (m.to_number, m.body) == (message.to_number, message.body):
                return VendorReceipt("twilio", f"SM{i}", "sent", replayed=True)
        return None

    async def lookup(self, number: str) -> NumberInfo:
        return NumberInfo(number, True)


class DictLinkStore:
    def __init__(self) -> None:
        self.links: dict[str, StoredLink] = {}
        self.refs: dict[tuple[str, int], str] = {}

    async def put_if_absent(self, link: StoredLink, index: int) -> tuple[int, str]:
        ref = self.refs.get((link.message_id, index))
        if ref is not None:
            return EXISTING, ref
        if link.code in self.links:
            return COLLISION, ""
        self.links[link.code] = link
        self.refs[(link.message_id, index)] = link.code
        return CREATED, link.code


def approval(n: int, body: str = f"Winter sale: {LONG_URL} Reply STOP to opt out.") -> SendApproved:
    return SendApproved(
        event_id=event_id_for("SendApproved", f"req{n}"), company_id="acme", profile_key="acme:+12125551234",
        occurred_at=1, received_at=1, message_id=f"m{n}", kind="flow", body=body, from_number="+14155550100",
    )


def dispatcher(client: SMSClient, links: DictLinkStore) -> Dispatcher:
    async def no_sleep(_: float) -> None:
        return None

    def client_for(company: Company) -> SMSClient:
        return client

    return Dispatcher(COMPANIES, client_for, links, SendingRateLimiter(VendorSettings(long_code_mps=1000)),
                      RetryPolicy(max_attempts=3, backoff_initial_s=0), "http://gw.example",
                      clock=lambda: 10_000, sleep=no_sleep)


async def test_links_are_shortened_segments_counted_and_the_send_recorded() -> None:
    log, links = MemoryAttemptLog(), DictLinkStore()
    vendor = FakeVendor(log)
    [outcome] = await dispatcher(vendor, links).dispatch([approval(1)], log)

    created, sent = outcome.events
    assert isinstance(created, LinkCreated) and created.url == LONG_URL and created.message_id == "m1"
    [message] = vendor.delivered
    assert message.body == f"Winter sale: https://sms.example/l/{created.code} Reply STOP to opt out."
    assert message.idempotency_key == "m1" and message.to_number == "+12125551234"
    assert message.status_callback_url == "http://gw.example/webhooks/twilio/status"
    # The long URL alone would have made it two segments; the short link fits one.
    assert isinstance(sent, MessageSent) and (sent.segments, sent.encoding) == (1, "GSM-7")
    assert sent.cost_micros == 7900 and sent.vendor_message_id == "SM1" and sent.message_id == "m1"
    # The attempt was durable before the vendor saw the message.
    assert vendor.flushes_at_send == [1] and log.marks == {"m1": ATTEMPTED}


async def test_a_done_approval_coming_again_sends_nothing() -> None:
    log, links = MemoryAttemptLog(), DictLinkStore()
    vendor = FakeVendor(log)
    d = dispatcher(vendor, links)
    await d.dispatch([approval(1)], log)
    log.put(approval(1), DONE)
    assert await d.dispatch([approval(1), approval(1)], log) == []
    assert len(vendor.delivered) == 1


async def test_the_same_approval_twice_in_one_batch_sends_once() -> None:
    log = MemoryAttemptLog()
    vendor = FakeVendor(log)
    outcomes = await dispatcher(vendor, DictLinkStore()).dispatch([approval(1), approval(1)], log)
    assert len(outcomes) == 1 and len(vendor.delivered) == 1


async def test_a_crash_after_the_send_is_reconciled_not_sent_twice() -> None:
    log, links = MemoryAttemptLog(), DictLinkStore()
    vendor = FakeVendor(log)
    d = dispatcher(vendor, links)
    # The first run sent it, then the worker died before MessageSent and the done mark were durable.
    await d.dispatch([approval(1)], log)
    assert log.get(approval(1)) == ATTEMPTED
    [outcome] = await d.dispatch([approval(1)], log)
    sent = outcome.events[-1]
    assert isinstance(sent, MessageSent) and sent.vendor_message_id == "SM1"
    assert len(vendor.delivered) == 1
    # Same short code both times: the body the vendor has is the body looked for.
    assert outcome.events[0] == (await d.dispatch([approval(1)], log))[0].events[0]


async def test_a_crash_before_the_send_sends_it_on_the_retry() -> None:
    log = MemoryAttemptLog()
    log.put(approval(1), ATTEMPTED)
    vendor = FakeVendor(log)
    [outcome] = await dispatcher(vendor, DictLinkStore()).dispatch([approval(1)], log)
    assert isinstance(outcome.events[-1], MessageSent) and len(vendor.delivered) == 1


async def test_a_failed_lookup_after_a_crash_is_reported_not_resent() -> None:
    log = MemoryAttemptLog()
    log.put(approval(1), ATTEMPTED)
    vendor = FakeVendor(log)
    vendor.lookup_fails = True
    [outcome] = await dispatcher(vendor, DictLinkStore()).dispatch([approval(1)], log)
    failed = outcome.events[-1]
    assert isinstance(failed, MessageFailed) and failed.error_code == "unconfirmed"
    assert vendor.delivered == []


@pytest.mark.parametrize(
    ("error", "category"),
    [
        (VendorError("twilio", "HTTP 400 21211", transient=False, code="21211",
                     category=FailureCategory.INVALID_NUMBER), "invalid_number"),
        (VendorError("twilio", "HTTP 429", transient=True, status=429), "unknown"),
    ],
)
async def test_a_vendor_refusal_is_message_failed_with_its_category(
    error: VendorError, category: str
) -> None:
    log = MemoryAttemptLog()
    vendor = FakeVendor(log, fail_with=error)
    [outcome] = await dispatcher(vendor, DictLinkStore()).dispatch([approval(1, "Order shipped")], log)
    [failed] = outcome.events
    assert isinstance(failed, MessageFailed) and failed.failure_category == category
    assert failed.message_id == "m1" and failed.vendor_message_id == ""
    # A transient error was retried up to the policy's attempts, under the same key.
    assert len(vendor.flushes_at_send) == (3 if error.transient else 1)
