"""The profile fold: one state per profile, folded from ``sms.events`` in partition order.

``decide(state, event, company, position, now_ms)`` is pure: it returns the new state and the events to
emit, with a handler per event type. Send requests are decided here (``agents.send.fold``), so a send
sees the consent the profile has at its place in the log. Re-processing is harmless:

- a redelivered event of ``sms.events`` (position at or below the last applied) changes nothing; the last
  applied one re-emits its outputs, which may have been lost in a crash (same ids, same content);
- a duplicate cause from upstream (same event id, e.g. a vendor retry) is recognised among the recent
  causes and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatch
from typing import Any

from agents.classify import find_custom_keyword
from agents.consent import (
    SUBSCRIBED,
    UNSUBSCRIBED,
    ConsentState,
    ConsentTarget,
    consent_for_inbound,
    consent_for_request,
)
from agents.replies import auto_reply
from agents.send.fold import (
    OutboundState,
    on_message_sent,
    on_send_released,
    on_send_requested,
    on_status,
)
from config.companies import Company
from streams.events import (
    EVENT_TYPES,
    ConsentChanged,
    ConsentChangeRequested,
    Event,
    InboundReceived,
    MessageDelivered,
    MessageFailed,
    MessageSent,
    MessageStatusUpdated,
    MessageType,
    SendReleased,
    SendRequested,
    event_id_for,
)

__all__ = ["ProfileState", "decide"]

# Upstream duplicates (vendor retries, a re-run normalizer) arrive close behind the original.
REMEMBERED_CAUSES = 64


@dataclass(frozen=True, slots=True)
class ProfileState:
    """What the decider knows about one profile."""

    consent: ConsentState = ConsentState()
    outbound: OutboundState = OutboundState()
    # Offset in the profile's sms.events partition of the last event that changed this state.
    position: int = -1
    recent_causes: tuple[str, ...] = ()
    last_outputs: tuple[Event, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "consent": self.consent.to_json(),
            "outbound": self.outbound.to_json(),
            "position": self.position,
            "recent_causes": list(self.recent_causes),
            "last_outputs": [e.model_dump() for e in self.last_outputs],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ProfileState:
        if not data:
            return cls()
        return cls(
            consent=ConsentState.from_json(data["consent"]),
            # States written before issue 5 have no outbound part.
            outbound=OutboundState.from_json(data.get("outbound")),
            position=data["position"],
            recent_causes=tuple(data["recent_causes"]),
            last_outputs=tuple(EVENT_TYPES[o["event_type"]].model_validate(o) for o in data["last_outputs"]),
        )


@dataclass(frozen=True, slots=True)
class _Outcome:
    consent: ConsentState
    outputs: tuple[Event, ...]
    outbound: OutboundState | None = None


def decide(
    state: ProfileState | None,
    event: Event,
    company: Company | None,
    position: int | None = None,
    now_ms: int = 0,
) -> tuple[ProfileState, list[Event]]:
    """Fold one event of a profile; ``position`` is its offset in the partition (None in pure tests)."""
    state = state or ProfileState()
    if position is not None and position <= state.position:
        return state, list(state.last_outputs) if position == state.position else []
    if event.event_id in state.recent_causes:
        return state, []
    outcome = _handle(event, state, company, now_ms)
    if outcome is None:
        return state, []
    new_state = ProfileState(
        consent=outcome.consent,
        outbound=outcome.outbound if outcome.outbound is not None else state.outbound,
        position=position if position is not None else state.position,
        recent_causes=(*state.recent_causes, event.event_id)[-REMEMBERED_CAUSES:],
        last_outputs=outcome.outputs,
    )
    return new_state, list(outcome.outputs)


@singledispatch
def _handle(event: Event, state: ProfileState, company: Company | None, now_ms: int) -> _Outcome | None:
    # Everything else on sms.events, including the decider's own ConsentChanged and replies, is not a
    # cause of profile decisions (yet): the state is not touched.
    return None


def _consent_changed(
    cause: Event, consent: ConsentState, target: ConsentTarget, stage_times: dict[str, int]
) -> tuple[ConsentState, ConsentChanged]:
    new = consent.moved_to(target, cause.occurred_at)
    changed = ConsentChanged(
        event_id=event_id_for("ConsentChanged", cause.event_id),
        company_id=cause.company_id,
        profile_key=cause.profile_key,
        occurred_at=cause.occurred_at,
        received_at=cause.received_at,
        causation_id=cause.event_id,
        status=new.status,
        previous_status=consent.status,
        source=new.source,
        method=new.method,
        version=new.version,
        stage_times=stage_times,
    )
    return new, changed


@_handle.register
def _inbound(
    event: InboundReceived, state: ProfileState, company: Company | None, now_ms: int
) -> _Outcome | None:
    consent = state.consent
    stage_times = {**event.stage_times, "consent_updated": now_ms}
    outputs: list[Event] = []
    before = consent
    target = consent_for_inbound(consent, event, company)
    if target is not None:
        consent, changed = _consent_changed(event, consent, target, stage_times)
        outputs.append(changed)
    reply = _reply_text(event, before, consent, company)
    if reply is not None and company is not None:
        outputs.append(auto_reply(event, company, reply, event.to_number, stage_times))
    return _Outcome(consent, tuple(outputs))


def _reply_text(
    event: InboundReceived, before: ConsentState, after: ConsentState, company: Company | None
) -> str | None:
    """Which reply an inbound message gets; an opt-out gets one confirmation and nothing else after it."""
    if company is None:
        return None
    kw = company.keywords
    kind = event.message_type
    if kind == MessageType.UNSUBSCRIBE:
        return kw.stop_reply if after.status == UNSUBSCRIBED and before.status != UNSUBSCRIBED else None
    if kind in (MessageType.HELP, MessageType.INFO):
        # HELP is answered even after an opt-out: the profile asked, and carriers require it.
        return kw.help_reply
    if kind == MessageType.SUBSCRIBE:
        return kw.start_reply if after.status == SUBSCRIBED and after.version != before.version else None
    if kind == MessageType.CUSTOM_KEYWORD:
        custom = find_custom_keyword(kw.custom, event.keyword)
        if custom is None:
            return None
        if custom.consent_effect == "unsubscribe":
            return custom.reply if after.version != before.version else None
        # Nothing but the one confirmation goes to an opted-out profile.
        return custom.reply if after.status != UNSUBSCRIBED else None
    return None


@_handle.register
def _request(
    event: ConsentChangeRequested, state: ProfileState, company: Company | None, now_ms: int
) -> _Outcome | None:
    consent = state.consent
    target = consent_for_request(consent, event, company)
    if target is None:
        return _Outcome(consent, ())
    stage_times = {"consent_updated": now_ms}
    new, changed = _consent_changed(event, consent, target, stage_times)
    outputs: list[Event] = [changed]
    if new.status == "pending" and company is not None and company.numbers:
        outputs.append(auto_reply(event, company, company.keywords.confirm_reply, company.numbers[0],
                                  stage_times))
    return _Outcome(new, tuple(outputs))




def _outbound(state: ProfileState, result: tuple[OutboundState, tuple[Event, ...]] | None) -> _Outcome | None:
    if result is None:
        return None
    outbound, outputs = result
    return _Outcome(state.consent, outputs, outbound)


@_handle.register
def _send_requested(
    event: SendRequested, state: ProfileState, company: Company | None, now_ms: int
) -> _Outcome | None:
    return _outbound(state, on_send_requested(state.outbound, state.consent.status, event, company, now_ms))


@_handle.register
def _send_released(
    event: SendReleased, state: ProfileState, company: Company | None, now_ms: int
) -> _Outcome | None:
    return _outbound(state, on_send_released(state.outbound, state.consent.status, event, company, now_ms))


@_handle.register
def _message_sent(
    event: MessageSent, state: ProfileState, company: Company | None, now_ms: int
) -> _Outcome | None:
    return _outbound(state, on_message_sent(state.outbound, event))


@_handle.register(MessageDelivered)
@_handle.register(MessageFailed)
@_handle.register(MessageStatusUpdated)
def _delivery_status(
    event: MessageDelivered | MessageFailed | MessageStatusUpdated, state: ProfileState,
    company: Company | None, now_ms: int,
) -> _Outcome | None:
    return _outbound(state, on_status(state.outbound, event))
