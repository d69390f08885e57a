"""The sender's part of the profile fold (pure): send decisions, held sends, and delivery status by our
message id.

It runs inside ``agents.profile.decide``, so a send request is decided against the consent the profile
has at the request's place in its partition, never a stale copy:

- ``SendRequested`` → ``SendSkipped`` | ``SendHeld`` (the request is kept in the state until released) |
  ``SendApproved`` (the composed body; the sender agent performs the vendor call, outside the fold). A
  marketing approval records the profile's last marketing send at decision time, so two requests decided
  back to back cannot both pass the frequency cap.
- ``SendReleased`` (the hold timer) → the held request is decided again in full: consent may have
  changed meanwhile.
- ``MessageSent``, the sender's ``MessageFailed`` and the vendor's status callbacks →
  ``DeliveryStatusChanged`` with our message id, only when the status moves forward by rank. A callback
  that arrives before its ``MessageSent`` (a vendor may call back before its HTTP answer reaches us)
  waits among the orphans.

Composition (prefix, opt-out language) happens here, at decision time: the gateway cannot import the
agents' compose rules, and the text goes out under the company's settings when it actually goes out (a
held campaign released tomorrow carries tomorrow's opt-out wording, the one its carrier sees).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from agents.send.checks import (
    Hold,
    ProfileSnapshot,
    Send,
    SendRequest,
    Skip,
    SkipReason,
    decide_send,
)
from agents.send.compose import compose_body, send_held, send_skipped
from agents.send.quiet_hours import SendKind
from config.companies import Company
from streams.events import (
    DeliveryStatusChanged,
    Event,
    MessageDelivered,
    MessageFailed,
    MessageSent,
    MessageStatusUpdated,
    SendApproved,
    SendReleased,
    SendRequested,
    event_id_for,
)
from streams.statuses import DeliveryStatus, fold_delivery_status

__all__ = [
    "HeldSend",
    "OutboundState",
    "TrackedMessage",
    "due_releases",
    "message_id_of",
    "on_message_sent",
    "on_send_released",
    "on_send_requested",
    "on_status",
]

# Bounds that keep one profile's state small: callbacks for older messages are orphans (and change
# nothing), and a profile rarely has more than a few sends waiting for its window.
REMEMBERED_MESSAGES = 32
REMEMBERED_ORPHANS = 16
MAX_HELD = 64

StatusEvent = MessageDelivered | MessageFailed | MessageStatusUpdated
Outcome = tuple["OutboundState", tuple[Event, ...]]


@dataclass(frozen=True, slots=True)
class HeldSend:
    """A request waiting for the recipient's sending window, decided again at ``until_ms``."""

    request: SendRequested
    until_ms: int


