"""Composing the outgoing body, the outcome events of a decision, and choosing the vendor client."""

from __future__ import annotations

import aiohttp
import pytest
from pydantic import SecretStr

from agents.send.checks import Hold, Skip, SkipReason
from agents.send.compose import compose_body, message_failed, message_sent, send_held, send_skipped
from agents.send.quiet_hours import SendKind
from agents.send.segments import count_segments
from agents.send.vendors import FailureCategory, VendorError, VendorReceipt
from agents.send.vendors.factory import build_client
from agents.send.vendors.simulated import SimulatedVendor
from agents.send.vendors.telnyx import TelnyxClient
from agents.send.vendors.twilio import TwilioClient
from config.companies import Company, CompanyDirectory, SendingSettings, TelnyxAccount, TwilioAccount
from config.settings import Settings, VendorSettings
from streams.events import SendRequested

SENDING = SendingSettings(prefix="Acme:", opt_out_language="Reply STOP to opt out.",
                          price_per_segment_micros=7900)
REQUEST = SendRequested(event_id="req-1", company_id="acme", profile_key="acme:+12125551234", occurred_at=1,
                        received_at=2, message_id="m-1", flow_id="f-1", kind="flow", body="x")


@pytest.mark.parametrize(("kind", "body", "expected"), [
    (SendKind.FLOW, "20% off today", "Acme: 20% off today Reply STOP to opt out."),
    (SendKind.CAMPAIGN, "Acme: sale. reply stop to opt out.", "Acme: sale. reply stop to opt out."),
    (SendKind.TRANSACTIONAL, "Your order shipped", "Your order shipped"),
    (SendKind.AUTO_REPLY, "Help at help@acme.example", "Help at help@acme.example"),
])
def test_marketing_bodies_get_prefix_and_opt_out_language_once(
    kind: SendKind, body: str, expected: str
) -> None:
    assert compose_body(body, kind, SENDING) == expected


def test_empty_settings_add_nothing() -> None:
    assert compose_body("hi", SendKind.FLOW, SendingSettings(prefix="", opt_out_language="")) == "hi"


def test_outcome_events_derive_their_ids_from_the_request() -> None:
    skipped = send_skipped(REQUEST, Skip(SkipReason.FREQUENCY_CAP), 10)
    assert (skipped.reason, skipped.reason_text) == ("frequency_cap", SkipReason.FREQUENCY_CAP.text)
    assert skipped.event_id == send_skipped(REQUEST, Skip(SkipReason.FREQUENCY_CAP), 99).event_id
    assert (skipped.causation_id, skipped.message_id, skipped.flow_id) == ("req-1", "m-1", "f-1")

    held = send_held(REQUEST, Hold(until_ms=5000), 10)
    assert (held.held_until, held.reason) == (5000, "quiet_hours")
    assert held.event_id != send_held(REQUEST, Hold(until_ms=6000), 10).event_id

    body = "😜" + "a" * 69  # two UCS-2 segments
    sent = message_sent(REQUEST, VendorReceipt("twilio", "SM1", "queued"), count_segments(body), SENDING, 10)
    assert (sent.segments, sent.cost_micros, sent.price_per_segment_micros, sent.encoding) == (
        2, 15800, 7900, "UCS-2")
    # The vendor's own segment count wins when it reports one.
    receipt = VendorReceipt("twilio", "SM1", "queued", 3)
    sent = message_sent(REQUEST, receipt, count_segments(body), SENDING, 10)
    assert sent.segments == 3 and sent.cost_micros == 23700

    error = VendorError("twilio", "HTTP 400 21610", transient=False, status=400, code="21610",
                        category=FailureCategory.OPTED_OUT)
    failed = message_failed(REQUEST, error, 10)
    assert (failed.error_code, failed.failure_category, failed.vendor) == ("21610", "opted_out", "twilio")


async def test_the_vendor_client_follows_the_setting() -> None:
    company = Company(id="acme", name="A", program_name="A", numbers=("+14155550100",),
                      twilio=TwilioAccount(account_sid="AC" + "a" * 32, auth_tokens=(SecretStr("t"),)),
                      telnyx=TelnyxAccount(public_keys=("k",), api_key=SecretStr("KEY_x")))
    bare = Company(id="bare", name="B", program_name="B", numbers=("+14155550199",))
    companies = CompanyDirectory([company, bare])
    async with aiohttp.ClientSession() as session:
        choices = (("simulated", SimulatedVendor), ("twilio", TwilioClient), ("telnyx", TelnyxClient))
        for vendor, cls in choices:
            settings = Settings(vendor=VendorSettings(default=vendor))  # type: ignore[arg-type]
            assert isinstance(build_client(settings, company, companies, session), cls)
        for vendor in ("twilio", "telnyx"):
            settings = Settings(vendor=VendorSettings(default=vendor))  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="bare"):
                build_client(settings, bare, companies, session)
    with pytest.raises(ValueError, match="simulated"):
        VendorSettings(default="bandwidth")  # type: ignore[arg-type]
