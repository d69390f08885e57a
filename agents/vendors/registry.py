"""Dispatch a raw webhook to its vendor's parser."""

from __future__ import annotations

from agents.vendors.bandwidth import parse_bandwidth
from agents.vendors.common import ParsedInbound, ParsedStatus, VendorPayloadError
from agents.vendors.telnyx import parse_telnyx
from agents.vendors.twilio import parse_twilio_inbound, parse_twilio_status
from streams.events import RawWebhook

__all__ = ["parse_webhook"]

ENDPOINTS = frozenset({"inbound", "status"})


def parse_webhook(raw: RawWebhook) -> list[ParsedInbound | ParsedStatus]:
    """Validate a raw record against its vendor's shape; raise VendorPayloadError naming the problem."""
    if raw.endpoint not in ENDPOINTS:
        raise VendorPayloadError(f"unknown endpoint {raw.endpoint[:40]!r}")
    if raw.vendor == "twilio":
        if raw.endpoint == "inbound":
            return [parse_twilio_inbound(raw.body)]
        return [parse_twilio_status(raw.body)]
    # Telnyx and Bandwidth name the event inside the body, which is more precise than the endpoint.
    if raw.vendor == "telnyx":
        return parse_telnyx(raw.body)
    if raw.vendor == "bandwidth":
        return [parse_bandwidth(raw.body)]
    raise VendorPayloadError(f"unknown vendor {raw.vendor[:40]!r}")
