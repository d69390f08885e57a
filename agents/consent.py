"""The consent fold: pure functions from (consent, cause) to the consent a profile moves to.

States: never_subscribed, pending (double opt-in), subscribed, unsubscribed. Rules (DOMAIN.md section 3):
STOP (any opt-out word) from any state unsubscribes; START/YES/UNSTOP and subscribing company keywords
subscribe; YES/Y while pending confirms double opt-in (a bare Y means nothing otherwise). A form or API
subscription for a double-opt-in company goes to pending first; imports never do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.classify import find_custom_keyword
from config.companies import Company
from streams.events import (
    ConsentChangeRequested,
    ConsentSource,
    ConsentStatus,
    InboundReceived,
    MessageType,
)

__all__ = ["ConsentState", "ConsentTarget", "consent_for_inbound", "consent_for_request"]

NEVER = ConsentStatus.NEVER_SUBSCRIBED.value
PENDING = ConsentStatus.PENDING.value
SUBSCRIBED = ConsentStatus.SUBSCRIBED.value
UNSUBSCRIBED = ConsentStatus.UNSUBSCRIBED.value
_REQUESTABLE = frozenset({PENDING, SUBSCRIBED, UNSUBSCRIBED})
# Sources that may ask the profile to confirm by SMS; an import carries consent gathered elsewhere.
_DOUBLE_OPT_IN_SOURCES = frozenset({ConsentSource.FORM.value, ConsentSource.API.value})


@dataclass(frozen=True, slots=True)
class ConsentState:
    """A profile's consent as the decider knows it; ``version`` counts its changes."""

    status: str = NEVER
    source: str = ""
    method: str = ""
    version: int = 0
    updated_at: int = 0
    subscribed_at: int = 0
    unsubscribed_at: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status, "source": self.source, "method": self.method, "version": self.version,
            "updated_at": self.updated_at, "subscribed_at": self.subscribed_at,
            "unsubscribed_at": self.unsubscribed_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ConsentState:
        return cls(**data) if data else cls()

    def moved_to(self, target: ConsentTarget, at: int) -> ConsentState:
        return ConsentState(
            status=target.status,
            source=target.source,
            method=target.method,
            version=self.version + 1,
            updated_at=at,
            subscribed_at=at if target.status == SUBSCRIBED else self.subscribed_at,
            unsubscribed_at=at if target.status == UNSUBSCRIBED else self.unsubscribed_at,
        )


@dataclass(frozen=True, slots=True)
class ConsentTarget:
    """Where a cause moves consent, and how it was given or revoked."""

    status: str
    source: str
    method: str


def _keyword(status: str, keyword: str | None) -> ConsentTarget:
    return ConsentTarget(status, ConsentSource.KEYWORD.value, f"sms_keyword:{keyword or ''}")


def consent_for_inbound(
    state: ConsentState, inbound: InboundReceived, company: Company | None
) -> ConsentTarget | None:
    """The consent an inbound message moves to, or None when it changes nothing."""
    kind, keyword = inbound.message_type, inbound.keyword
    if kind == MessageType.UNSUBSCRIBE:
        return None if state.status == UNSUBSCRIBED else _keyword(UNSUBSCRIBED, keyword)
    if kind == MessageType.SUBSCRIBE:
        if state.status == PENDING and keyword in ("YES", "Y"):
            # Double opt-in confirmed: the consent keeps the source that asked for it.
            return ConsentTarget(SUBSCRIBED, state.source or ConsentSource.KEYWORD.value,
                                 f"double_opt_in:{keyword}")
        if keyword == "Y" or state.status == SUBSCRIBED:
            return None
        return _keyword(SUBSCRIBED, keyword)
    if kind == MessageType.CUSTOM_KEYWORD and company is not None:
        custom = find_custom_keyword(company.keywords.custom, keyword)
        effect = custom.consent_effect if custom is not None else None
        if effect == "subscribe" and state.status != SUBSCRIBED:
            return _keyword(SUBSCRIBED, keyword)
        if effect == "unsubscribe" and state.status != UNSUBSCRIBED:
            return _keyword(UNSUBSCRIBED, keyword)
    return None


def consent_for_request(
    state: ConsentState, request: ConsentChangeRequested, company: Company | None
) -> ConsentTarget | None:
    """The consent an API/form/import request moves to, or None when it changes nothing."""
    status = request.status
    if status not in _REQUESTABLE:
        return None
    double_opt_in = company is not None and company.keywords.double_opt_in
    if status == SUBSCRIBED and double_opt_in and request.source in _DOUBLE_OPT_IN_SOURCES:
        status = PENDING
    if status == state.status or (status == PENDING and state.status == SUBSCRIBED):
        return None
    return ConsentTarget(status, request.source, request.method)
