"""Twilio webhooks: form-encoded inbound messages and status callbacks (DOMAIN.md section 1)."""

from __future__ import annotations

import datetime as dt

from agents.vendors.common import ParsedInbound, ParsedStatus, VendorPayloadError
from streams.forms import FormError, parse_form

__all__ = ["parse_twilio_inbound", "parse_twilio_status"]


def _form(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_form(body)
    except FormError as exc:  # the field itself is left out: it may hold a phone number
        raise VendorPayloadError(f"body is not a form: {exc.reason}") from None
    # Twilio adds parameters without notice: unknown fields are kept, never rejected.
    return dict(pairs)


def _required(form: dict[str, str], *names: str) -> None:
    for name in names:
        if not form.get(name):
            raise VendorPayloadError(f"missing field {name}")


def _dlr_done_date(value: str) -> int | None:
    # RawDlrDoneDate is YYMMDDhhmm with no zone; carriers report it in UTC, minute precision.
    if not value:
        return None
    try:
        parsed = dt.datetime.strptime(value, "%y%m%d%H%M").replace(tzinfo=dt.UTC)
    except ValueError:
        raise VendorPayloadError(f"RawDlrDoneDate is not YYMMDDhhmm: {value[:20]!r}") from None
    return int(parsed.timestamp() * 1000)


def parse_twilio_inbound(body: bytes) -> ParsedInbound:
    form = _form(body)
    _required(form, "MessageSid", "From", "To")
    try:
        num_media = int(form.get("NumMedia", "0") or 0)
    except ValueError:
        raise VendorPayloadError("NumMedia is not a number") from None
    if not 0 <= num_media <= 10:
        raise VendorPayloadError(f"NumMedia {num_media} is outside 0..10")
    media = tuple(form[f"MediaUrl{i}"] for i in range(num_media) if form.get(f"MediaUrl{i}"))
    return ParsedInbound(
        vendor="twilio",
        vendor_message_id=form["MessageSid"],
        from_number=form["From"],
        to_number=form["To"],
        body=form.get("Body", ""),
        media_urls=media,
    )


def parse_twilio_status(body: bytes) -> ParsedStatus:
    form = _form(body)
    _required(form, "MessageSid", "MessageStatus", "From", "To")
    code = form.get("ErrorCode", "")
    return ParsedStatus(
        vendor="twilio",
        vendor_message_id=form["MessageSid"],
        vendor_status=form["MessageStatus"].lower(),
        # An outbound message's callback: From is our sending number, To the recipient.
        our_number=form["From"],
        recipient=form["To"],
        error_codes=(code,) if code and code != "0" else (),
        occurred_at=_dlr_done_date(form.get("RawDlrDoneDate", "")),
    )
