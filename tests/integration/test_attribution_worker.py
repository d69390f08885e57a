"""The worker's attribution decider, end to end: touches and a conversion in, ConversionAttributed out."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from config import Settings
from projections.clickhouse import clickhouse_client
from streams.events import ConversionRecorded, DeliveryStatusChanged, LinkClicked, event_id_for
from tests.conftest import wait_until
from tests.integration.projection_helpers import produce

pytestmark = pytest.mark.stack


def test_a_conversion_after_a_human_click_is_attributed_once(stack_settings: Settings, pipeline: str) -> None:
    # A fresh profile: delivered m1, a bot click, a human click on m1, then an order 2 hours later.
    phone = f"+1415666{random.randrange(10000):04d}"
    pk, now = f"acme:{phone}", int(time.time() * 1000) - 3 * 3_600_000
    tag = f"{phone}-{now}"

    def env(kind: str, at: int, message: str | None = "m1") -> dict[str, Any]:
        return {"event_id": event_id_for(kind, tag, str(at)), "company_id": "acme", "profile_key": pk,
                "occurred_at": at, "received_at": at, "message_id": message, "flow_id": "welcome"}

    order = ConversionRecorded(**env("ConversionRecorded", now + 7_200_000, None), metric="Placed Order",
                               value_micros=42_000_000, currency="USD")
    produce(stack_settings, [
        DeliveryStatusChanged(**env("DeliveryStatusChanged", now), vendor="twilio", vendor_message_id="SMx",
                              status="delivered", previous_status="sent"),
        LinkClicked(**env("LinkClicked", now + 1000), code="c", is_bot=True, agent_class="link_preview"),
        LinkClicked(**env("LinkClicked", now + 60_000), code="c", is_bot=False, agent_class="browser"),
        order,
        order,  # redelivered: still one attribution
    ])
    ch = clickhouse_client(stack_settings.clickhouse)
    rows = wait_until(lambda: ch.execute(
        "SELECT event_id, message_id, flow_id, touch, value_micros FROM attributed_conversions FINAL "
        "WHERE profile_key = %(pk)s", {"pk": pk}), 60, "the attribution in ClickHouse")
    attributed_id = event_id_for("ConversionAttributed", order.event_id)
    assert rows == [(attributed_id, "m1", "welcome", "click", 42_000_000)]
