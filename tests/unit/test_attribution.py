"""The attribution fold: last touch, window edges, bot clicks, redelivery."""

from __future__ import annotations

from typing import Any

import pytest

from agents.attribution import AttributionState, fold_attribution
from config.settings import AttributionSettings
from streams.events import (
    ConversionAttributed,
    ConversionRecorded,
    DeliveryStatusChanged,
    Event,
    LinkClicked,
    MessageDelivered,
    event_id_for,
)

WINDOWS = AttributionSettings()
DAY, HOUR = 86_400_000, 3_600_000
T = 1_763_769_600_000
PK = "acme:+14155550100"


def _env(kind: str, n: str, at: int, message: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id_for(kind, n), "company_id": "acme", "profile_key": PK, "occurred_at": at,
            "received_at": at, "message_id": message, "flow_id": f"flow-of-{message}" if message else None}


def click(n: str, at: int, message: str, bot: bool = False) -> LinkClicked:
    return LinkClicked(**_env("LinkClicked", n, at, message), code="abc", is_bot=bot,
                       agent_class="bot" if bot else "browser")


def delivered(n: str, at: int, message: str, status: str = "delivered",
              previous: str = "sent") -> DeliveryStatusChanged:
    """Our status move, as the profile decider emits it once it joined the vendor's callback."""
    return DeliveryStatusChanged(**_env("DeliveryStatusChanged", n, at, message), vendor="twilio",
                                 vendor_message_id=f"SM{n}", status=status, previous_status=previous)


def conversion(n: str, at: int) -> ConversionRecorded:
    return ConversionRecorded(**_env("ConversionRecorded", n, at), metric="Placed Order",
                              value_micros=42_000_000, currency="USD")


def run(*events: Event) -> tuple[AttributionState, list[ConversionAttributed]]:
    state, out = AttributionState(), []
    for e in events:
        state, attributed = fold_attribution(state, e, WINDOWS)
        if attributed is not None:
            out.append(attributed)
        state = AttributionState.from_json(state.to_json())  # as the Faust table stores it
    return state, out


@pytest.mark.parametrize(("offset", "credited"), [(5 * DAY, True), (5 * DAY + 1, False), (0, True)])
def test_click_window_edge(offset: int, credited: bool) -> None:
    _, out = run(click("c", T, "m1"), conversion("o", T + offset))
    assert [(a.touch, a.message_id) for a in out] == ([("click", "m1")] if credited else [])


@pytest.mark.parametrize(("offset", "credited"), [(12 * HOUR, True), (12 * HOUR + 1, False)])
def test_delivery_window_edge(offset: int, credited: bool) -> None:
    _, out = run(delivered("d", T, "m1"), conversion("o", T + offset))
    assert [(a.touch, a.window_ms) for a in out] == ([("delivery", 12 * HOUR)] if credited else [])


def test_last_touch_wins_and_a_delivery_outside_its_window_falls_back_to_an_older_click() -> None:
    _, out = run(click("c1", T, "m1"), click("c2", T + HOUR, "m2"), delivered("d3", T + 2 * HOUR, "m3"),
                 conversion("o1", T + 3 * HOUR), conversion("o2", T + 2 * DAY))
    # o1: the delivery of m3 is the latest touch; o2: m3's delivery is 46 h old, the m2 click still counts.
    assert [(a.touch, a.message_id, a.flow_id) for a in out] == [
        ("delivery", "m3", "flow-of-m3"), ("click", "m2", "flow-of-m2")]
    assert out[0].conversion_id == conversion("o1", 0).event_id
    assert out[0].value_micros == 42_000_000 and out[0].currency == "USD"


def test_bot_clicks_never_attribute() -> None:
    _, out = run(click("b", T, "m1", bot=True), conversion("o", T + HOUR))
    assert out == []


def test_a_touch_after_the_conversion_does_not_count() -> None:
    _, out = run(click("late", T + HOUR, "m9"), conversion("o", T))
    assert out == []


def test_redelivered_conversion_repeats_the_same_decision_even_after_new_touches() -> None:
    conv = conversion("o", T + HOUR)
    _, out = run(click("c1", T, "m1"), conv, click("c2", T + 30 * 60_000, "m2"), conv)
    assert len(out) == 2 and out[0] == out[1]
    assert out[0].message_id == "m1"
    assert out[0].event_id == event_id_for("ConversionAttributed", conv.event_id)


def test_redelivered_unattributed_conversion_stays_unattributed() -> None:
    conv = conversion("o", T)
    _, out = run(conv, click("c1", T - HOUR, "m1"), conv)
    assert out == []


def test_repeated_touch_is_kept_once() -> None:
    state, _ = run(click("c1", T, "m1"), click("c1", T, "m1"))
    assert len(state.touches) == 1


def test_only_our_status_move_to_delivered_is_a_delivery_touch() -> None:
    # The vendor's own callback has no message of ours: it is not a touch (the fold's move that follows it
    # is). Queued/sent moves are not deliveries; failed is not; read right after sent is (it implies
    # delivery), read after delivered adds no second touch.
    vendor_callback = MessageDelivered(**_env("MessageDelivered", "v", T, None), vendor="twilio",
                                       vendor_message_id="SMv")
    state, out = run(vendor_callback, delivered("q", T, "m1", "queued", ""),
                     delivered("f", T, "m2", "failed", "sent"), conversion("o1", T + HOUR))
    assert (state.touches, out) == ((), [])
    state, _ = run(delivered("r", T, "m3", "read", "sent"), delivered("r2", T + 1, "m4", "read", "delivered"))
    assert [t.message_id for t in state.touches] == ["m3"]
