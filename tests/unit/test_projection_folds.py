"""Pure parts of the projections: the reference fold ignores order and duplicates; rows are right."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import ClickHouseSettings
from projections.clickhouse import ClickHouseSink
from projections.fold import fold_message_stats, fold_redis
from smsfold.workload import generate_events
from streams.statuses import delivery_outcome

EVENTS = [e.model_dump() for e in generate_events(6, messages_per_profile=6, duplicate_share=0.0, seed=3)]
ENVELOPE = {"event_type", "event_id", "company_id", "profile_key", "occurred_at", "received_at",
            "causation_id", "message_id", "flow_id", "campaign_id"}
NOW = 0  # every link of the workload is live at epoch 0


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False), st.lists(st.integers(0, len(EVENTS) - 1), max_size=30))
def test_redis_fold_ignores_delivery_order_and_duplicates(rnd: object, repeats: list[int]) -> None:
    # Any arrival order, with any events delivered again: the same read model (that is what the guards buy).
    shuffled = EVENTS + [EVENTS[i] for i in repeats]
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert fold_redis(shuffled, 4, NOW) == fold_redis(EVENTS, 4, NOW)
    assert fold_message_stats(shuffled) == fold_message_stats(EVENTS)


def test_timeline_keeps_the_newest_n_newest_first() -> None:
    folded = fold_redis(EVENTS, 3, NOW)
    for profile, entries in folded.timeline.items():
        mine = sorted((e for e in EVENTS if e["profile_key"] == profile),
                      key=lambda e: (e["occurred_at"], e["event_id"]), reverse=True)
        assert [eid for eid, _ in entries] == [e["event_id"] for e in mine[:3]]
        assert all("profile_key" not in json.loads(entry) for _, entry in entries)


def test_links_expire_with_their_expiry() -> None:
    links = [e for e in EVENTS if e["event_type"] == "LinkCreated"]
    assert fold_redis(EVENTS, 3, NOW).links.keys() == {e["code"] for e in links}
    assert fold_redis(EVENTS, 3, max(e["expires_at"] for e in links)).links == {}


def test_consent_keeps_the_highest_version() -> None:
    changes = [e for e in EVENTS if e["event_type"] == "ConsentChanged"]
    assert changes
    folded = fold_redis(list(reversed(EVENTS)), 3, NOW)
    for profile, state in folded.consent.items():
        top = max((c for c in changes if c["profile_key"] == profile), key=lambda c: c["version"])
        assert (state["status"], state["version"]) == (top["status"], str(top["version"]))


def test_clickhouse_columns_carry_the_envelope_and_a_payload_without_it() -> None:
    sent = next(e for e in EVENTS if e["event_type"] == "MessageSent")
    cols = ClickHouseSink(ClickHouseSettings()).columns([sent], projected_at=123)
    row = [c[0] for c in cols]
    assert row[:7] == [sent["event_id"], "MessageSent", sent["company_id"], sent["profile_key"],
                       sent["occurred_at"], sent["received_at"], 123]
    assert row[7] == dt.datetime.fromtimestamp(sent["occurred_at"] / 1000, tz=dt.UTC).date()
    assert row[8] == ""  # no causation id: empty string, ClickHouse columns are not Nullable
    payload = {k: v for k, v in sent.items() if k not in ENVELOPE}
    assert json.loads(row[12]) == payload and payload["segments"] == sent["segments"]
    assert not ENVELOPE & json.loads(row[12]).keys()


@pytest.mark.parametrize(("status", "previous", "outcome"), [
    ("queued", "", ""), ("sent", "queued", ""), ("delivered", "sent", "delivered"),
    ("read", "sent", "delivered"), ("read", "delivered", ""), ("failed", "queued", "failed"),
    ("failed", "delivered", "failed"), ("delivery_unconfirmed", "sent", ""),
])
def test_delivery_outcome_counts_the_first_delivery_and_every_failure(
    status: str, previous: str, outcome: str
) -> None:
    assert delivery_outcome(status, previous) == outcome
