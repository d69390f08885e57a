"""The sender's ordered checks: one pure decision per send request, Send, Hold(until) or Skip(reason).

Order (issue 5): consent, quiet hours, frequency cap, valid mobile number; then load-test suppression.
The first failing check decides. The caller folds decisions per profile, in partition order, in the same
fold that holds consent (so consent at decision time is the consent the profile has *then*), and:
- records a marketing ``Send`` as the profile's last marketing send at decision time, not when the
  vendor answers, so two sends decided back to back cannot both pass the frequency cap;
- decides a ``Hold`` again in full when it is released: consent may have changed meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import phonenumbers
from phonenumbers import PhoneNumberType

from agents.send.quiet_hours import Allowed, HeldUntil, QuietSkipped, SendKind, check_quiet_hours
from config.companies import SendingSettings
from streams.events import ConsentStatus

__all__ = [
    "Decision",
    "Hold",
    "ProfileSnapshot",
    "Send",
    "SendRequest",
    "Skip",
    "SkipReason",
    "decide_send",
    "parse_recipient",
]

_HOUR_MS = 3_600_000
# Number types that can take an SMS; UNKNOWN passes because then the metadata does not know.
_TEXTABLE = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.UNKNOWN})


class SkipReason(StrEnum):
    """Why a send request was not sent: a closed set, each with a text a customer can read."""

    NOT_SUBSCRIBED = "not_subscribed"
    CONSENT_PENDING = "consent_pending"
    UNSUBSCRIBED = "unsubscribed"
    QUIET_HOURS = "quiet_hours"
    FREQUENCY_CAP = "frequency_cap"
    INVALID_NUMBER = "invalid_number"
    NOT_MOBILE = "not_mobile"
    SUPPRESSED = "suppressed"
    NO_SENDING_NUMBER = "no_sending_number"
    INVALID_KIND = "invalid_kind"

    @property
    def text(self) -> str:
        return _REASON_TEXTS[self]


_REASON_TEXTS: dict[SkipReason, str] = {
    SkipReason.NOT_SUBSCRIBED: "Not sent: this profile has never subscribed to SMS marketing.",
    SkipReason.CONSENT_PENDING: (
        "Not sent: this profile has not yet confirmed its SMS subscription (double opt-in pending)."
    ),
    SkipReason.UNSUBSCRIBED: "Not sent: this profile unsubscribed from SMS.",
    SkipReason.QUIET_HOURS: (
        "Not sent: it was outside the recipient's allowed sending hours, and this company skips "
        "campaign messages then."
    ),
    SkipReason.FREQUENCY_CAP: (
        "Not sent: smart sending; this profile already got a marketing text within the company's "
        "frequency cap."
    ),
    SkipReason.INVALID_NUMBER: "Not sent: the phone number is not a valid number.",
    SkipReason.NOT_MOBILE: (
        "Not sent: the phone number cannot receive texts (landline, toll-free or similar)."
    ),
    SkipReason.SUPPRESSED: "Not sent: this is a load-test company; its messages never reach a carrier.",
    SkipReason.NO_SENDING_NUMBER: "Not sent: the company has no sending number configured.",
    SkipReason.INVALID_KIND: (
        "Not sent: the request's kind is not one of flow, campaign, transactional or auto_reply."
    ),
}


@dataclass(frozen=True, slots=True)
class SendRequest:
    """What the checks need of a send request."""

    kind: SendKind
    to_number: str
    suppressed: bool = False


@dataclass(frozen=True, slots=True)
class ProfileSnapshot:
    """The profile's state at decision time, from the per-profile fold."""

    consent_status: str = ConsentStatus.NEVER_SUBSCRIBED.value
    last_marketing_send_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """All checks passed: send now."""


@dataclass(frozen=True, slots=True)
class Hold:
    """Outside quiet hours: decide again at ``until_ms`` (UTC epoch ms)."""

    until_ms: int


@dataclass(frozen=True, slots=True)
class Skip:
    """Not sent, for ``reason``."""

    reason: SkipReason


Decision = Send | Hold | Skip


def parse_recipient(number: str) -> phonenumbers.PhoneNumber | None:
    """A parsed E.164 number, or None when it does not parse."""
    if not number.startswith("+"):
        return None
    try:
        return phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None


def _consent(kind: SendKind, status: str) -> SkipReason | None:
    if kind is SendKind.AUTO_REPLY:
        # A reply to what the profile just sent (HELP, the one STOP confirmation) is always allowed.
        return None
    if status == ConsentStatus.UNSUBSCRIBED:
        return SkipReason.UNSUBSCRIBED
    if not kind.is_marketing or status == ConsentStatus.SUBSCRIBED:
        return None
    if status == ConsentStatus.PENDING:
        return SkipReason.CONSENT_PENDING
    # never_subscribed, or any status this code does not know: marketing needs an explicit yes.
    return SkipReason.NOT_SUBSCRIBED


def _number(phone: phonenumbers.PhoneNumber | None) -> SkipReason | None:
    if phone is None or not phonenumbers.is_valid_number(phone):
        return SkipReason.INVALID_NUMBER
    if phonenumbers.number_type(phone) not in _TEXTABLE:
        return SkipReason.NOT_MOBILE
    return None


def decide_send(
    request: SendRequest, profile: ProfileSnapshot, now_ms: int, sending: SendingSettings
) -> Decision:
    """The ordered checks for one send request at ``now_ms`` (UTC epoch ms)."""
    reason = _consent(request.kind, profile.consent_status)
    if reason is not None:
        return Skip(reason)

    phone = parse_recipient(request.to_number)
    if phone is not None and phonenumbers.is_valid_number(phone):
        # An invalid number has no zone; it is refused by the number check below, in its turn.
        now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        quiet = check_quiet_hours(now, phone, request.kind, sending.campaign_quiet_hours)
        if isinstance(quiet, HeldUntil):
            return Hold(until_ms=int(quiet.until.timestamp() * 1000))
        if isinstance(quiet, QuietSkipped):
            return Skip(SkipReason.QUIET_HOURS)
        assert isinstance(quiet, Allowed)

    last = profile.last_marketing_send_ms
    cap_ms = sending.frequency_cap_hours * _HOUR_MS
    if request.kind.is_marketing and cap_ms > 0 and last is not None and now_ms - last < cap_ms:
        return Skip(SkipReason.FREQUENCY_CAP)

    reason = _number(phone)
    if reason is not None:
        return Skip(reason)
    if request.suppressed:
        return Skip(SkipReason.SUPPRESSED)
    return Send()
