"""The profile fold: consent transitions, auto replies and re-processing (pure, no I/O)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.classify import classify
from agents.profile import ProfileState, decide
from config.companies import Company, load_companies
from streams.events import (
    ConsentChanged,
    ConsentChangeRequested,
    Event,
    InboundReceived,
    SendRequested,
    event_id_for,
)

COMPANIES = load_companies(Path("config/companies.toml"))
ACME, GLOBEX, LOADTEST = (COMPANIES.get(c) for c in ("acme", "globex", "loadtest"))
assert ACME is not None and GLOBEX is not None and LOADTEST is not None


def inbound(n: int, body: str, company: Company = ACME, phone: str = "+14155551234") -> InboundReceived:
    c = classify(body, custom_keywords=company.keywords.custom)
    return InboundReceived(
        event_id=event_id_for("InboundReceived", "twilio", f"SM{company.id}{phone}{n}"),
        company_id=company.id,
        profile_key=f"{company.id}:{phone}", occurred_at=1000 + n, received_at=1000 + n, vendor="twilio",
        vendor_message_id=f"SM{n}", to_number=company.numbers[-1], body=body,
        message_type=c.message_type.value, keyword=c.keyword, stage_times={"classified": 1000 + n},
    )


def request(n: int, status: str, source: str, company: Company = GLOBEX) -> ConsentChangeRequested:
    return ConsentChangeRequested(
        event_id=event_id_for("ConsentChangeRequested", str(n)), company_id=company.id,
        profile_key=f"{company.id}:+14155551234", occurred_at=2000 + n, received_at=2000 + n,
        status=status, source=source, method=f"{source}:signup",
    )


def fold(events: list[Event], company: Company = ACME) -> tuple[ProfileState, list[Event]]:
    state: ProfileState | None = None
    out: list[Event] = []
    for i, e in enumerate(events):
        state, emitted = decide(state, e, company, position=i)
        out += emitted
    return state or ProfileState(), out


def replies(events: list[Event]) -> list[SendRequested]:
    return [e for e in events if isinstance(e, SendRequested)]


def changes(events: list[Event]) -> list[ConsentChanged]:
    return [e for e in events if isinstance(e, ConsentChanged)]


# -- transitions and replies ------------------------------------------------------------------------

def test_start_stop_help_ends_unsubscribed_with_one_confirmation_and_one_help_reply() -> None:
    state, out = fold([inbound(1, "START"), inbound(2, "STOP"), inbound(3, "HELP")])
    assert state.consent.status == "unsubscribed" and state.consent.version == 2
    assert [(c.previous_status, c.status, c.version) for c in changes(out)] == [
        ("never_subscribed", "subscribed", 1), ("subscribed", "unsubscribed", 2)]
    bodies = [r.body for r in replies(out)]
    assert bodies == [
        "Acme Outfitters SMS: You are subscribed. Msg frequency varies. Msg&data rates may apply. "
        "Reply HELP for help, STOP to opt out.",
        "Acme Outfitters SMS: You are unsubscribed and will receive no further messages. "
        "Reply START to resubscribe.",
        "Acme Outfitters SMS: Help at help@acme.example. Msg frequency varies. Msg&data rates may apply. "
        "Reply STOP to opt out.",
    ]


def test_replies_are_transactional_requests_from_the_receiving_number_with_derived_ids() -> None:
    msg = inbound(1, "HELP")
    _, out = fold([msg])
    (reply,) = replies(out)
    assert reply.kind == "auto_reply" and reply.from_number == "+14155550101" and not reply.suppressed
    assert reply.event_id == event_id_for("SendRequested", "auto_reply", msg.event_id)
    assert reply.causation_id == msg.event_id and reply.profile_key == msg.profile_key
    assert reply.stage_times == {"classified": 1001, "consent_updated": 0}


def test_a_second_stop_gets_no_second_confirmation() -> None:
    state, out = fold([inbound(1, "STOP"), inbound(2, "stop please"), inbound(3, "UNSUBSCRIBE")])
    assert state.consent.status == "unsubscribed"
    assert len(changes(out)) == 1 and len(replies(out)) == 1


def test_stop_from_any_state_and_start_resubscribes() -> None:
    state, out = fold([inbound(1, "STOP"), inbound(2, "START"), inbound(3, "END"), inbound(4, "unstop")])
    assert [c.status for c in changes(out)] == ["unsubscribed", "subscribed", "unsubscribed", "subscribed"]
    assert state.consent.method == "sms_keyword:UNSTOP" and state.consent.source == "keyword"
    assert state.consent.subscribed_at == 1004 and state.consent.unsubscribed_at == 1003


def test_conversation_and_reactions_change_nothing_and_get_no_reply() -> None:
    state, out = fold([inbound(1, "START"), inbound(2, "where is my order?"), inbound(3, "Liked “STOP”")])
    assert state.consent.status == "subscribed" and len(changes(out)) == 1 and len(replies(out)) == 1


def test_company_keyword_subscribes_with_its_own_reply() -> None:
    state, out = fold([inbound(1, "Join!")])
    assert state.consent.status == "subscribed" and state.consent.method == "sms_keyword:JOIN"
    assert [r.body for r in replies(out)] == [ACME.keywords.custom["JOIN"].reply]


def test_company_keyword_without_effect_answers_unless_opted_out() -> None:
    _, out = fold([inbound(1, "START"), inbound(2, "sale")])
    assert replies(out)[-1].body == ACME.keywords.custom["SALE"].reply
    _, out = fold([inbound(1, "STOP"), inbound(2, "sale")])
    assert len(replies(out)) == 1  # only the STOP confirmation


def test_help_is_answered_after_an_opt_out() -> None:
    _, out = fold([inbound(1, "STOP"), inbound(2, "info")])
    assert len(replies(out)) == 2 and "Help at" in replies(out)[-1].body


def test_load_test_company_replies_are_recorded_but_suppressed() -> None:
    _, out = fold([inbound(1, "STOP", company=LOADTEST)], company=LOADTEST)
    (reply,) = replies(out)
    assert reply.suppressed and reply.body.startswith("Load Test:")


# -- double opt-in and requests ----------------------------------------------------------------------

def test_form_signup_for_a_double_opt_in_company_is_pending_until_yes() -> None:
    state, out = fold([request(1, "subscribed", "form"), inbound(2, "Y", company=GLOBEX)], company=GLOBEX)
    assert [(c.status, c.source, c.method) for c in changes(out)] == [
        ("pending", "form", "form:signup"), ("subscribed", "form", "double_opt_in:Y")]
    confirm, welcome = replies(out)
    assert "Reply YES to confirm" in confirm.body and confirm.from_number == "+13125550199"
    assert "You are subscribed" in welcome.body
    assert state.consent.status == "subscribed"


def test_a_bare_y_outside_pending_means_nothing() -> None:
    state, out = fold([inbound(1, "y")])
    assert state.consent.status == "never_subscribed" and out == []


def test_import_subscribes_directly_and_api_unsubscribe_sends_nothing() -> None:
    state, out = fold([request(1, "subscribed", "import"), request(2, "unsubscribed", "api")], company=GLOBEX)
    assert [c.status for c in changes(out)] == ["subscribed", "unsubscribed"] and replies(out) == []
    assert state.consent.source == "api"


def test_stop_while_pending_unsubscribes() -> None:
    state, _ = fold([request(1, "subscribed", "form"), inbound(2, "STOP", company=GLOBEX)], company=GLOBEX)
    assert state.consent.status == "unsubscribed"


def test_unknown_requested_status_changes_nothing() -> None:
    state, out = fold([request(1, "maybe", "api")], company=GLOBEX)
    assert state.consent.status == "never_subscribed" and out == []


# -- re-processing ------------------------------------------------------------------------------------

def test_own_consent_changes_coming_back_change_nothing_and_replies_are_decided() -> None:
    state, out = fold([inbound(1, "STOP")])
    changed, reply = changes(out), replies(out)
    assert len(changed) == 1 and len(reply) == 1
    again, emitted = decide(state, changed[0], ACME, position=10)
    assert again is state and emitted == []
    # The STOP confirmation is an auto reply: it goes to the now unsubscribed profile.
    _, emitted = decide(state, reply[0], ACME, position=11, now_ms=1_000_000)
    assert [e.event_type for e in emitted] == ["SendApproved"]


def test_redelivered_last_position_re_emits_its_outputs_and_older_ones_nothing() -> None:
    first, second = inbound(1, "START"), inbound(2, "STOP")
    state, out1 = decide(None, first, ACME, position=5)
    state, out2 = decide(state, second, ACME, position=6)
    assert decide(state, second, ACME, position=6) == (state, out2)
    assert decide(state, first, ACME, position=5) == (state, [])


def test_upstream_duplicate_with_a_new_position_changes_nothing() -> None:
    stop = inbound(1, "STOP")
    state, _ = fold([stop, inbound(2, "START")])
    again, emitted = decide(state, stop, ACME, position=99)
    assert again is state and emitted == []


def test_state_survives_json() -> None:
    state, _ = fold([request(1, "subscribed", "form"), inbound(2, "HELP", company=GLOBEX)], company=GLOBEX)
    assert ProfileState.from_json(state.to_json()) == state


def test_one_number_alternating_stop_start_a_thousand_times() -> None:
    bodies = ["STOP" if i % 2 == 0 else "START" for i in range(1000)]
    state, out = fold([inbound(i, b) for i, b in enumerate(bodies)])
    assert state.consent.status == "subscribed" and state.consent.version == 1000
    stop_confirmations = [r for r in replies(out) if "unsubscribed" in r.body]
    assert len(stop_confirmations) == 500


# -- properties ---------------------------------------------------------------------------------------

BODIES = ["STOP", "START", "HELP", "hi", "YES", "Y", "join", "sale", "stop it", "Liked “x”"]
PHONES = ["+14155550001", "+14155550002", "+14155550003"]


def _solo(events: list[Event]) -> tuple[dict[str, object], list[Event]]:
    state, out = fold(events)
    return state.consent.to_json(), out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PHONES), st.sampled_from(BODIES)), max_size=80))
def test_any_interleaving_across_profiles_gives_each_profile_its_in_order_fold(
    messages: list[tuple[str, str]],
) -> None:
    events = [inbound(i, body, phone=phone) for i, (phone, body) in enumerate(messages)]
    states: dict[str, ProfileState] = {}
    emitted: dict[str, list[Event]] = {}
    for position, e in enumerate(events):
        states[e.profile_key], out = decide(states.get(e.profile_key), e, ACME, position=position)
        emitted.setdefault(e.profile_key, []).extend(out)
    for key in {e.profile_key for e in events}:
        consent, out = _solo([e for e in events if e.profile_key == key])
        assert states[key].consent.to_json() == consent
        assert emitted[key] == out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(BODIES), max_size=60), st.data())
def test_duplicates_change_nothing(bodies: list[str], data: st.DataObject) -> None:
    events = [inbound(i, b) for i, b in enumerate(bodies)]
    clean, clean_out = fold(events)
    # Upstream duplicates (a vendor retry, a re-run normalizer): each event may come again a little later.
    noisy_events: list[Event] = []
    for i, e in enumerate(events):
        noisy_events.append(e)
        if data.draw(st.booleans()):
            noisy_events.append(events[data.draw(st.integers(max(0, i - 10), i))])
    noisy, noisy_out = fold(noisy_events)
    assert noisy.consent == clean.consent
    assert {e.event_id: e for e in noisy_out} == {e.event_id: e for e in clean_out}
    assert len(noisy_out) == len(clean_out)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(BODIES), min_size=1, max_size=60), st.data())
def test_redelivery_after_a_crash_re_emits_only_what_was_already_emitted(
    bodies: list[str], data: st.DataObject,
) -> None:
    events = [inbound(i, b) for i, b in enumerate(bodies)]
    clean, clean_out = fold(events)
    # The table kept the state after event k; offsets from c <= k on are delivered again.
    k = data.draw(st.integers(0, len(events) - 1))
    c = data.draw(st.integers(0, k))
    state, out = fold(events[: k + 1])
    for position in range(c, len(events)):
        state, emitted = decide(state, events[position], ACME, position=position)
        out += emitted
    assert state.consent == clean.consent
    assert {e.event_id: e for e in out} == {e.event_id: e for e in clean_out}
