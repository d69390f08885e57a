"""The consent fold: a pure function from (state, inbound message) to (new state, ConsentChanged or None).

The inbound decider keeps one ConsentState per profile in a Faust table; because all events of a profile
are on one partition, the fold sees them in order. Re-processing is harmless: a cause already folded
re-emits the very same event (same id, same version) if it was the last one, and nothing otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from streams.events import (
    ConsentChanged,
    ConsentSource,
    ConsentStatus,
    InboundReceived,
    MessageType,
    event_id_for,
)

__all__ = ["ConsentState", "fold_consent"]

# How many recent causes a profile remembers to recognise a redelivered message.
_REMEMBERED_CAUSES = 32


@dataclass(frozen=True, slots=True)
class ConsentState:
    """A profile's consent as the decider knows it."""

    status: str = ConsentStatus.NEVER_SUBSCRIBED.value
    source: str = ""
    method: str = ""
    version: int = 0
    updated_at: int = 0
    recent_causes: tuple[str, ...] = ()
    last_event: dict[str, Any] | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "source": self.source,
            "method": self.method,
            "version": self.version,
            "updated_at": self.updated_at,
            "recent_causes": list(self.recent_causes),
            "last_event": self.last_event,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ConsentState:
        if not data:
            return cls()
        return cls(
            status=data["status"],
            source=data["source"],
            method=data["method"],
            version=data["version"],
            updated_at=data["updated_at"],
            recent_causes=tuple(data["recent_causes"]),
            last_event=data.get("last_event"),
        )


def _target_status(current: str, message_type: str) -> str | None:
    if message_type == MessageType.UNSUBSCRIBE:
        return ConsentStatus.UNSUBSCRIBED.value
    if message_type == MessageType.SUBSCRIBE:
        return ConsentStatus.SUBSCRIBED.value
    return None


def fold_consent(
    state: ConsentState | None, inbound: InboundReceived
) -> tuple[ConsentState, ConsentChanged | None]:
    """Apply one inbound message to a profile's consent."""
    state = state or ConsentState()
    if inbound.event_id in state.recent_causes:
        last = state.last_event
        if last is not None and last["causation_id"] == inbound.event_id:
            return state, ConsentChanged.model_validate(last)
        return state, None
    causes = (*state.recent_causes, inbound.event_id)[-_REMEMBERED_CAUSES:]
    target = _target_status(state.status, inbound.message_type)
    if target is None or target == state.status:
        return replace(state, recent_causes=causes), None
    changed = ConsentChanged(
        event_id=event_id_for("ConsentChanged", inbound.event_id),
        company_id=inbound.company_id,
        profile_key=inbound.profile_key,
        occurred_at=inbound.occurred_at,
        received_at=inbound.received_at,
        causation_id=inbound.event_id,
        status=target,
        previous_status=state.status,
        source=ConsentSource.KEYWORD.value,
        method=f"sms_keyword:{inbound.keyword or ''}",
        version=state.version + 1,
    )
    new_state = ConsentState(
        status=target,
        source=changed.source,
        method=changed.method,
        version=changed.version,
        updated_at=inbound.occurred_at,
        recent_causes=causes,
        last_event=changed.model_dump(),
    )
    return new_state, changed
