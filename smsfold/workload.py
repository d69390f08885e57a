"""A realistic, reproducible mix of ``sms.events`` for tests, the demo data set and the fold benchmark.

Per profile: flow and campaign sends (requested, skipped or sent, links, delivered or failed, human and
bot clicks, conversions and their attribution; vendor callbacks and the status moves the profile
decider derives from them) and inbound messages with consent changes. A share of
events is repeated later in the stream, as at-least-once delivery would.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from streams.events import (
    ConsentChanged,
    ConversionAttributed,
    ConversionRecorded,
    DeliveryStatusChanged,
    Event,
    InboundReceived,
    LinkClicked,
    LinkCreated,
    MessageDelivered,
    MessageFailed,
    MessageSent,
    MessageType,
    SendRequested,
    SendSkipped,
    event_id_for,
    profile_key,
)

__all__ = ["generate_events"]

_T0 = 1_763_769_600_000  # 2025-11-22 00:00 UTC
_SKIP_REASONS = ("quiet_hours", "frequency_cap", "not_subscribed")
_FAIL = (("30003", "unreachable"), ("30006", "landline"), ("21610", "opted_out"), ("40002", "spam"))
_INBOUND = (
    ("STOP", MessageType.UNSUBSCRIBE), ("START", MessageType.SUBSCRIBE), ("HELP", MessageType.HELP),
    ("INFO", MessageType.INFO), ("JOIN", MessageType.CUSTOM_KEYWORD),
    ("Loved “Your order shipped”", MessageType.REACTION), ("where is my order?", MessageType.UNRECOGNIZED),
)


def _profile_events(
    rng: random.Random, company: str, phone: str, messages: int, start_ms: int
) -> list[Event]:
    pk = profile_key(company, phone)
    t = start_ms + rng.randrange(86_400_000)
    out: list[Event] = []
    consent_version = 0
    status = "never_subscribed"

    def env(kind: str, *identity: str, **extra: Any) -> dict[str, Any]:
        nonlocal t
        t += rng.randrange(1_000, 3_600_000)
        return {"event_id": event_id_for(kind, pk, *identity), "company_id": company, "profile_key": pk,
                "occurred_at": t, "received_at": t + rng.randrange(5, 400), **extra}

    for m in range(messages):
        if rng.random() < 0.25:
            body, kind = rng.choice(_INBOUND)
            inbound = InboundReceived(**env("InboundReceived", str(m)), vendor="twilio",
                                      vendor_message_id=f"SM{rng.getrandbits(128):032x}",
                                      to_number="+18005550100", body=body, message_type=kind.value,
                                      keyword=body if kind not in (MessageType.REACTION,
                                                                   MessageType.UNRECOGNIZED) else None)
            out.append(inbound)
            target = {MessageType.UNSUBSCRIBE: "unsubscribed", MessageType.SUBSCRIBE: "subscribed"}.get(kind)
            if target and target != status:
                consent_version += 1
                out.append(ConsentChanged(**env("ConsentChanged", inbound.event_id),
                                          causation_id=inbound.event_id, status=target,
                                          previous_status=status,
                                          source="keyword", method=f"sms_keyword:{body}",
                                          version=consent_version))
                status = target
            continue
        msg_id = event_id_for("message", pk, str(m))
        flow = {"flow_id": f"flow-{rng.randrange(4)}"} if rng.random() < 0.7 else {
            "campaign_id": f"campaign-{rng.randrange(3)}"}
        ids = {"message_id": msg_id, **flow}
        out.append(SendRequested(**env("SendRequested", msg_id, **ids), kind="marketing",
                                 body="Your cart misses you: https://shop.example.com/cart"))
        if rng.random() < 0.1:
            out.append(SendSkipped(**env("SendSkipped", msg_id, **ids),
                                   reason=rng.choice(_SKIP_REASONS)))
            continue
        vendor_id = f"SM{rng.getrandbits(128):032x}"
        code = f"{rng.getrandbits(48):012x}"
        out.append(LinkCreated(**env("LinkCreated", msg_id, **ids), code=code,
                               url="https://shop.example.com/cart", expires_at=t + 90 * 86_400_000))
        segments = rng.choice((1, 1, 1, 2, 3))
        out.append(MessageSent(**env("MessageSent", msg_id, **ids), vendor="twilio",
                               vendor_message_id=vendor_id, segments=segments, cost_micros=7900 * segments))
        # As in the live pipeline: the vendor's callback knows only its own message id; the profile
        # decider's DeliveryStatusChanged that follows it carries ours.
        out.append(DeliveryStatusChanged(**env("DeliveryStatusChanged", msg_id, "queued", **ids),
                                         vendor="twilio", vendor_message_id=vendor_id, status="queued"))
        if rng.random() < 0.08:
            code_, category = rng.choice(_FAIL)
            out.append(MessageFailed(**env("MessageFailed", msg_id), vendor="twilio",
                                     vendor_message_id=vendor_id, error_code=code_,
                                     failure_category=category))
            out.append(DeliveryStatusChanged(**env("DeliveryStatusChanged", msg_id, "failed", **ids),
                                             vendor="twilio", vendor_message_id=vendor_id, status="failed",
                                             previous_status="queued", error_code=code_,
                                             failure_category=category))
            continue
        out.append(MessageDelivered(**env("MessageDelivered", msg_id), vendor="twilio",
                                    vendor_message_id=vendor_id))
        out.append(DeliveryStatusChanged(**env("DeliveryStatusChanged", msg_id, "delivered", **ids),
                                         vendor="twilio", vendor_message_id=vendor_id, status="delivered",
                                         previous_status="queued"))
        if rng.random() < 0.1:
            out.append(LinkClicked(**env("LinkClicked", msg_id, "bot", **ids), code=code,
                                   is_bot=True, agent_class="link_preview"))
        if rng.random() < 0.3:
            out.append(LinkClicked(**env("LinkClicked", msg_id, "human", **ids), code=code,
                                   is_bot=False, agent_class="browser"))
            if rng.random() < 0.3:
                value = rng.randrange(5_000_000, 150_000_000)
                conv = ConversionRecorded(**env("ConversionRecorded", msg_id), metric="Placed Order",
                                          value_micros=value, currency="USD")
                out.append(conv)
                out.append(ConversionAttributed(**env("ConversionAttributed", conv.event_id, **ids),
                                                causation_id=conv.event_id, conversion_id=conv.event_id,
                                                touch="click", window_ms=5 * 86_400_000,
                                                value_micros=value, currency="USD"))
    return out


def generate_events(
    profiles: int, messages_per_profile: int = 6, companies: tuple[str, ...] = ("acme", "globex"),
    duplicate_share: float = 0.05, seed: int = 7, start_ms: int = _T0,
) -> Iterator[Event]:
    """Events of ``profiles`` profiles, interleaved, each profile's in order, some repeated later."""
    rng = random.Random(seed)
    queues = [
        _profile_events(rng, companies[i % len(companies)], f"+1415{i:07d}", messages_per_profile, start_ms)
        for i in range(profiles)
    ]
    cursors = [0] * len(queues)
    live = list(range(len(queues)))
    repeats: list[Event] = []
    while live:
        i = rng.randrange(len(live))
        q = live[i]
        event = queues[q][cursors[q]]
        cursors[q] += 1
        if cursors[q] == len(queues[q]):
            live[i] = live[-1]
            live.pop()
        yield event
        if rng.random() < duplicate_share:
            repeats.append(event)
        if repeats and rng.random() < duplicate_share:
            yield repeats.pop(rng.randrange(len(repeats)))
    yield from repeats
