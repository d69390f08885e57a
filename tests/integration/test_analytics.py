"""The analysts' queries return the expected numbers on a known data set, duplicates included."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from projections.analytics import QUERIES, run_query
from projections.clickhouse import ClickHouseSink, clickhouse_client
from projections.migrate import MIGRATIONS_DIR, apply_migrations
from streams.events import (
    ConversionAttributed,
    DeliveryStatusChanged,
    Event,
    InboundReceived,
    LinkClicked,
    MessageDelivered,
    MessageFailed,
    MessageSent,
    SendRequested,
    SendSkipped,
)
from tests.conftest import wait_until

pytestmark = pytest.mark.stack

DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"
T = 1_763_769_600_000  # 2025-11-22 00:00 UTC
DAY = dt.date(2025, 11, 22)


def _env(n: int, at: int, company: str = "acme", phone: str = "+14155550100", flow: str | None = "welcome",
         campaign: str | None = None, message: str | None = "m1") -> dict[str, Any]:
    return {"event_id": f"e{n}", "company_id": company, "profile_key": f"{company}:{phone}",
            "occurred_at": at, "received_at": at, "message_id": message, "flow_id": flow,
            "campaign_id": campaign}


def _known_events() -> list[Event]:
    """acme's welcome flow sends m1 (delivered, 2 segments) and m2 (failed: landline); m3 is skipped.
    Two human clicks by one profile and one by another, a bot click, one attributed order of $42.50.
    globex's campaign sends one message. Inbound: three subscribes (latencies 100, 200, 1000 ms)."""
    sent = {"vendor": "twilio", "segments": 2, "cost_micros": 15800}
    return [
        SendRequested(**_env(1, T), kind="marketing", body="hi"),
        MessageSent(**_env(2, T + 1000), vendor_message_id="SM1", **sent),
        # The vendor's callbacks carry only its own message id; the profile decider's status moves, ours.
        DeliveryStatusChanged(**_env(30, T + 1000), vendor="twilio", vendor_message_id="SM1",
                              status="queued"),
        MessageDelivered(**_env(3, T + 4000, flow=None, message=None), vendor="twilio",
                         vendor_message_id="SM1"),
        DeliveryStatusChanged(**_env(31, T + 4000), vendor="twilio", vendor_message_id="SM1",
                              status="delivered", previous_status="queued"),
        # Read after delivered: not a second delivery.
        DeliveryStatusChanged(**_env(32, T + 9000), vendor="twilio", vendor_message_id="SM1",
                              status="read", previous_status="delivered"),
        SendRequested(**_env(4, T, message="m2", phone="+14155550101"), kind="marketing", body="hi"),
        MessageSent(**_env(5, T + 1000, message="m2", phone="+14155550101"), vendor_message_id="SM2",
                    vendor="twilio", segments=1, cost_micros=7900),
        MessageFailed(**_env(6, T + 2000, flow=None, message=None, phone="+14155550101"), vendor="twilio",
                      vendor_message_id="SM2", error_code="30006", failure_category="landline"),
        DeliveryStatusChanged(**_env(33, T + 2000, message="m2", phone="+14155550101"), vendor="twilio",
                              vendor_message_id="SM2", status="failed", previous_status="queued",
                              error_code="30006", failure_category="landline"),
        SendRequested(**_env(7, T, message="m3", phone="+14155550102"), kind="marketing", body="hi"),
        SendSkipped(**_env(8, T + 10, message="m3", phone="+14155550102"), reason="quiet_hours"),
        LinkClicked(**_env(9, T + 60_000), code="c1", is_bot=False, agent_class="browser"),
        LinkClicked(**_env(10, T + 90_000), code="c1", is_bot=False, agent_class="browser"),
        LinkClicked(**_env(11, T + 5000), code="c1", is_bot=True, agent_class="link_preview"),
        LinkClicked(**_env(12, T + 70_000, phone="+14155550109"), code="c1", is_bot=False,
                    agent_class="browser"),
        ConversionAttributed(**_env(13, T + 3_600_000), conversion_id="o1", touch="click",
                             window_ms=432_000_000, value_micros=42_500_000, currency="USD"),
        MessageSent(**_env(14, T + 5000, company="globex", flow=None, campaign="bfcm", message="g1"),
                    vendor="twilio", vendor_message_id="SM9", segments=1, cost_micros=7900),
        *[InboundReceived(**{**_env(20 + i, T + 120_000 + i, flow=None, message=None),
                             "received_at": T + 120_000 + i}, vendor="twilio", vendor_message_id=f"SMi{i}",
                          to_number="+18005550100", body="JOIN", message_type="subscribe", keyword="JOIN")
          for i in range(3)],
    ]


