"""The sender's part of the profile fold (pure): decisions at the request's place in the log, held sends
released and decided again, delivery status by our message id; the consent-gating property."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.classify import classify
from agents.profile import ProfileState, decide
from agents.profile_decider import releases_due
from agents.send.checks import SkipReason
from config.companies import load_companies
from streams.events import (
    DeliveryStatusChanged,
    Event,
    InboundReceived,
    MessageDelivered,
    MessageFailed,
    MessageSent,
    MessageStatusUpdated,
    SendApproved,
    SendHeld,
    SendReleased,
    SendRequested,
    SendSkipped,
    event_id_for,
)

COMPANIES = load_companies(Path("config/companies.toml"))
ACME = COMPANIES.get("acme")
assert ACME is not None
PHONE = "+12125551234"  # a New York mobile number
PROFILE = f"acme:{PHONE}"
HOUR = 3_600_000
# 15:00 UTC = 10:00 in New York in January (open); 08:00 UTC = 03:00 (closed, opens 13:00 UTC).
DAY = int(datetime(2026, 1, 15, 15, 0, tzinfo=UTC).timestamp() * 1000)
NIGHT = int(datetime(2026, 1, 15, 8, 0, tzinfo=UTC).timestamp() * 1000)
OPENS = int(datetime(2026, 1, 15, 13, 0, tzinfo=UTC).timestamp() * 1000)


def inbound(n: int, body: str) -> InboundReceived:
    c = classify(body, custom_keywords=ACME.keywords.custom)
    return InboundReceived(
        event_id=event_id_for("InboundReceived", "twilio", f"SMin{n}"), company_id="acme",
        profile_key=PROFILE, occurred_at=n, received_at=n, vendor="twilio", vendor_message_id=f"SMin{n}",
        to_number=ACME.numbers[0], body=body, message_type=c.message_type.value, keyword=c.keyword,
    )


def send(n: int, kind: str, body: str = "Hello https://shop.example/x") -> SendRequested:
    return SendRequested(
        event_id=event_id_for("SendRequested", "api", f"m{n}"), company_id="acme", profile_key=PROFILE,
        occurred_at=n, received_at=n, message_id=f"m{n}", kind=kind, body=body,
        flow_id="f1" if kind == "flow" else None,
    )


def release(n: int, until: int) -> SendReleased:
    return SendReleased(event_id=event_id_for("SendReleased", f"m{n}", str(until)), company_id="acme",
                        profile_key=PROFILE, occurred_at=until, received_at=until, message_id=f"m{n}",
                        held_until=until)


def sent(n: int, vid: str) -> MessageSent:
    return MessageSent(event_id=event_id_for("MessageSent", f"m{n}"), company_id="acme", profile_key=PROFILE,
                       occurred_at=n, received_at=n, message_id=f"m{n}", vendor="twilio",
                       vendor_message_id=vid, segments=1, cost_micros=7900)


def status(vid: str, word: str, at: int = 5, code: str = "") -> Event:
    common = {"event_id": event_id_for("status", vid, word, code), "company_id": "acme",
              "profile_key": PROFILE, "occurred_at": at, "received_at": at, "vendor": "twilio",
              "vendor_message_id": vid}
    if word == "delivered":
        return MessageDelivered.model_validate(common)
    if word == "failed":
        return MessageFailed.model_validate({**common, "error_code": code, "failure_category": "unreachable"})
    return MessageStatusUpdated.model_validate({**common, "status": word})


class Fold:
    """Folds events one by one at the given clock, as the profile decider does."""

    def __init__(self) -> None:
        self.state = ProfileState()
        self.position = 0
        self.out: list[Event] = []

    def __call__(self, event: Event, now_ms: int = DAY) -> list[Event]:
        self.state, emitted = decide(self.state, event, ACME, self.position, now_ms)
        self.position += 1
        self.out += emitted
        return emitted


def test_marketing_needs_subscribed_and_says_why_not() -> None:
    fold = Fold()
    [skipped] = fold(send(1, "campaign"))
    assert isinstance(skipped, SendSkipped) and skipped.reason == SkipReason.NOT_SUBSCRIBED
    assert skipped.reason_text.startswith("Not sent:") and skipped.message_id == "m1"
    fold(inbound(2, "START"))
    fold(inbound(3, "STOP"))
    [skipped] = fold(send(4, "flow"))
    assert isinstance(skipped, SendSkipped) and skipped.reason == SkipReason.UNSUBSCRIBED


def test_transactional_goes_to_a_never_subscribed_profile_unchanged() -> None:
    [approved] = Fold()(send(1, "transactional", "Your order shipped"))
    assert isinstance(approved, SendApproved)
    assert approved.body == "Your order shipped" and approved.from_number == ACME.numbers[0]


def test_marketing_is_composed_and_the_frequency_cap_counts_from_the_decision() -> None:
    fold = Fold()
    fold(inbound(1, "START"))
    [approved] = fold(send(2, "flow", "Sale today"), now_ms=DAY)
    assert isinstance(approved, SendApproved) and approved.flow_id == "f1"
    assert approved.body == "Sale today Reply STOP to opt out."
    assert fold.state.outbound.last_marketing_send_ms == DAY
    # Decided right behind it, before any vendor answered: smart sending skips it.
    [skipped] = fold(send(3, "campaign"), now_ms=DAY + HOUR)
    assert isinstance(skipped, SendSkipped) and skipped.reason == SkipReason.FREQUENCY_CAP
    # A transactional message is not capped, and does not move the cap.
    [ok] = fold(send(4, "transactional"), now_ms=DAY + HOUR)
    assert isinstance(ok, SendApproved)
    assert fold.state.outbound.last_marketing_send_ms == DAY


def test_a_held_flow_message_is_decided_again_in_full_when_released() -> None:
    fold = Fold()
    fold(inbound(1, "START"))
    [held] = fold(send(2, "flow"), now_ms=NIGHT)
    assert isinstance(held, SendHeld) and held.held_until == OPENS
    assert fold.state.outbound.next_release_ms == OPENS
    [approved] = fold(release(2, OPENS), now_ms=OPENS + 1000)
    assert isinstance(approved, SendApproved) and approved.message_id == "m2"
    assert fold.state.outbound.held == ()
    # A second release (the timer fired twice) changes nothing.
    assert fold(release(2, OPENS), now_ms=OPENS + 2000) == []


def test_a_stop_while_held_means_the_release_is_skipped() -> None:
    fold = Fold()
    fold(inbound(1, "START"))
    fold(send(2, "flow"), now_ms=NIGHT)
    fold(inbound(3, "STOP"), now_ms=NIGHT + 1000)
    [skipped] = fold(release(2, OPENS), now_ms=OPENS)
    assert isinstance(skipped, SendSkipped) and skipped.reason == SkipReason.UNSUBSCRIBED
    assert fold.state.outbound.held == ()


def test_an_early_release_holds_again_until_the_same_opening() -> None:
    fold = Fold()
    fold(inbound(1, "START"))
    [first] = fold(send(2, "flow"), now_ms=NIGHT)
    [again] = fold(release(2, OPENS), now_ms=NIGHT + HOUR)
    assert isinstance(again, SendHeld) and again.event_id == first.event_id
    assert len(fold.state.outbound.held) == 1


def test_bad_kind_and_suppressed_requests_are_skipped_with_a_reason() -> None:
    [bad] = Fold()(send(1, "newsletter"))
    assert isinstance(bad, SendSkipped) and bad.reason == SkipReason.INVALID_KIND
    suppressed = send(2, "auto_reply").model_copy(update={"suppressed": True})
    [skipped] = Fold()(suppressed)
    assert isinstance(skipped, SendSkipped) and skipped.reason == SkipReason.SUPPRESSED


def _changes(events: list[Event]) -> list[tuple[str | None, str, str]]:
    return [(e.message_id, e.previous_status, e.status)
            for e in events if isinstance(e, DeliveryStatusChanged)]


def test_status_moves_forward_by_rank_with_our_message_id() -> None:
    fold = Fold()
    fold(sent(1, "SM1"))
    fold(status("SM1", "sent"))
    fold(status("SM1", "delivered"))
    fold(status("SM1", "sent", at=9))  # late and out of order
    fold(status("SM1", "delivered", at=10))  # a vendor retry
    assert _changes(fold.out) == [("m1", "", "queued"), ("m1", "queued", "sent"), ("m1", "sent", "delivered")]


def test_an_earlier_failure_is_not_overwritten_by_a_later_parts_success() -> None:
    fold = Fold()
    fold(sent(1, "SM1"))
    fold(status("SM1", "failed", code="30003"))
    fold(status("SM1", "delivered"))
    changes = [e for e in fold.out if isinstance(e, DeliveryStatusChanged)]
    assert [c.status for c in changes] == ["queued", "failed"]
    assert (changes[-1].error_code, changes[-1].failure_category) == ("30003", "unreachable")


def test_a_callback_before_its_message_sent_waits_and_then_counts() -> None:
    fold = Fold()
    assert fold(status("SM1", "delivered")) == []
    assert len(fold.state.outbound.orphans) == 1
    fold(sent(1, "SM1"))
    assert _changes(fold.out) == [("m1", "", "queued"), ("m1", "queued", "delivered")]
    assert fold.state.outbound.orphans == ()


def test_the_senders_own_refusal_is_a_failed_status() -> None:
    failed = MessageFailed(event_id="x", company_id="acme", profile_key=PROFILE, occurred_at=1, received_at=1,
                           message_id="m1", vendor="twilio", vendor_message_id="", error_code="21211",
                           failure_category="invalid_number")
    assert _changes(Fold()(failed)) == [("m1", "", "failed")]


def test_outbound_state_survives_json() -> None:
    fold = Fold()
    fold(inbound(1, "START"))
    fold(send(2, "flow"), now_ms=NIGHT)
    fold(sent(3, "SM3"))
    fold(status("SM9", "sent"))
    assert fold.state.outbound.held and fold.state.outbound.messages and fold.state.outbound.orphans
    assert ProfileState.from_json(fold.state.to_json()) == fold.state
    # A state written before issue 5 has no outbound part.
    old = fold.state.to_json()
    del old["outbound"]
    assert ProfileState.from_json(old).outbound.held == ()


# The consent-gating property: whatever the interleaving of consent changes, send requests (of every
# kind, by day and by night) and releases, a marketing message is approved only when the profile's
# consent at that point of its log is subscribed, and nothing but an auto reply goes to an
# unsubscribed profile.
_KEYWORDS = ["START", "STOP", "JOIN", "HELP", "hi there", "UNSUBSCRIBE", "YES"]
_op = st.one_of(
    st.tuples(st.just("inbound"), st.sampled_from(_KEYWORDS)),
    st.tuples(st.just("send"), st.sampled_from(["flow", "campaign", "transactional", "auto_reply"])),
    st.tuples(st.just("release"), st.integers(0, 30)),
)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(st.tuples(_op, st.booleans(), st.integers(0, 20 * HOUR)), max_size=30))
def test_marketing_is_never_approved_unless_subscribed_at_decision_time(
    ops: list[tuple[tuple[str, object], bool, int]],
) -> None:
    fold = Fold()
    for n, ((op, arg), night, jitter) in enumerate(ops):
        now = (NIGHT if night else DAY) + jitter % HOUR + n * 20 * HOUR
        if op == "inbound":
            event: Event = inbound(n, str(arg))
        elif op == "send":
            event = send(n, str(arg))
        else:
            held = fold.state.outbound.held
            if not held:
                continue
            target = held[int(str(arg)) % len(held)]
            event = release(int(str(target.request.message_id).removeprefix("m")), target.until_ms)
        before = fold.state.consent.status
        for out in fold(event, now_ms=now):
            if isinstance(out, SendApproved):
                if out.kind in ("flow", "campaign"):
                    assert before == "subscribed", (out, before)
                if out.kind != "auto_reply":
                    assert before != "unsubscribed", (out, before)


def test_the_hold_timer_releases_exactly_the_due_sends_from_the_tables() -> None:
    # What the profile decider's tables hold after two holds (index: profile → earliest release).
    fold = Fold()
    fold(inbound(1, "START"))
    fold(send(2, "flow"), now_ms=NIGHT)
    fold(send(3, "campaign"), now_ms=NIGHT + 1)
    profiles = {PROFILE: fold.state.to_json()}
    index = {PROFILE: fold.state.outbound.next_release_ms, "acme:+10000000000": OPENS + HOUR}
    assert releases_due(index, profiles, OPENS - 1) == []
    due = releases_due(index, profiles, OPENS)
    assert [(r.message_id, r.held_until) for r in due] == [("m2", OPENS), ("m3", OPENS)]
    # Folding them decides both again: the first goes, the second meets the frequency cap.
    outputs = [out for r in due for out in fold(r, now_ms=OPENS)]
    assert [type(o).__name__ for o in outputs] == ["SendApproved", "SendSkipped"]
    assert fold.state.outbound.next_release_ms is None
