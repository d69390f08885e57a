"""The simulated vendor: the default for the demo and load tests. Nothing leaves the machine.

It accepts a send at once (a Twilio-shaped ``SM…`` sid derived from the idempotency key, so a retry gets
the same message back, never a second one), then calls the gateway's own Twilio status webhook like
Twilio would: form-encoded, signed with the company's auth token (``X-Twilio-Signature``), first
``sent``, then ``delivered`` or ``undelivered``/``failed`` with an ``ErrorCode``, after a lognormal
delay, failing at the configured rate per error code. Callbacks that are not answered 2xx are retried.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import phonenumbers

from agents.send.vendors.base import (
    FailureCategory,
    NumberInfo,
    OutboundMessage,
    SMSClient,
    VendorError,
    VendorReceipt,
)
from config.companies import CompanyDirectory
from config.settings import VendorSettings
from gateway.signatures import twilio_signature

__all__ = ["SimulatedVendor", "final_status_for"]

log = logging.getLogger(__name__)

_SID_NAMESPACE = uuid.UUID("0b7c9a52-3f0e-4d8a-b5b0-7a1f3c2d9e61")
# Twilio reports "failed" when it could not send at all (queue overflow, account suspended); carrier
# rejections after sending are "undelivered".
_FAILED_CODES = frozenset({"30001", "30002"})
_CALLBACK_ATTEMPTS = 4


def final_status_for(error_code: str | None) -> str:
    if error_code is None:
        return "delivered"
    return "failed" if error_code in _FAILED_CODES else "undelivered"


@dataclass(frozen=True, slots=True)
class _Outcome:
    sent_after_s: float
    final_after_s: float
    error_code: str | None


class SimulatedVendor(SMSClient):
    """Accepts every well-formed send and reports its fate through the gateway's status webhook."""

    vendor = "twilio"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        companies: CompanyDirectory,
        settings: VendorSettings,
        public_base_url: str,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        total = sum(settings.simulated_failure_rates.values())
        if total > 1 or any(rate < 0 for rate in settings.simulated_failure_rates.values()):
            raise ValueError(f"simulated failure rates must be >= 0 and sum to <= 1, got {total:g}")
        self._session = session
        self._companies = companies
        self._settings = settings
        self._status_url = public_base_url.rstrip("/") + settings.simulated_status_path
        self._rng = rng or random.Random()
        self._clock = clock
        self._accepted: dict[str, VendorReceipt] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.callbacks_sent = 0
        self.callbacks_failed = 0

    @property
    def deduplicates_retries(self) -> bool:
        return True

    def _outcome(self) -> _Outcome:
        median_s = self._settings.simulated_delay_median_ms / 1000
        final = self._rng.lognormvariate(math.log(median_s), self._settings.simulated_delay_sigma)
        roll, error_code = self._rng.random(), None
        for code, rate in sorted(self._settings.simulated_failure_rates.items()):
            if roll < rate:
                error_code = code
                break
            roll -= rate
        return _Outcome(sent_after_s=final * self._rng.uniform(0.2, 0.5), final_after_s=final,
                        error_code=error_code)

    async def send(self, message: OutboundMessage) -> VendorReceipt:
        known = self._accepted.get(message.idempotency_key)
        if known is not None:
            return VendorReceipt(known.vendor, known.vendor_message_id, known.status, known.segments, True)
        company = self._companies.get(message.company_id)
        if company is None or company.twilio is None:
            raise VendorError(
                "simulated", f"company {message.company_id!r} has no Twilio account to sign callbacks with",
                transient=False, category=FailureCategory.SENDER_NOT_CONFIGURED,
            )
        try:
            valid = phonenumbers.is_valid_number(phonenumbers.parse(message.to_number, None))
        except phonenumbers.NumberParseException:
            valid = False
        if not valid:
            raise VendorError("simulated", "HTTP 400 21211 invalid 'To' phone number", transient=False,
                              status=400, code="21211", category=FailureCategory.INVALID_NUMBER)
        sid = "SM" + uuid.uuid5(_SID_NAMESPACE, message.idempotency_key).hex
        receipt = VendorReceipt(vendor=self.vendor, vendor_message_id=sid, status="queued")
        self._accepted[message.idempotency_key] = receipt
        task = asyncio.create_task(self._report(message, sid, self._outcome()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return receipt

    async def lookup(self, number: str) -> NumberInfo:
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            return NumberInfo(number=number, valid=False)
        kind = phonenumbers.number_type(parsed)
        line = {phonenumbers.PhoneNumberType.MOBILE: "mobile",
                phonenumbers.PhoneNumberType.FIXED_LINE: "landline",
                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: "mobile",
                phonenumbers.PhoneNumberType.TOLL_FREE: "tollFree",
                phonenumbers.PhoneNumberType.VOIP: "nonFixedVoip"}.get(kind, "unknown")
        return NumberInfo(number=number, valid=phonenumbers.is_valid_number(parsed), line_type=line,
                          carrier="Simulated Wireless")

    async def _report(self, message: OutboundMessage, sid: str, outcome: _Outcome) -> None:
        await asyncio.sleep(outcome.sent_after_s)
        await self._callback(message, sid, "sent", None)
        await asyncio.sleep(outcome.final_after_s - outcome.sent_after_s)
        await self._callback(message, sid, final_status_for(outcome.error_code), outcome.error_code)

    def callback_params(self, message: OutboundMessage, sid: str, status: str,
                        error_code: str | None) -> dict[str, str]:
        """The form Twilio posts to a status callback."""
        company = self._companies.get(message.company_id)
        assert company is not None and company.twilio is not None
        params = {
            "MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": company.twilio.account_sid,
            "From": message.from_number, "To": message.to_number, "MessageStatus": status,
            "SmsStatus": status, "ApiVersion": "2010-04-01",
        }
        if error_code is not None:
            params["ErrorCode"] = error_code
        if status == "delivered":
            params["RawDlrDoneDate"] = time.strftime("%y%m%d%H%M", time.gmtime(self._clock()))
        return params

    async def _callback(
        self, message: OutboundMessage, sid: str, status: str, error_code: str | None
    ) -> None:
        company = self._companies.get(message.company_id)
        assert company is not None and company.twilio is not None
        url = message.status_callback_url or self._status_url
        params = self.callback_params(message, sid, status, error_code)
        token = company.twilio.auth_tokens[0].get_secret_value()
        headers = {
            "X-Twilio-Signature": twilio_signature(token, url, params),
            "I-Twilio-Idempotency-Token": f"{sid}-{status}",
            "User-Agent": "TwilioProxy/1.1",
        }
        delay = 0.2
        for attempt in range(1, _CALLBACK_ATTEMPTS + 1):
            try:
                async with self._session.post(url, data=params, headers=headers,
                                              timeout=aiohttp.ClientTimeout(total=10)) as response:
                    if response.status < 300:
                        self.callbacks_sent += 1
                        return
                    why = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                why = f"{type(exc).__name__}: {exc}"
            if attempt < _CALLBACK_ATTEMPTS:
                await asyncio.sleep(delay)
                delay *= 2
        self.callbacks_failed += 1
        log.warning("simulated %s callback for %s gave up after %d attempts: %s", status, sid,
                    _CALLBACK_ATTEMPTS, why)

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every scheduled callback was made (or given up); False on timeout."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        return not pending

    async def close(self) -> None:
        """Cancel callbacks still scheduled (stopping the process)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
