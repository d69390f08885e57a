"""Choosing the vendor client for a company: the simulated vendor unless settings say otherwise."""

from __future__ import annotations

import aiohttp

from agents.send.vendors.base import SMSClient
from agents.send.vendors.simulated import SimulatedVendor
from agents.send.vendors.telnyx import TelnyxClient
from agents.send.vendors.twilio import TwilioClient
from config.companies import Company, CompanyDirectory
from config.settings import Settings

__all__ = ["VENDORS", "build_client"]

VENDORS = ("simulated", "twilio", "telnyx")


def build_client(
    settings: Settings, company: Company, companies: CompanyDirectory, session: aiohttp.ClientSession
) -> SMSClient:
    """The client ``settings.vendor.default`` names, with ``company``'s credentials."""
    vendor = settings.vendor
    if vendor.default == "simulated":
        return SimulatedVendor(session, companies, vendor, settings.gateway.public_base_url)
    if vendor.default == "twilio":
        if company.twilio is None:
            raise ValueError(f"company {company.id!r} has no [companies.twilio] account to send with")
        return TwilioClient(session, company.twilio, api_base=vendor.twilio_api_base,
                            lookup_base=vendor.twilio_lookup_base, timeout_s=vendor.request_timeout_s)
    if vendor.default == "telnyx":
        if company.telnyx is None or company.telnyx.api_key is None:
            raise ValueError(f"company {company.id!r} has no Telnyx api_key to send with")
        key = company.telnyx.api_key.get_secret_value()
        return TelnyxClient(session, key, api_base=vendor.telnyx_api_base, timeout_s=vendor.request_timeout_s)
    raise ValueError(f"vendor.default must be one of {', '.join(VENDORS)}, not {vendor.default!r}")
