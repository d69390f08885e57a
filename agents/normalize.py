"""The normalizer's pure steps: a raw vendor request becomes domain events, or a NormalizationError.

Steps, as in the seed pipeline: validation (the vendor's shape), hydration (receiving number → company;
vendor message id → our message, when an index knows it), normalization (E.164 numbers, canonical
statuses and failure categories, UTC epoch ms) and, for inbound messages, classification. The epoch ms
at which each stage finished travels on the event (``stage_times``); the time spent in each stage is
returned alongside for the worker's metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

import phonenumbers

from agents.classify import classify
from agents.delivery import UnknownStatusError, canonical_status, failure_category
from agents.vendors import ParsedInbound, ParsedStatus, VendorPayloadError, parse_webhook
from config.companies import CompanyDirectory
from streams.events import (
    Event,
    InboundReceived,
    MessageDelivered,
    MessageFailed,
    MessageStatusUpdated,
    RawWebhook,
    event_id_for,
    profile_key,
)
from streams.statuses import DeliveryStatus

__all__ = [
    "MessageIndex",
    "MessageRef",
    "NormalizationError",
    "Normalized",
    "Normalizer",
    "STAGES",
    "normalize",
    "to_e164",
]

STAGES = ("validated", "hydrated", "normalized", "classified")


class NormalizationError(ValueError):
    """A raw record that cannot become a domain event; ``reason`` is short and names the problem."""

    def __init__(self, reason: str, stage: str = "validation") -> None:
        super().__init__(reason)
        self.reason = reason
        self.stage = stage


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Our own message behind a vendor message id: its id and the profile it was sent to."""

    message_id: str
    profile_key: str


class MessageIndex(Protocol):
    """vendor message id → our message; written by the send pipeline (issue 5)."""

    def lookup(self, vendor: str, vendor_message_id: str) -> MessageRef | None: ...


class NoMessageIndex:
    """The index until the send pipeline writes one: status events are keyed from their numbers alone."""

    def lookup(self, vendor: str, vendor_message_id: str) -> MessageRef | None:
        return None


@dataclass(slots=True)
class Normalized:
    """The events one raw record became, and seconds spent per stage (for metrics)."""

    events: list[Event]
    durations: dict[str, float] = field(default_factory=dict)


@lru_cache(maxsize=65_536)
def to_e164(number: str, default_region: str = "US") -> str:
    """Normalize a phone number to E.164, or raise NormalizationError. Cached: the same numbers come
    back again and again (the company's own on every message) and parsing one costs ~40 µs."""
    try:
        parsed = phonenumbers.parse(number, default_region)
    except phonenumbers.NumberParseException as exc:
        raise NormalizationError(f"not a phone number: {exc}", "normalization") from None
    if not phonenumbers.is_possible_number(parsed):
        raise NormalizationError("not a possible phone number", "normalization")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _masked(number: str) -> str:
    # Dead-letter reasons are logged: never a full phone number.
    return number[:-4] + "****"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Stages:
    """Records when each stage finished (epoch ms) and how long it took (perf counter seconds)."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self.times: dict[str, int] = {}
        self.durations: dict[str, float] = {}
        self._mark = time.perf_counter()

    def done(self, stage: str) -> None:
        now = time.perf_counter()
        self.durations[stage] = now - self._mark
        self._mark = now
        self.times[stage] = self._clock()


class Normalizer:
    """Validation, hydration, normalization and classification of raw vendor records."""

    def __init__(
        self,
        companies: CompanyDirectory,
        messages: MessageIndex | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self._companies = companies
        self._messages = messages or NoMessageIndex()
        self._clock = clock

    def normalize(self, raw: RawWebhook) -> Normalized:
        """Turn one raw vendor request into its domain events (one per status recipient)."""
        stages = _Stages(self._clock)
        try:
            parsed = parse_webhook(raw)
        except VendorPayloadError as exc:
            raise NormalizationError(f"{raw.vendor}/{raw.endpoint}: {exc.reason}") from None
        stages.done("validated")
        events: list[Event] = []
        for item in parsed:
            if isinstance(item, ParsedInbound):
                events.append(self._inbound(raw, item, stages))
            else:
                events.append(self._status(raw, item, stages))
        return Normalized(events, stages.durations)

    def _inbound(self, raw: RawWebhook, msg: ParsedInbound, stages: _Stages) -> InboundReceived:
        to_number = to_e164(msg.to_number)
        company = self._companies.by_number(to_number)
        if company is None:
            raise NormalizationError(f"receiving number {_masked(to_number)} has no company", "hydration")
        stages.done("hydrated")
        sender = to_e164(msg.from_number)
        stages.done("normalized")
        result = classify(msg.body, custom_keywords=company.keywords.custom,
                          us_recipient=to_number.startswith("+1"))
        stages.done("classified")
        return InboundReceived(
            event_id=event_id_for("InboundReceived", msg.vendor, msg.vendor_message_id),
            company_id=company.id,
            profile_key=profile_key(company.id, sender),
            # Twilio's inbound webhook carries no timestamp: the gateway's receipt is the best clock.
            occurred_at=msg.occurred_at if msg.occurred_at is not None else raw.received_at,
            received_at=raw.received_at,
            causation_id=raw.request_id,
            vendor=msg.vendor,
            vendor_message_id=msg.vendor_message_id,
            to_number=to_number,
            body=msg.body,
            media_urls=list(msg.media_urls),
            message_type=result.message_type.value,
            keyword=result.keyword,
            stage_times=dict(stages.times),
        )

    def _status(self, raw: RawWebhook, cb: ParsedStatus, stages: _Stages) -> Event:
        our_number = to_e164(cb.our_number)
        company = self._companies.by_number(our_number)
        if company is None:
            raise NormalizationError(f"sending number {_masked(our_number)} has no company", "hydration")
        recipient = to_e164(cb.recipient)
        ref = self._messages.lookup(cb.vendor, cb.vendor_message_id)
        stages.done("hydrated")
        try:
            status = canonical_status(cb.vendor, cb.vendor_status)
        except UnknownStatusError as exc:
            raise NormalizationError(str(exc), "normalization") from None
        stages.done("normalized")
        identity = (cb.vendor, cb.vendor_message_id, recipient, status.value, ",".join(cb.error_codes))
        common: dict[str, object] = {
            "company_id": company.id,
            "profile_key": ref.profile_key if ref else profile_key(company.id, recipient),
            "occurred_at": cb.occurred_at if cb.occurred_at is not None else raw.received_at,
            "received_at": raw.received_at,
            "causation_id": raw.request_id,
            "message_id": ref.message_id if ref else None,
            "vendor": cb.vendor,
            "vendor_message_id": cb.vendor_message_id,
        }
        if status is DeliveryStatus.DELIVERED:
            return MessageDelivered.model_validate(
                {**common, "event_id": event_id_for("MessageDelivered", *identity)}
            )
        if status is DeliveryStatus.FAILED:
            return MessageFailed.model_validate({
                **common,
                "event_id": event_id_for("MessageFailed", *identity),
                "error_code": cb.error_codes[0] if cb.error_codes else "",
                "failure_category": failure_category(cb.vendor, cb.vendor_status, cb.error_codes).value,
            })
        return MessageStatusUpdated.model_validate(
            {**common, "event_id": event_id_for("MessageStatusUpdated", *identity), "status": status.value}
        )


def normalize(raw: RawWebhook, companies: CompanyDirectory) -> list[Event]:
    """Turn one raw vendor request into its domain events (convenience for tests and replays)."""
    return Normalizer(companies).normalize(raw).events
