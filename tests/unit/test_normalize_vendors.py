"""The normalizer's pure steps for every vendor: validation, hydration, normalization (no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.normalize import MessageRef, NormalizationError, Normalizer
from config.companies import load_companies
from streams.events import (
    Event,
    InboundReceived,
    MessageDelivered,
    MessageFailed,
    MessageStatusUpdated,
    RawWebhook,
    event_id_for,
)
from streams.statuses import fold_delivery_status
from tests.payloads import (
    bandwidth_event,
    raw,
    telnyx_inbound,
    telnyx_status,
    twilio_inbound_form,
    twilio_status_form,
)

COMPANIES = load_companies(Path("config/companies.toml"))
ACME = "+14155550100"
GLOBEX = "+13125550199"
PROFILE = "+14155551234"
RECEIVED = 1_764_360_000_000


def _one(record: RawWebhook) -> Event:
    events = Normalizer(COMPANIES, clock=lambda: RECEIVED + 5).normalize(record).events
    assert len(events) == 1
    return events[0]


# -- inbound, each vendor --------------------------------------------------------------------------

def test_twilio_inbound_is_hydrated_normalized_and_classified() -> None:
    event = _one(raw("twilio", "inbound", twilio_inbound_form("(415) 555-1234", ACME, " Stop! ", sid="SM1")))
    assert isinstance(event, InboundReceived)
    assert event.company_id == "acme" and event.profile_key == f"acme:{PROFILE}"
    assert event.message_type == "unsubscribe" and event.keyword == "STOP"
    assert event.body == " Stop! "  # the full body is kept as sent
    assert event.occurred_at == RECEIVED == event.received_at  # Twilio sends no time
    assert event.event_id == event_id_for("InboundReceived", "twilio", "SM1")
    assert set(event.stage_times) == {"validated", "hydrated", "normalized", "classified"}
    assert all(t == RECEIVED + 5 for t in event.stage_times.values())


def test_twilio_inbound_keeps_unknown_fields_and_media() -> None:
    body = twilio_inbound_form(PROFILE, ACME, "look", NumMedia="2", MediaUrl0="https://m/0",
                               MediaUrl1="https://m/1", BrandNewTwilioField="x")
    event = _one(raw("twilio", "inbound", body))
    assert isinstance(event, InboundReceived)
    assert event.media_urls == ["https://m/0", "https://m/1"]


def test_telnyx_inbound_uses_the_vendor_time_in_utc() -> None:
    body = telnyx_inbound(PROFILE, ACME, "JOIN", "tx-1", occurred_at="2025-11-28T15:16:07.588-05:00")
    event = _one(raw("telnyx", "inbound", body))
    assert isinstance(event, InboundReceived)
    assert event.vendor == "telnyx" and event.vendor_message_id == "tx-1"
    # 2025-11-28T20:16:07.588Z
    assert event.occurred_at == 1_764_360_967_588
    assert event.message_type == "custom_keyword" and event.keyword == "JOIN"


def test_bandwidth_inbound_with_media() -> None:
    body = bandwidth_event("message-received", message_id="bw-1", sender=PROFILE, to=GLOBEX, text="help",
                           media=["https://messaging.bandwidth.com/media/1.jpg"])
    event = _one(raw("bandwidth", "inbound", body))
    assert isinstance(event, InboundReceived)
    assert event.company_id == "globex" and event.profile_key == f"globex:{PROFILE}"
    assert event.media_urls == ["https://messaging.bandwidth.com/media/1.jpg"]
    assert event.message_type == "help"
    assert event.occurred_at == 1_764_354_016_000  # 2025-11-28T18:20:16Z


# -- status callbacks -------------------------------------------------------------------------------

def _tw(status: str, error: str = "") -> RawWebhook:
    return raw("twilio", "status", twilio_status_form("SM9", status, ACME, PROFILE, error))


def _tx(status: str, *codes: str, event_type: str = "message.finalized") -> RawWebhook:
    body = telnyx_status("tx-9", ACME, PROFILE, status, event_type, error_codes=codes)
    return raw("telnyx", "status", body)


def _bw(kind: str, code: int | None = None) -> RawWebhook:
    body = bandwidth_event(kind, message_id="bw-9", sender=ACME, to=PROFILE, error_code=code)
    return raw("bandwidth", "status", body)


@pytest.mark.parametrize(
    ("record", "kind", "detail"),
    [
        (_tw("delivered"), MessageDelivered, None),
        (_tw("sent"), MessageStatusUpdated, "sent"),
        (_tw("undelivered", "30003"), MessageFailed, ("30003", "unreachable")),
        (_tw("failed", "21610"), MessageFailed, ("21610", "opted_out")),
        (_tw("undelivered", "30006"), MessageFailed, ("30006", "landline_or_unreachable_carrier")),
        (_tx("delivered"), MessageDelivered, None),
        (_tx("sent", event_type="message.sent"), MessageStatusUpdated, "sent"),
        (_tx("delivery_unconfirmed"), MessageStatusUpdated, "delivery_unconfirmed"),
        (_tx("delivery_failed", "40300"), MessageFailed, ("40300", "opted_out")),
        (_tx("sending_failed", "40002"), MessageFailed, ("40002", "spam_blocked")),
        (_tx("expired"), MessageFailed, ("", "expired")),
        (_bw("message-delivered"), MessageDelivered, None),
        (_bw("message-sending"), MessageStatusUpdated, "sending"),
        (_bw("message-failed", 4470), MessageFailed, ("4470", "spam_blocked")),
        (_bw("message-failed", 4432), MessageFailed, ("4432", "forbidden_destination")),
    ],
)
def test_status_callbacks_map_to_canonical_events(record: RawWebhook, kind: type, detail: object) -> None:
    event = _one(record)
    assert type(event) is kind
    # Keyed by profile from the numbers alone: recipient = profile, our number = company.
    assert event.profile_key == f"acme:{PROFILE}"  # type: ignore[attr-defined]
    if kind is MessageFailed:
        assert (event.error_code, event.failure_category) == detail  # type: ignore[attr-defined]
    elif kind is MessageStatusUpdated:
        assert event.status == detail  # type: ignore[attr-defined]


def test_twilio_dlr_done_date_is_utc_minute_precision() -> None:
    body = twilio_status_form("SM9", "delivered", ACME, PROFILE, RawDlrDoneDate="2511282016")
    event = _one(raw("twilio", "status", body))
    assert event.occurred_at == 1_764_360_960_000  # type: ignore[attr-defined]


def test_a_duplicate_callback_gets_the_same_event_id() -> None:
    first = _one(raw("telnyx", "status", telnyx_status("tx-9", ACME, PROFILE, "delivered")))
    again = _one(raw("telnyx", "status", telnyx_status("tx-9", ACME, PROFILE, "delivered")))
    assert first.event_id == again.event_id  # type: ignore[attr-defined]


def test_message_index_fills_our_message_id() -> None:
    class Index:
        def lookup(self, vendor: str, vendor_message_id: str) -> MessageRef | None:
            return MessageRef("msg-42", f"acme:{PROFILE}") if vendor_message_id == "SM9" else None

    events = Normalizer(COMPANIES, Index()).normalize(
        raw("twilio", "status", twilio_status_form("SM9", "delivered", ACME, PROFILE))).events
    assert events[0].message_id == "msg-42"


# -- validation and hydration failures: clear reasons ----------------------------------------------

@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (raw("twilio", "inbound", b"%%%not a form"), "body is not a form"),
        (raw("twilio", "inbound", b"Body=hi&To=%2B14155550100"), "missing field MessageSid"),
        (_tw(""), "missing field MessageStatus"),
        (_tw("teleported"), "unknown twilio status 'teleported'"),
        (raw("telnyx", "inbound", b"[1, 2]"), "body is a JSON list, expected an object"),
        (raw("telnyx", "inbound", b"{\"data\": {}}"), "data.event_type is missing"),
        (raw("telnyx", "inbound", telnyx_inbound(PROFILE, ACME, "hi", occurred_at="yesterday")),
         "data.occurred_at is not an ISO 8601 time"),
        (raw("telnyx", "inbound", b"{\"data\": {\"event_type\": \"call.hangup\", "
             b"\"occurred_at\": \"2025-11-28T20:16:07Z\", \"payload\": {\"id\": \"x\", "
             b"\"from\": {\"phone_number\": \"+1\"}, \"to\": [{}]}}}"), "unsupported Telnyx event_type"),
        (raw("bandwidth", "inbound", b"not json"), "body is not JSON"),
        (raw("bandwidth", "inbound", b"{\"type\": \"message-received\", \"time\": \"2025-11-28T18:20:16Z\"}"),
         "message is missing or not an object"),
        (raw("twilio", "inbound", twilio_inbound_form(PROFILE, "+14155550999", "hi")),
         "receiving number +1415555**** has no company"),
        (raw("twilio", "status", twilio_status_form("SM9", "sent", "+14155550999", PROFILE)),
         "sending number +1415555**** has no company"),
        (raw("twilio", "inbound", twilio_inbound_form("12", ACME, "hi")), "not a possible phone number"),
        (raw("sinch", "inbound", b"{}"), "unknown vendor 'sinch'"),
    ],
)
def test_bad_records_raise_a_reason_naming_the_problem(record: RawWebhook, reason: str) -> None:
    with pytest.raises(NormalizationError) as err:
        Normalizer(COMPANIES).normalize(record)
    assert reason in err.value.reason


# -- the status fold --------------------------------------------------------------------------------

def test_status_only_moves_forward_and_failure_is_sticky() -> None:
    status = None
    for incoming in ("sent", "queued", "delivered", "sent"):
        status = fold_delivery_status(status, incoming)
    assert status == "delivered"
    # A multi-part message: part 1 failed, then part 2 delivered; the failure stands.
    assert fold_delivery_status("failed", "delivered") == "failed"
    assert fold_delivery_status("delivered", "failed") == "failed"
