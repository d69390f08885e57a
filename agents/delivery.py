"""Vendor status words and error codes mapped to canonical statuses and failure categories.

The statuses themselves and their rank fold live in ``streams.statuses`` (the read models use them too).
"""

from __future__ import annotations

from enum import StrEnum

from streams.statuses import DeliveryStatus

__all__ = ["FailureCategory", "UnknownStatusError", "canonical_status", "failure_category"]


class FailureCategory(StrEnum):
    UNREACHABLE = "unreachable"
    LANDLINE_OR_UNREACHABLE_CARRIER = "landline_or_unreachable_carrier"
    OPTED_OUT = "opted_out"
    SPAM_BLOCKED = "spam_blocked"
    BLOCKED = "blocked"
    INVALID_NUMBER = "invalid_number"
    FORBIDDEN_DESTINATION = "forbidden_destination"
    EXPIRED = "expired"
    UNDELIVERABLE = "undeliverable"
    CANCELED = "canceled"
    UNKNOWN = "unknown"


# (vendor, vendor status) -> canonical status. Unknown words are refused, not guessed.
_STATUS = {
    ("twilio", "accepted"): DeliveryStatus.QUEUED,
    ("twilio", "scheduled"): DeliveryStatus.QUEUED,
    ("twilio", "queued"): DeliveryStatus.QUEUED,
    ("twilio", "sending"): DeliveryStatus.SENDING,
    ("twilio", "sent"): DeliveryStatus.SENT,
    ("twilio", "delivered"): DeliveryStatus.DELIVERED,
    ("twilio", "read"): DeliveryStatus.READ,
    ("twilio", "undelivered"): DeliveryStatus.FAILED,
    ("twilio", "failed"): DeliveryStatus.FAILED,
    ("twilio", "canceled"): DeliveryStatus.FAILED,
    ("telnyx", "queued"): DeliveryStatus.QUEUED,
    ("telnyx", "sending"): DeliveryStatus.SENDING,
    ("telnyx", "sent"): DeliveryStatus.SENT,
    ("telnyx", "delivered"): DeliveryStatus.DELIVERED,
    ("telnyx", "delivery_unconfirmed"): DeliveryStatus.UNCONFIRMED,
    ("telnyx", "sending_failed"): DeliveryStatus.FAILED,
    ("telnyx", "delivery_failed"): DeliveryStatus.FAILED,
    ("telnyx", "expired"): DeliveryStatus.FAILED,
    ("bandwidth", "message-sending"): DeliveryStatus.SENDING,
    ("bandwidth", "message-delivered"): DeliveryStatus.DELIVERED,
    ("bandwidth", "message-failed"): DeliveryStatus.FAILED,
}

# Vendor error codes -> category (DOMAIN.md section 1 and the vendors' error dictionaries).
_CATEGORY = {
    "twilio": {
        "30003": FailureCategory.UNREACHABLE,
        "30005": FailureCategory.INVALID_NUMBER,
        "30006": FailureCategory.LANDLINE_OR_UNREACHABLE_CARRIER,
        "30004": FailureCategory.BLOCKED,
        "30007": FailureCategory.SPAM_BLOCKED,
        "30008": FailureCategory.UNDELIVERABLE,
        "21610": FailureCategory.OPTED_OUT,
        "21211": FailureCategory.INVALID_NUMBER,
    },
    "telnyx": {
        "40001": FailureCategory.INVALID_NUMBER,
        "40002": FailureCategory.SPAM_BLOCKED,
        "40003": FailureCategory.SPAM_BLOCKED,
        "40005": FailureCategory.EXPIRED,
        "40006": FailureCategory.UNREACHABLE,
        "40008": FailureCategory.UNDELIVERABLE,
        "40300": FailureCategory.OPTED_OUT,
    },
    "bandwidth": {
        "4432": FailureCategory.FORBIDDEN_DESTINATION,
        "4470": FailureCategory.SPAM_BLOCKED,
        "4481": FailureCategory.BLOCKED,
        "4482": FailureCategory.BLOCKED,
        "4702": FailureCategory.UNREACHABLE,
        "4720": FailureCategory.INVALID_NUMBER,
    },
}


class UnknownStatusError(ValueError):
    """A vendor status word smsfold does not know."""


def canonical_status(vendor: str, vendor_status: str) -> DeliveryStatus:
    """The canonical status of a vendor's status word; raises UnknownStatusError for an unknown one."""
    try:
        return _STATUS[(vendor, vendor_status.lower())]
    except KeyError:
        raise UnknownStatusError(f"unknown {vendor} status {vendor_status[:40]!r}") from None


def failure_category(vendor: str, vendor_status: str, error_codes: tuple[str, ...]) -> FailureCategory:
    """The category of a failure, from the first error code that is known, else from the status word."""
    table = _CATEGORY.get(vendor, {})
    for code in error_codes:
        if code in table:
            return table[code]
    if vendor_status in ("expired",):
        return FailureCategory.EXPIRED
    if vendor_status == "canceled":
        return FailureCategory.CANCELED
    return FailureCategory.UNKNOWN
