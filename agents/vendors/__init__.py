"""Vendor webhook parsers: validate one vendor's shape and return vendor-neutral records (no I/O)."""

from agents.vendors.common import ParsedInbound, ParsedStatus, VendorPayloadError
from agents.vendors.registry import parse_webhook

__all__ = ["ParsedInbound", "ParsedStatus", "VendorPayloadError", "parse_webhook"]
