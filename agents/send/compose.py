"""The text that goes out, and the events that record a send decision's outcome.

Marketing bodies get the company's prefix and opt-out language (unless already there); links are
shortened before segments are counted, because the short link is what is billed. Every event id derives
from the send request's id, so deciding the same request again re-emits the same events.
"""

from __future__ import annotations

from agents.send.checks import Hold, Skip
from agents.send.quiet_hours import SendKind
from agents.send.segments import SegmentCount, price_micros
from agents.send.vendors.base import VendorError, VendorReceipt
from config.companies import SendingSettings
from streams.events import (
    Event,
    MessageFailed,
    MessageSent,
    SendHeld,
    SendRequested,
    SendSkipped,
    event_id_for,
)

__all__ = ["compose_body", "message_failed", "message_sent", "send_held", "send_skipped"]


def compose_body(body: str, kind: SendKind, sending: SendingSettings) -> str:
    """``body`` with the prefix and opt-out language a marketing message needs; others unchanged."""
    if not kind.is_marketing:
        return body
    text = body.strip()
    prefix = sending.prefix.strip()
    if prefix and not text.startswith(prefix):
        text = f"{prefix} {text}"
    opt_out = sending.opt_out_language.strip()
    if opt_out and opt_out.lower() not in text.lower():
        text = f"{text} {opt_out}"
    return text


def _envelope(request: Event, event_type: str, now_ms: int) -> dict[str, object]:
    return {
        "event_id": event_id_for(event_type, request.event_id),
        "company_id": request.company_id,
        "profile_key": request.profile_key,
        "occurred_at": now_ms,
        "received_at": request.received_at,
        "causation_id": request.event_id,
        "message_id": request.message_id,
        "flow_id": request.flow_id,
        "campaign_id": request.campaign_id,
    }


def send_skipped(request: SendRequested, decision: Skip, now_ms: int) -> SendSkipped:
    return SendSkipped.model_validate({**_envelope(request, "SendSkipped", now_ms),
                                       "reason": decision.reason.value, "reason_text": decision.reason.text})


def send_held(request: SendRequested, decision: Hold, now_ms: int) -> SendHeld:
    # One hold per request and release time: a request re-held later gets a new event.
    envelope = _envelope(request, "SendHeld", now_ms)
    envelope["event_id"] = event_id_for("SendHeld", request.event_id, str(decision.until_ms))
    return SendHeld.model_validate({**envelope, "reason": "quiet_hours", "held_until": decision.until_ms})


def message_sent(
    request: Event, receipt: VendorReceipt, count: SegmentCount, sending: SendingSettings, now_ms: int
) -> MessageSent:
    """The vendor accepted it: segments and price as billed now (the company's price may change later).
    ``request`` is the send's cause (the SendApproved the sender acted on); ids derive from it."""
    segments = receipt.segments or count.segments
    return MessageSent.model_validate({
        **_envelope(request, "MessageSent", now_ms), "vendor": receipt.vendor,
        "vendor_message_id": receipt.vendor_message_id, "segments": segments,
        "cost_micros": price_micros(segments, sending.price_per_segment_micros),
        "price_per_segment_micros": sending.price_per_segment_micros, "encoding": count.encoding.value,
    })


def message_failed(request: Event, error: VendorError, now_ms: int) -> MessageFailed:
    """A permanent vendor refusal (or retries given up): no vendor message id exists."""
    return MessageFailed.model_validate({
        **_envelope(request, "MessageFailed", now_ms), "vendor": error.vendor, "vendor_message_id": "",
        "error_code": error.code or (str(error.status) if error.status else "transient"),
        "failure_category": error.category.value,
    })