@dataclass(frozen=True, slots=True)
class TrackedMessage:
    """A sent message whose callbacks may still come: our id, the vendor's id, its status now."""

    message_id: str
    vendor: str
    vendor_message_id: str
    status: str
    flow_id: str | None = None
    campaign_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundState:
    """What the profile fold keeps for sending."""

    last_marketing_send_ms: int | None = None
    held: tuple[HeldSend, ...] = ()
    messages: tuple[TrackedMessage, ...] = ()
    orphans: tuple[StatusEvent, ...] = ()

    @property
    def next_release_ms(self) -> int | None:
        """When the earliest held send is due, or None without held sends."""
        return min((h.until_ms for h in self.held), default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "last_marketing_send_ms": self.last_marketing_send_ms,
            "held": [{"request": h.request.model_dump(), "until_ms": h.until_ms} for h in self.held],
            "messages": [
                {"message_id": m.message_id, "vendor": m.vendor, "vendor_message_id": m.vendor_message_id,
                 "status": m.status, "flow_id": m.flow_id, "campaign_id": m.campaign_id}
                for m in self.messages
            ],
            "orphans": [o.model_dump() for o in self.orphans],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> OutboundState:
        if not data:
            return cls()
        orphan_types: dict[str, type[StatusEvent]] = {
            "MessageDelivered": MessageDelivered, "MessageFailed": MessageFailed,
            "MessageStatusUpdated": MessageStatusUpdated,
        }
        return cls(
            last_marketing_send_ms=data.get("last_marketing_send_ms"),
            held=tuple(HeldSend(SendRequested.model_validate(h["request"]), h["until_ms"])
                       for h in data.get("held", ())),
            messages=tuple(TrackedMessage(**m) for m in data.get("messages", ())),
            orphans=tuple(orphan_types[o["event_type"]].model_validate(o) for o in data.get("orphans", ())),
        )


def message_id_of(request: SendRequested) -> str:
    """The request's message id; a request without one (an auto reply) is its own message."""
    return request.message_id or request.event_id


def on_send_requested(
    state: OutboundState, consent_status: str, request: SendRequested, company: Company | None, now_ms: int
) -> Outcome | None:
    """Decide a send request against the profile's consent now; None when there is no such company."""
    if company is None:
        return None
    if request.message_id is None:
        request = request.model_copy(update={"message_id": message_id_of(request)})
    # A request decided again (released) must not stay held twice.
    held = tuple(h for h in state.held if h.request.message_id != request.message_id)
    state = replace(state, held=held)
    try:
        kind = SendKind(request.kind)
    except ValueError:
        return state, (send_skipped(request, Skip(SkipReason.INVALID_KIND), now_ms),)
    snapshot = ProfileSnapshot(consent_status, state.last_marketing_send_ms)
    decision = decide_send(SendRequest(kind, request.phone, request.suppressed), snapshot, now_ms,
                           company.sending)
    if isinstance(decision, Skip):
        return state, (send_skipped(request, decision, now_ms),)
    if isinstance(decision, Hold):
        if len(state.held) >= MAX_HELD:
            # Held sends of one profile pile up only when something upstream loops; keep the newest.
            state = replace(state, held=state.held[1:])
        state = replace(state, held=(*state.held, HeldSend(request, decision.until_ms)))
        return state, (send_held(request, decision, now_ms),)
    assert isinstance(decision, Send)
    from_number = request.from_number or (company.numbers[0] if company.numbers else None)
    if from_number is None:
        return state, (send_skipped(request, Skip(SkipReason.NO_SENDING_NUMBER), now_ms),)
    if kind.is_marketing:
        state = replace(state, last_marketing_send_ms=now_ms)
    approved = SendApproved(
        event_id=event_id_for("SendApproved", request.event_id),
        company_id=request.company_id,
        profile_key=request.profile_key,
        occurred_at=now_ms,
        received_at=request.received_at,
        causation_id=request.event_id,
        message_id=request.message_id,
        flow_id=request.flow_id,
        campaign_id=request.campaign_id,
        kind=kind.value,
        body=compose_body(request.body, kind, company.sending),
        from_number=from_number,
        stage_times={**request.stage_times, "decided": now_ms},
    )
    return state, (approved,)


def on_send_released(
    state: OutboundState, consent_status: str, release: SendReleased, company: Company | None, now_ms: int
) -> Outcome | None:
    """Decide a held request again; a release for a request no longer held changes nothing."""
    held = next((h for h in state.held if h.request.message_id == release.message_id), None)
    if held is None:
        return None
    return on_send_requested(state, consent_status, held.request, company, now_ms)


def due_releases(state: OutboundState, now_ms: int) -> list[SendReleased]:
    """A release for every held send due at ``now_ms`` (the hold timer emits them onto the log; ids
    derive from the message and its release time, so a timer firing twice asks once)."""
    return [
        SendReleased(
            event_id=event_id_for("SendReleased", str(h.request.message_id), str(h.until_ms)),
            company_id=h.request.company_id,
            profile_key=h.request.profile_key,
            occurred_at=h.until_ms,
            received_at=h.request.received_at,
            causation_id=h.request.event_id,
            message_id=h.request.message_id,
            flow_id=h.request.flow_id,
            campaign_id=h.request.campaign_id,
            held_until=h.until_ms,
        )
        for h in state.held
        if h.until_ms <= now_ms
    ]


def _status_changed(cause: Event, message: TrackedMessage, previous: str, status: str,
                    error_code: str = "", failure_category: str = "") -> DeliveryStatusChanged:
    return DeliveryStatusChanged(
        # One event per forward move: a status is reached at most once per message.
        event_id=event_id_for("DeliveryStatusChanged", message.message_id, status),
        company_id=cause.company_id,
        profile_key=cause.profile_key,
        occurred_at=cause.occurred_at,
        received_at=cause.received_at,
        causation_id=cause.event_id,
        message_id=message.message_id,
        flow_id=message.flow_id,
        campaign_id=message.campaign_id,
        vendor=message.vendor,
        vendor_message_id=message.vendor_message_id,
        status=status,
        previous_status=previous,
        error_code=error_code,
        failure_category=failure_category,
    )


def _track(state: OutboundState, message: TrackedMessage) -> OutboundState:
    kept = tuple(m for m in state.messages if m.message_id != message.message_id)
    return replace(state, messages=(*kept, message)[-REMEMBERED_MESSAGES:])


def _status_word(event: StatusEvent) -> str:
    if isinstance(event, MessageDelivered):
        return DeliveryStatus.DELIVERED.value
    if isinstance(event, MessageFailed):
        return DeliveryStatus.FAILED.value
    return event.status


def _advance(
    state: OutboundState, message: TrackedMessage, updates: list[StatusEvent]
) -> Outcome:
    """Fold status callbacks into ``message``; one DeliveryStatusChanged for the furthest move."""
    best: StatusEvent | None = None
    status = message.status
    for update in updates:
        moved = fold_delivery_status(status, _status_word(update))
        if moved != status:
            status, best = moved, update
    if best is None:
        return state, ()
    failure = (best.error_code, best.failure_category) if isinstance(best, MessageFailed) else ("", "")
    changed = _status_changed(best, message, message.status, status, *failure)
    return _track(state, replace(message, status=status)), (changed,)


def on_message_sent(state: OutboundState, sent: MessageSent) -> Outcome | None:
    """A vendor accepted a message: track it as queued, and fold callbacks that arrived before."""
    if sent.message_id is None:
        return None
    message = TrackedMessage(sent.message_id, sent.vendor, sent.vendor_message_id, "",
                             sent.flow_id, sent.campaign_id)
    early = [o for o in state.orphans
             if (o.vendor, o.vendor_message_id) == (sent.vendor, sent.vendor_message_id)]
    state = replace(state, orphans=tuple(o for o in state.orphans if o not in early))
    queued = _status_changed(sent, message, "", DeliveryStatus.QUEUED.value)
    message = replace(message, status=DeliveryStatus.QUEUED.value)
    state, outputs = _advance(_track(state, message), message, early)
    return state, (queued, *outputs)


def on_status(state: OutboundState, event: StatusEvent) -> Outcome | None:
    """A vendor status (or the sender's own refusal, which has no vendor message id)."""
    if isinstance(event, MessageFailed) and not event.vendor_message_id:
        if event.message_id is None:
            return None
        message = TrackedMessage(event.message_id, event.vendor, "", "", event.flow_id, event.campaign_id)
        return _advance(state, message, [event])
    tracked = next((m for m in state.messages
                    if (m.vendor, m.vendor_message_id) == (event.vendor, event.vendor_message_id)), None)
    if tracked is None:
        orphans = (*state.orphans, event)[-REMEMBERED_ORPHANS:]
        return replace(state, orphans=orphans), ()
    return _advance(state, tracked, [event])
