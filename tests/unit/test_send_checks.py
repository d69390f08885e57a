"""The sender's ordered checks, and the consent-gating property over every interleaving."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.send.checks import (
    Decision,
    Hold,
    ProfileSnapshot,
    Send,
    SendRequest,
    Skip,
    SkipReason,
    decide_send,
)
from agents.send.quiet_hours import SendKind
from config.companies import SendingSettings
from streams.events import ConsentStatus

NY_MOBILE = "+12125551234"
HOUR = 3_600_000
# 15:00 UTC = 10:00 in New York (January): inside the window.
DAYTIME = int(datetime(2026, 1, 15, 15, 0, tzinfo=UTC).timestamp() * 1000)
# 08:00 UTC = 3:00 in New York.
NIGHT = int(datetime(2026, 1, 15, 8, 0, tzinfo=UTC).timestamp() * 1000)
OPENS = int(datetime(2026, 1, 15, 13, 0, tzinfo=UTC).timestamp() * 1000)
SUBSCRIBED = ProfileSnapshot(ConsentStatus.SUBSCRIBED.value)
SETTINGS = SendingSettings()


def _decide(
    kind: SendKind,
    profile: ProfileSnapshot = SUBSCRIBED,
    now: int = DAYTIME,
    number: str = NY_MOBILE,
    sending: SendingSettings = SETTINGS,
    suppressed: bool = False,
) -> Decision:
    return decide_send(SendRequest(kind, number, suppressed), profile, now, sending)


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        (SendKind.FLOW, ConsentStatus.SUBSCRIBED, Send()),
        (SendKind.CAMPAIGN, ConsentStatus.NEVER_SUBSCRIBED, Skip(SkipReason.NOT_SUBSCRIBED)),
        (SendKind.FLOW, ConsentStatus.PENDING, Skip(SkipReason.CONSENT_PENDING)),
        (SendKind.CAMPAIGN, ConsentStatus.UNSUBSCRIBED, Skip(SkipReason.UNSUBSCRIBED)),
        (SendKind.FLOW, "some_future_status", Skip(SkipReason.NOT_SUBSCRIBED)),
        (SendKind.TRANSACTIONAL, ConsentStatus.NEVER_SUBSCRIBED, Send()),
        (SendKind.TRANSACTIONAL, ConsentStatus.PENDING, Send()),
        (SendKind.TRANSACTIONAL, ConsentStatus.UNSUBSCRIBED, Skip(SkipReason.UNSUBSCRIBED)),
        # The STOP confirmation and HELP replies go to unsubscribed profiles too.
        (SendKind.AUTO_REPLY, ConsentStatus.UNSUBSCRIBED, Send()),
    ],
)
def test_consent(kind: SendKind, status: str, expected: Decision) -> None:
    assert _decide(kind, ProfileSnapshot(str(status))) == expected


def test_quiet_hours_hold_flows_and_skip_campaigns_per_setting() -> None:
    assert _decide(SendKind.FLOW, now=NIGHT) == Hold(until_ms=OPENS)
    assert _decide(SendKind.CAMPAIGN, now=NIGHT) == Hold(until_ms=OPENS)
    skip = SETTINGS.model_copy(update={"campaign_quiet_hours": "skip"})
    assert _decide(SendKind.CAMPAIGN, now=NIGHT, sending=skip) == Skip(SkipReason.QUIET_HOURS)
    assert _decide(SendKind.TRANSACTIONAL, now=NIGHT) == Send()


def test_frequency_cap_applies_to_marketing_only() -> None:
    recent = replace(SUBSCRIBED, last_marketing_send_ms=DAYTIME - 11 * HOUR)
    old = replace(SUBSCRIBED, last_marketing_send_ms=DAYTIME - 12 * HOUR)
    assert _decide(SendKind.CAMPAIGN, recent) == Skip(SkipReason.FREQUENCY_CAP)
    assert _decide(SendKind.FLOW, old) == Send()
    assert _decide(SendKind.TRANSACTIONAL, recent) == Send()
    off = SETTINGS.model_copy(update={"frequency_cap_hours": 0})
    assert _decide(SendKind.FLOW, recent, sending=off) == Send()


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("+15555550100", SkipReason.INVALID_NUMBER),  # 555 is not an assigned area code
        ("2125551234", SkipReason.INVALID_NUMBER),  # not E.164
        ("+1212", SkipReason.INVALID_NUMBER),
        ("not a number", SkipReason.INVALID_NUMBER),
        ("+18005550100", SkipReason.NOT_MOBILE),  # toll-free
        ("+442079460000", SkipReason.NOT_MOBILE),  # a London landline
    ],
)
def test_numbers_that_cannot_take_a_text_are_skipped(number: str, reason: SkipReason) -> None:
    assert _decide(SendKind.TRANSACTIONAL, number=number) == Skip(reason)


def test_a_uk_mobile_passes() -> None:
    # 12:00 UTC is inside London's window.
    noon = int(datetime(2026, 1, 15, 12, 0, tzinfo=UTC).timestamp() * 1000)
    assert _decide(SendKind.FLOW, number="+447911123456", now=noon) == Send()


def test_checks_run_in_order_and_the_first_failure_decides() -> None:
    # Unsubscribed, at night, capped, with an invalid number: consent is reported.
    everything_wrong = ProfileSnapshot(ConsentStatus.UNSUBSCRIBED.value, last_marketing_send_ms=NIGHT)
    assert _decide(SendKind.FLOW, everything_wrong, now=NIGHT, number="+18005550100") == Skip(
        SkipReason.UNSUBSCRIBED)
    # Subscribed: quiet hours come next (a toll-free number still has the contiguous-US window).
    capped = replace(SUBSCRIBED, last_marketing_send_ms=NIGHT - HOUR)
    assert _decide(SendKind.FLOW, capped, now=NIGHT, number="+18005550100") == Hold(
        until_ms=int(datetime(2026, 1, 15, 16, 0, tzinfo=UTC).timestamp() * 1000))
    # In the daytime (noon in New York, 9:00 in Los Angeles): the frequency cap before the number.
    noon = DAYTIME + 2 * HOUR
    assert _decide(SendKind.FLOW, replace(SUBSCRIBED, last_marketing_send_ms=noon - HOUR), now=noon,
                   number="+18005550100") == Skip(SkipReason.FREQUENCY_CAP)
    # Load-test suppression only after every other check passed.
    assert _decide(SendKind.FLOW, number="+18005550100", now=noon, suppressed=True) == Skip(
        SkipReason.NOT_MOBILE)
    assert _decide(SendKind.FLOW, suppressed=True) == Skip(SkipReason.SUPPRESSED)


def test_every_reason_has_a_readable_text() -> None:
    for reason in SkipReason:
        assert reason.text.startswith("Not sent: ") and len(reason.text) > 30


# --- The consent-gating property ------------------------------------------------------------------
# A tiny in-test fold standing in for the per-profile decider: consent changes and send requests of one
# profile arrive in one partition's order; each send is decided against the state at that moment.


@dataclass(frozen=True)
class ConsentOp:
    status: ConsentStatus
    at_ms: int


@dataclass(frozen=True)
class SendOp:
    kind: SendKind
    at_ms: int


_consent_ops = st.builds(ConsentOp, st.sampled_from(list(ConsentStatus)), st.integers(0, 3 * 24 * HOUR))
_send_ops = st.builds(SendOp, st.sampled_from(list(SendKind)), st.integers(0, 3 * 24 * HOUR))


@st.composite
def _interleavings(draw: st.DrawFn) -> list[ConsentOp | SendOp]:
    # Two independent producers (the consent source and the send requester), merged in any order.
    consents = draw(st.lists(_consent_ops, max_size=12))
    sends = draw(st.lists(_send_ops, max_size=20))
    merged: list[ConsentOp | SendOp] = []
    while consents or sends:
        take_consent = bool(consents) and (not sends or draw(st.booleans()))
        merged.append(consents.pop(0) if take_consent else sends.pop(0))
    return merged


@given(ops=_interleavings(), cap_hours=st.integers(0, 16), policy=st.sampled_from(["hold", "skip"]))
@settings(max_examples=300, deadline=None)
def test_no_marketing_send_is_decided_unless_subscribed_at_decision_time(
    ops: list[ConsentOp | SendOp], cap_hours: int, policy: str
) -> None:
    sending = SendingSettings(frequency_cap_hours=cap_hours, campaign_quiet_hours=policy)  # type: ignore[arg-type]
    profile = ProfileSnapshot()
    clock = 0
    sent_marketing: list[int] = []
    for op in ops:
        # Partition order is the fold's clock: time never runs backwards within one profile.
        clock = max(clock, op.at_ms) + 1
        if isinstance(op, ConsentOp):
            profile = replace(profile, consent_status=op.status.value)
            continue
        decision = decide_send(SendRequest(op.kind, NY_MOBILE), profile, DAYTIME + clock, sending)
        if isinstance(decision, Send) and op.kind.is_marketing:
            assert profile.consent_status == ConsentStatus.SUBSCRIBED
            sent_marketing.append(clock)
            profile = replace(profile, last_marketing_send_ms=DAYTIME + clock)
        if isinstance(decision, Send) and op.kind is SendKind.TRANSACTIONAL:
            assert profile.consent_status != ConsentStatus.UNSUBSCRIBED
    # Smart sending holds too: no two marketing sends closer than the cap.
    gaps = [b - a for a, b in zip(sent_marketing, sent_marketing[1:], strict=False)]
    assert all(gap >= cap_hours * HOUR for gap in gaps)
