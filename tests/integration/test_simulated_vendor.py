"""The simulated vendor calls a status webhook like Twilio: signed, form-encoded, sent then final."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from agents.send.vendors import FailureCategory, OutboundMessage, VendorError
from agents.send.vendors.simulated import SimulatedVendor
from config.companies import Company, CompanyDirectory, TwilioAccount
from config.settings import VendorSettings
from gateway.signatures import verify_twilio

TOKEN = "sim-acme-token"
ACME = Company(id="acme", name="Acme", program_name="Acme", numbers=("+14155550100",),
               twilio=TwilioAccount(account_sid="AC" + "a" * 32, auth_tokens=(SecretStr(TOKEN),)))
NO_TWILIO = Company(id="bare", name="Bare", program_name="Bare", numbers=("+14155550199",))
MakeServer = Callable[[web.Application], Awaitable[TestServer]]


class StatusReceiver:
    """Stands in for the gateway's status endpoint: verifies like the gateway does, records callbacks."""

    def __init__(self, refuse_first: int = 0) -> None:
        self.callbacks: list[dict[str, str]] = []
        self.bad_signatures = 0
        self.refuse_first = refuse_first
        self.base = ""

    async def handle(self, request: web.Request) -> web.Response:
        if self.refuse_first > 0:
            self.refuse_first -= 1
            return web.Response(status=503)
        assert request.content_type == "application/x-www-form-urlencoded"
        fields = parse_qsl((await request.read()).decode(), keep_blank_values=True)
        url = self.base + request.path_qs
        if not verify_twilio([TOKEN], url, fields, request.headers.get("X-Twilio-Signature", "")):
            self.bad_signatures += 1
            return web.Response(status=403)
        assert request.headers["User-Agent"] == "TwilioProxy/1.1"
        self.callbacks.append(dict(fields))
        return web.Response(text="<Response/>", content_type="text/xml")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _receiver(make: MakeServer, receiver: StatusReceiver) -> str:
    app = web.Application()
    app.router.add_post("/webhooks/twilio/status", receiver.handle)
    server = await make(app)
    receiver.base = str(server.make_url("")).rstrip("/")
    return receiver.base


def _vendor(session: aiohttp.ClientSession, base: str, failure_rates: dict[str, float]) -> SimulatedVendor:
    settings = VendorSettings(simulated_delay_median_ms=30, simulated_delay_sigma=0.3,
                              simulated_failure_rates=failure_rates)
    return SimulatedVendor(session, CompanyDirectory([ACME, NO_TWILIO]), settings, base, random.Random(7))


def _message(i: int, company: str = "acme", to: str = "+12125551234") -> OutboundMessage:
    return OutboundMessage(message_id=f"m{i}", company_id=company, from_number="+14155550100", to_number=to,
                           body=f"hello {i}", idempotency_key=f"m{i}")


async def test_every_send_gets_a_signed_sent_then_final_callback(
    aiohttp_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    receiver = StatusReceiver()
    vendor = _vendor(session, await _receiver(aiohttp_server, receiver), {"30003": 0.3, "30001": 0.1})
    receipts = [await vendor.send(_message(i)) for i in range(40)]
    assert await vendor.drain(10)

    assert receiver.bad_signatures == 0
    assert vendor.callbacks_sent == 80 and vendor.callbacks_failed == 0
    by_sid: dict[str, list[dict[str, str]]] = {}
    for cb in receiver.callbacks:
        by_sid.setdefault(cb["MessageSid"], []).append(cb)
    assert set(by_sid) == {r.vendor_message_id for r in receipts}
    finals = []
    assert ACME.twilio is not None
    for sid, callbacks in by_sid.items():
        assert [cb["MessageStatus"] for cb in callbacks][0] == "sent"
        final = callbacks[1]
        assert final["AccountSid"] == ACME.twilio.account_sid
        assert final["SmsSid"] == sid and final["ApiVersion"] == "2010-04-01"
        finals.append((final["MessageStatus"], final.get("ErrorCode")))
    # A mix by the configured rates: delivered, undelivered (carrier, 30003), failed (queue, 30001).
    assert {s for s, _ in finals} == {"delivered", "undelivered", "failed"}
    assert all(code is None for s, code in finals if s == "delivered")
    assert {code for s, code in finals if s == "undelivered"} == {"30003"}
    assert {code for s, code in finals if s == "failed"} == {"30001"}


async def test_a_retried_send_is_the_same_message_and_reports_once(
    aiohttp_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    receiver = StatusReceiver()
    vendor = _vendor(session, await _receiver(aiohttp_server, receiver), {})
    first = await vendor.send(_message(1))
    again = await vendor.send(_message(1))
    assert again.vendor_message_id == first.vendor_message_id and again.replayed
    assert await vendor.drain(10)
    assert [cb["MessageStatus"] for cb in receiver.callbacks] == ["sent", "delivered"]


async def test_callbacks_refused_by_the_gateway_are_retried(
    aiohttp_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    receiver = StatusReceiver(refuse_first=2)
    vendor = _vendor(session, await _receiver(aiohttp_server, receiver), {})
    await vendor.send(_message(1))
    assert await vendor.drain(10)
    assert [cb["MessageStatus"] for cb in receiver.callbacks] == ["sent", "delivered"]


async def test_invalid_sends_are_refused_like_twilio_would(session: aiohttp.ClientSession) -> None:
    vendor = _vendor(session, "http://127.0.0.1:9", {})
    with pytest.raises(VendorError) as caught:
        await vendor.send(_message(1, to="+15555550100"))
    assert caught.value.category == FailureCategory.INVALID_NUMBER and caught.value.code == "21211"
    with pytest.raises(VendorError) as caught:
        await vendor.send(_message(2, company="bare"))
    assert caught.value.category == FailureCategory.SENDER_NOT_CONFIGURED
    with pytest.raises(ValueError, match="sum to <= 1"):
        _vendor(session, "http://127.0.0.1:9", {"30003": 0.8, "30006": 0.5})
    info = await vendor.lookup("+18005550100")
    assert (info.valid, info.line_type) == (True, "tollFree")
    await vendor.close()
