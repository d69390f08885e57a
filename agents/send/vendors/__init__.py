"""Outbound SMS vendors: the SMSClient ABC, the simulated vendor, Twilio and Telnyx REST clients,
per-number rate limits and retries that never send twice."""

from agents.send.vendors.base import (
    FailureCategory,
    NumberInfo,
    OutboundMessage,
    SMSClient,
    VendorError,
    VendorReceipt,
)

__all__ = ["FailureCategory", "NumberInfo", "OutboundMessage", "SMSClient", "VendorError", "VendorReceipt"]
