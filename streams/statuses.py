"""Canonical delivery statuses of an outbound message and their rank (the event vocabulary).

Vendors retry and reorder callbacks, so a message's status only moves forward by rank. ``failed`` ranks
highest: a later part's success never overwrites an earlier terminal failure of a multi-part message.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DeliveryStatus", "delivery_outcome", "fold_delivery_status", "status_rank"]


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    UNCONFIRMED = "delivery_unconfirmed"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


_RANK = {
    DeliveryStatus.QUEUED: 10,
    DeliveryStatus.SENDING: 20,
    DeliveryStatus.SENT: 30,
    DeliveryStatus.UNCONFIRMED: 40,
    DeliveryStatus.DELIVERED: 50,
    DeliveryStatus.READ: 55,
    DeliveryStatus.FAILED: 60,
}


def status_rank(status: str) -> int:
    """The rank of a canonical status; an unknown word ranks 0 and so never moves a status."""
    try:
        return _RANK[DeliveryStatus(status)]
    except ValueError:
        return 0


def fold_delivery_status(current: str | None, incoming: str) -> str:
    """The status after a callback: only a higher rank moves it, so reorders and duplicates change nothing."""
    if current is None or status_rank(incoming) > status_rank(current):
        return incoming
    return current


_REACHED = frozenset((DeliveryStatus.DELIVERED.value, DeliveryStatus.READ.value))


def delivery_outcome(status: str, previous_status: str) -> str:
    """What a ``DeliveryStatusChanged`` from ``previous_status`` to ``status`` counts as in the stats:
    ``delivered`` the first time a message reaches delivered (or read, which implies it), ``failed`` when
    it fails, else ``""`` (queued, sent, and read after delivered). The analytics migration 004 computes the
    same in SQL; a multi-part message delivered and then failed counts once as each."""
    if status == DeliveryStatus.FAILED.value:
        return "failed"
    if status in _REACHED and previous_status not in _REACHED:
        return "delivered"
    return ""