def _with_database(settings: Settings, database: str) -> Settings:
    return settings.model_copy(update={"clickhouse": settings.clickhouse.model_copy(
        update={"database": database})})


def _load_known(settings: Settings, migrations: Path = MIGRATIONS_DIR) -> None:
    """A fresh database with ``migrations`` applied, holding the known events, each written twice."""
    admin = clickhouse_client(settings.clickhouse, database="default")
    admin.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse.database}")
    apply_migrations(settings.clickhouse, migrations)
    sink = ClickHouseSink(settings.clickhouse)
    events = [e.model_dump() for e in _known_events()]
    latencies = iter((100, 200, 1000))
    for e in events:
        if e["event_type"] == "InboundReceived":
            # projected_at - received_at is the latency: write each inbound alone at a chosen time.
            cols = sink.columns([e], e["received_at"] + next(latencies))
            client = clickhouse_client(settings.clickhouse)
            client.execute("INSERT INTO events (event_id, event_type, company_id, profile_key, occurred_at, "
                           "received_at, projected_at, event_date, causation_id, message_id, flow_id, "
                           "campaign_id, payload) VALUES", cols, columnar=True)
    sink.write([e for e in events if e["event_type"] != "InboundReceived"])
    # Every event delivered a second time: the numbers below must not move.
    sink.write(events)
    sink.close()


@pytest.fixture(scope="module")
def known(stack_settings: Settings) -> Settings:
    settings = _with_database(stack_settings, "analytics_known")
    _load_known(settings)
    return settings


def _run(settings: Settings, name: str, company: str = "") -> list[dict[str, Any]]:
    result = run_query(clickhouse_client(settings.clickhouse), name, company=company)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def test_flow_stats(known: Settings) -> None:
    acme, globex = _run(known, "flow-stats")
    counted = ("flow_id", "requested", "skipped", "sent", "delivered", "failed", "human_clicks",
               "unique_clickers", "bot_clicks", "conversions", "segments")
    assert {k: acme[k] for k in counted} == {
        "flow_id": "welcome", "requested": 3, "skipped": 1, "sent": 2, "delivered": 1, "failed": 1,
        "human_clicks": 3, "unique_clickers": 2, "bot_clicks": 1, "conversions": 1, "segments": 3}
    assert (acme["delivery_rate"], acme["revenue"], acme["cost"]) == (0.5, 42.5, 0.0237)
    assert (globex["campaign_id"], globex["sent"], globex["delivered"]) == ("bfcm", 1, 0)
    assert _run(known, "flow-stats", company="globex") == [globex]


def test_deliverability(known: Settings) -> None:
    assert [(r["company_id"], r["failure_category"], r["failed"], r["share_of_sent"])
            for r in _run(known, "deliverability")] == [("acme", "landline", 1, 0.5)]


def test_inbound_latency_per_type_per_minute(known: Settings) -> None:
    (row,) = _run(known, "inbound-latency")
    assert (row["message_type"], row["minute"].timestamp(), row["messages"]) == (
        "subscribe", dt.datetime(2025, 11, 22, 0, 2, tzinfo=dt.UTC).timestamp(), 3)
    assert (row["p50_ms"], row["max_ms"]) == (200, 1000)
    assert 200 <= row["p95_ms"] <= 1000 and row["p95_ms"] <= row["p99_ms"] <= 1000


