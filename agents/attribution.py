"""The attribution fold: last touch, from a profile's recent SMS touches to ConversionAttributed or nothing.

Touches are human link clicks (window 5 days by default) and deliveries (12 hours); bot clicks never
count. A delivery is our ``DeliveryStatusChanged`` reaching delivered (it carries our message, flow and
campaign ids), not the vendor's ``MessageDelivered`` callback, which knows only the vendor's message id.
A conversion is credited to the latest touch that happened at or before it and within its window, a
window's edge included (a click exactly 5 days before counts, one millisecond more does not); on equal
times a click beats a delivery. Re-processing is harmless: a conversion already decided re-emits the
very same event (or nothing again), and a repeated touch is recognised by its event id.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from config.settings import AttributionSettings
from streams.events import (
    ConversionAttributed,
    ConversionRecorded,
    DeliveryStatusChanged,
    Event,
    LinkClicked,
    event_id_for,
)
from streams.statuses import delivery_outcome

__all__ = ["AttributionState", "Touch", "fold_attribution"]

_MAX_TOUCHES = 16
_REMEMBERED_DECISIONS = 32
CLICK, DELIVERY = "click", "delivery"


@dataclass(frozen=True, slots=True)
class Touch:
    """One SMS touch of a profile."""

    kind: str
    occurred_at: int
    event_id: str
    message_id: str | None
    flow_id: str | None
    campaign_id: str | None

    def rank(self) -> tuple[int, int]:
        return self.occurred_at, 1 if self.kind == CLICK else 0


@dataclass(frozen=True, slots=True)
class AttributionState:
    """A profile's recent touches and recent decisions (conversion id → emitted event or None)."""

    touches: tuple[Touch, ...] = ()
    decisions: tuple[tuple[str, dict[str, Any] | None], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"touches": [[t.kind, t.occurred_at, t.event_id, t.message_id, t.flow_id, t.campaign_id]
                            for t in self.touches],
                "decisions": [[cid, event] for cid, event in self.decisions]}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> AttributionState:
        if not data:
            return cls()
        return cls(touches=tuple(Touch(*t) for t in data["touches"]),
                   decisions=tuple((cid, event) for cid, event in data["decisions"]))


def _touch(event: Event) -> Touch | None:
    if isinstance(event, LinkClicked):
        kind = None if event.is_bot else CLICK
    elif isinstance(event, DeliveryStatusChanged):
        kind = DELIVERY if delivery_outcome(event.status, event.previous_status) == "delivered" else None
    else:
        kind = None
    if kind is None:
        return None
    return Touch(kind, event.occurred_at, event.event_id, event.message_id, event.flow_id, event.campaign_id)


def _window_ms(kind: str, windows: AttributionSettings) -> int:
    return (windows.click_window_s if kind == CLICK else windows.delivery_window_s) * 1000


def fold_attribution(
    state: AttributionState | None, event: Event, windows: AttributionSettings
) -> tuple[AttributionState, ConversionAttributed | None]:
    """Apply one event of a profile: remember a touch, or decide a conversion."""
    state = state or AttributionState()
    touch = _touch(event)
    if touch is not None:
        if any(t.event_id == touch.event_id for t in state.touches):
            return state, None
        longest = max(_window_ms(CLICK, windows), _window_ms(DELIVERY, windows))
        touches = sorted((*state.touches, touch), key=Touch.rank)
        newest = touches[-1].occurred_at
        kept = [t for t in touches if t.occurred_at >= newest - longest][-_MAX_TOUCHES:]
        return replace(state, touches=tuple(kept)), None
    if not isinstance(event, ConversionRecorded):
        return state, None
    for conversion_id, decided in state.decisions:
        if conversion_id == event.event_id:
            return state, ConversionAttributed.model_validate(decided) if decided else None
    qualifying = [t for t in state.touches
                  if t.occurred_at <= event.occurred_at <= t.occurred_at + _window_ms(t.kind, windows)]
    attributed = None
    if qualifying:
        last = max(qualifying, key=Touch.rank)
        attributed = ConversionAttributed(
            event_id=event_id_for("ConversionAttributed", event.event_id),
            company_id=event.company_id,
            profile_key=event.profile_key,
            occurred_at=event.occurred_at,
            received_at=event.received_at,
            causation_id=event.event_id,
            message_id=last.message_id,
            flow_id=last.flow_id,
            campaign_id=last.campaign_id,
            conversion_id=event.event_id,
            touch=last.kind,
            window_ms=_window_ms(last.kind, windows),
            value_micros=event.value_micros,
            currency=event.currency,
        )
    decision = (event.event_id, attributed.model_dump() if attributed else None)
    decisions = (*state.decisions, decision)[-_REMEMBERED_DECISIONS:]
    return replace(state, decisions=decisions), attributed
