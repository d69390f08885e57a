"""Keyword basics and the consent fold (pure, no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.classify import classify
from agents.consent import ConsentState, fold_consent
from streams.events import InboundReceived, MessageType, event_id_for


@pytest.mark.parametrize(
    ("body", "expected", "keyword"),
    [
        ("STOP", MessageType.UNSUBSCRIBE, "STOP"),
        ("stop", MessageType.UNSUBSCRIBE, "STOP"),
        ("  Stop.  ", MessageType.UNSUBSCRIBE, "STOP"),
        ("STOP ALL", MessageType.UNSUBSCRIBE, "STOPALL"),
        ("opt out", MessageType.UNSUBSCRIBE, "OPTOUT"),
        ("Unsubscribe!", MessageType.UNSUBSCRIBE, "UNSUBSCRIBE"),
        ("cancel", MessageType.UNSUBSCRIBE, "CANCEL"),
        ("please stop texting me", MessageType.UNSUBSCRIBE, "STOP"),
        ("START", MessageType.SUBSCRIBE, "START"),
        ("yes", MessageType.SUBSCRIBE, "YES"),
        ("Unstop", MessageType.SUBSCRIBE, "UNSTOP"),
        ("HELP", MessageType.HELP, "HELP"),
        ("help?", MessageType.HELP, "HELP"),
        ("info", MessageType.INFO, "INFO"),
        ("Loved “see you soon”", MessageType.REACTION, None),
        ('Liked "STOP"', MessageType.REACTION, None),
        ("hello there", MessageType.UNRECOGNIZED, None),
        ("stopwatch for sale?", MessageType.UNRECOGNIZED, None),
    ],
)
def test_keyword_basics(body: str, expected: MessageType, keyword: str | None) -> None:
    result = classify(body)
    assert result.message_type == expected
    assert result.keyword == keyword


def test_stop_word_outside_us_is_not_an_opt_out() -> None:
    assert classify("please stop", us_recipient=False).message_type == MessageType.UNRECOGNIZED


def _inbound(n: int, body: str, profile: str = "acme:+14155551234") -> InboundReceived:
    c = classify(body)
    return InboundReceived(
        event_id=event_id_for("InboundReceived", "twilio", f"SM{profile}{n}"), company_id="acme",
        profile_key=profile, occurred_at=1000 + n, received_at=1000 + n, vendor="twilio",
        vendor_message_id=f"SM{n}", to_number="+14155550100", body=body,
        message_type=c.message_type.value, keyword=c.keyword,
    )


def test_start_then_stop() -> None:
    state, first = fold_consent(None, _inbound(1, "START"))
    assert first is not None and first.status == "subscribed" and first.version == 1
    state, second = fold_consent(state, _inbound(2, "STOP"))
    assert second is not None and second.status == "unsubscribed" and second.previous_status == "subscribed"
    assert second.version == 2
    assert state.status == "unsubscribed"


def test_no_change_no_event() -> None:
    state, _ = fold_consent(None, _inbound(1, "STOP"))
    state, again = fold_consent(state, _inbound(2, "STOP"))
    assert again is None
    state, chat = fold_consent(state, _inbound(3, "hi"))
    assert chat is None and state.status == "unsubscribed"


def test_redelivered_last_cause_re_emits_the_same_event() -> None:
    msg = _inbound(1, "START")
    state, first = fold_consent(None, msg)
    again_state, again = fold_consent(state, msg)
    assert again == first
    assert again_state == state


def test_redelivered_older_cause_changes_nothing() -> None:
    stop = _inbound(1, "STOP")
    state, _ = fold_consent(None, stop)
    state, _ = fold_consent(state, _inbound(2, "START"))
    later, emitted = fold_consent(state, stop)
    assert emitted is None
    assert later.status == "subscribed"


def test_state_survives_json() -> None:
    state, _ = fold_consent(None, _inbound(1, "START"))
    assert ConsentState.from_json(state.to_json()) == state


@given(st.lists(st.sampled_from(["STOP", "START", "HELP", "hi"]), max_size=60), st.data())
def test_duplicates_anywhere_change_nothing(bodies: list[str], data: st.DataObject) -> None:
    messages = [_inbound(i, b) for i, b in enumerate(bodies)]
    clean: ConsentState | None = None
    for m in messages:
        clean, _ = fold_consent(clean, m)
    # Redeliver some messages right after themselves (a producer retry): the final state is the same.
    noisy: ConsentState | None = None
    for m in messages:
        noisy, _ = fold_consent(noisy, m)
        if data.draw(st.booleans()):
            noisy, _ = fold_consent(noisy, m)
    assert (noisy or ConsentState()).status == (clean or ConsentState()).status
    assert (noisy or ConsentState()).version == (clean or ConsentState()).version
