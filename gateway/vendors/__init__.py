"""Vendor webhook endpoints: Twilio, Telnyx and Bandwidth, inbound messages and delivery status."""

from gateway.vendors.routes import add_vendor_routes

__all__ = ["add_vendor_routes"]