def test_revenue_per_flow(known: Settings) -> None:
    assert [(r["flow_id"], r["conversions"], r["by_click"], r["revenue"], r["currency"])
            for r in _run(known, "revenue")] == [("welcome", 1, 1, 42.5, "USD")]


def test_usage(known: Settings) -> None:
    columns = ("company_id", "day", "messages_sent", "segments_sent", "cost", "inbound_messages")
    assert [tuple(r[c] for c in columns) for r in _run(known, "usage")] == [
        ("acme", DAY, 2, 3, 0.0237, 3), ("globex", DAY, 1, 1, 0.0079, 0)]


def test_delivery_latency_joins_sent_to_our_delivered_move(known: Settings) -> None:
    rows = clickhouse_client(known.clickhouse).execute(
        "SELECT company_id, message_id, flow_id, latency_ms FROM delivery_latency ORDER BY message_id")
    assert rows == [("acme", "m1", "welcome", 3000)]


def test_a_database_projected_before_migration_004_answers_like_a_fresh_one(
    known: Settings, tmp_path: Path
) -> None:
    # Projected under 001-003 (delivered/failed counted from the vendor's callbacks), then upgraded.
    old = tmp_path / "migrations"
    old.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("00[1-3]_*.sql")):
        (old / path.name).write_text(path.read_text())
    upgraded = _with_database(known, "analytics_upgraded")
    _load_known(upgraded, old)
    assert _run(upgraded, "flow-stats") != _run(known, "flow-stats")  # deliveries under an empty flow
    assert apply_migrations(upgraded.clickhouse) == ["004_delivery_outcomes.sql"]
    client = clickhouse_client(upgraded.clickhouse)
    # The vendor rows are deleted by a mutation that runs in the background (until then flow-stats shows
    # their empty flow with zeros).
    wait_until(lambda: client.execute("SELECT count() FROM message_facts WHERE event_type IN "
                                      "('MessageDelivered', 'MessageFailed')") == [(0,)], 30,
               "the vendor callbacks' rows deleted from message_facts")
    for name in QUERIES:
        assert _run(upgraded, name) == _run(known, name), name
    facts = "SELECT event_id, delivery_outcome FROM message_facts FINAL ORDER BY event_id"
    assert client.execute(facts) == clickhouse_client(known.clickhouse).execute(facts)


def test_docs_hold_every_query_verbatim() -> None:
    blocks = re.findall(r"```sql\n(.*?)\n```", DOC.read_text(), flags=re.DOTALL)
    assert sorted(blocks) == sorted(q.sql for q in QUERIES.values())


def _grafana_sql(sql: str) -> str:
    """A panel's SQL with the datasource's macros and the dashboard variable filled in."""
    sql = re.sub(r"\$__timeFilter\(((?:[^()]|\([^()]*(?:\([^()]*\))?[^()]*\))*)\)",
                 r"(\1 >= toDateTime(0) AND \1 <= toDateTime(4000000000))", sql)
    return (sql.replace("$__fromTime", "toDateTime(0)").replace("$__toTime", "toDateTime(4000000000)")
            .replace("$company", "All"))


def test_grafana_panels_run_on_the_schema(known: Settings) -> None:
    dashboard = json.loads((DOC.parents[1] / "grafana" / "dashboards" / "smsfold.json").read_text())
    client = clickhouse_client(known.clickhouse)
    results = {panel["title"]: client.execute(_grafana_sql(panel["targets"][0]["rawSql"]))
               for panel in dashboard["panels"]}
    assert len(results) == 6
    assert results["Deliverability by failure category"] == [("acme", "landline", 1)]
    assert sum(n for _, _, n in results["Throughput: events per minute by type"]) == len(_known_events())
