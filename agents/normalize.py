"""The normalizer's pure steps: a raw vendor request becomes a domain event, or a NormalizationError.

Steps, as in the seed pipeline: validation (the vendor's shape), hydration (receiving number → company),
normalization (E.164 numbers, UTC epoch ms), classification.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import phonenumbers

from agents.classify import classify
from config.companies import CompanyDirectory
from streams.events import InboundReceived, RawWebhook, event_id_for, profile_key

__all__ = ["NormalizationError", "normalize", "to_e164"]


class NormalizationError(ValueError):
    """A raw record that cannot become a domain event; ``reason`` is short and names the problem."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def to_e164(number: str, default_region: str = "US") -> str:
    """Normalize a phone number to E.164, or raise NormalizationError."""
    try:
        parsed = phonenumbers.parse(number, default_region)
    except phonenumbers.NumberParseException as exc:
        raise NormalizationError(f"not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise NormalizationError("not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _twilio_inbound(raw: RawWebhook, companies: CompanyDirectory) -> InboundReceived:
    try:
        form = dict(parse_qsl(raw.body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
    except (UnicodeDecodeError, ValueError) as exc:
        raise NormalizationError(f"body is not a form: {exc}") from None
    for name in ("MessageSid", "From", "To"):
        if not form.get(name):
            raise NormalizationError(f"missing field {name}")
    to_number = to_e164(form["To"])
    company = companies.by_number(to_number)
    if company is None:
        raise NormalizationError("receiving number belongs to no company")
    sender = to_e164(form["From"])
    body = form.get("Body", "")
    try:
        num_media = int(form.get("NumMedia", "0") or 0)
    except ValueError:
        raise NormalizationError("NumMedia is not a number") from None
    media = [form[f"MediaUrl{i}"] for i in range(num_media) if form.get(f"MediaUrl{i}")]
    result = classify(body, us_recipient=to_number.startswith("+1"))
    return InboundReceived(
        event_id=event_id_for("InboundReceived", "twilio", form["MessageSid"]),
        company_id=company.id,
        profile_key=profile_key(company.id, sender),
        # Twilio's inbound webhook carries no timestamp: the gateway's receipt is the best clock.
        occurred_at=raw.received_at,
        received_at=raw.received_at,
        causation_id=raw.request_id,
        vendor="twilio",
        vendor_message_id=form["MessageSid"],
        to_number=to_number,
        body=body,
        media_urls=media,
        message_type=result.message_type.value,
        keyword=result.keyword,
    )


def normalize(raw: RawWebhook, companies: CompanyDirectory) -> InboundReceived:
    """Turn one raw vendor request into its domain event."""
    if raw.vendor == "twilio" and raw.endpoint == "inbound":
        return _twilio_inbound(raw, companies)
    raise NormalizationError(f"no normalizer for {raw.vendor}/{raw.endpoint}")
