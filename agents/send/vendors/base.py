"""The vendor abstraction: what sending one SMS and looking up one number mean, whoever the vendor is."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["FailureCategory", "NumberInfo", "OutboundMessage", "SMSClient", "VendorError", "VendorReceipt"]

# Telnyx's key pattern, which Twilio's header accepts too: our keys always fit both.
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_:-]{1,255}")


class FailureCategory(StrEnum):
    """Why a vendor refused a message for good (recorded on MessageFailed.failure_category)."""

    INVALID_NUMBER = "invalid_number"
    NOT_MOBILE = "not_mobile"
    OPTED_OUT = "opted_out"
    FORBIDDEN_DESTINATION = "forbidden_destination"
    REJECTED = "rejected"
    SENDER_NOT_CONFIGURED = "sender_not_configured"
    AUTHENTICATION = "authentication"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One SMS to send. ``idempotency_key`` is the same for every attempt of one message (its
    message id), so a retried request is recognised by the vendor (or by reconciliation)."""

    message_id: str
    company_id: str
    from_number: str
    to_number: str
    body: str
    idempotency_key: str
    status_callback_url: str | None = None

    def __post_init__(self) -> None:
        if not _IDEMPOTENCY_KEY.fullmatch(self.idempotency_key):
            raise ValueError("idempotency_key must be 1-255 letters, digits, '_', ':' or '-'")
        if not self.body:
            raise ValueError("body is empty")


@dataclass(frozen=True, slots=True)
class VendorReceipt:
    """The vendor accepted the message: its id for the message, and its status word."""

    vendor: str
    vendor_message_id: str
    status: str
    segments: int | None = None
    # True when the receipt was found by reconciliation or replayed by the vendor, not newly created.
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class NumberInfo:
    """What a vendor's lookup says about a number."""

    number: str
    valid: bool
    line_type: str | None = None
    carrier: str | None = None


class VendorError(Exception):
    """A vendor call failed. ``transient`` errors may be retried; ``ambiguous`` ones may have sent the
    message (a timeout or 5xx after the request left), so a retry must be deduplicated."""

    def __init__(
        self,
        vendor: str,
        message: str,
        *,
        transient: bool,
        ambiguous: bool = False,
        status: int | None = None,
        code: str = "",
        category: FailureCategory = FailureCategory.UNKNOWN,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{vendor}: {message}")
        self.vendor = vendor
        self.transient = transient
        self.ambiguous = ambiguous
        self.status = status
        self.code = code
        self.category = category
        self.retry_after_s = retry_after_s


class SMSClient(ABC):
    """One vendor's outbound API."""

    vendor: str

    @abstractmethod
    async def send(self, message: OutboundMessage) -> VendorReceipt:
        """One attempt to hand ``message`` to the vendor; raises VendorError."""

    @abstractmethod
    async def lookup(self, number: str) -> NumberInfo:
        """What the vendor knows of ``number`` (validity, line type); raises VendorError."""

    async def find_sent(self, message: OutboundMessage) -> VendorReceipt | None:
        """After an ambiguous failure: the vendor's record of ``message`` if it was created after all.
        Vendors that honour the idempotency key need not look (the retry itself is deduplicated)."""
        return None

    @property
    def deduplicates_retries(self) -> bool:
        """Whether the vendor itself recognises a retried request by its idempotency key."""
        return False
