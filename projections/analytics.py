"""The analysts' ready queries: the same SQL as ``docs/analytics.md`` (a test keeps them identical).

Every query reads the exact rollups of migrations/002 and 004 (views over FINAL fact tables), takes the
parameters ``company`` ('' for every company), ``since`` and ``until`` (dates, inclusive), and returns
rows with the column names given here. ``smsfold stats`` prints them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from clickhouse_driver import Client

__all__ = ["QUERIES", "AnalyticsQuery", "QueryResult", "run_query"]


@dataclass(frozen=True, slots=True)
class AnalyticsQuery:
    """A named query, what it answers, and its SQL."""

    name: str
    title: str
    sql: str


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


_FLOW_STATS = """\
SELECT
    company_id,
    flow_id,
    campaign_id,
    sum(requested) AS requested,
    sum(skipped) AS skipped,
    sum(sent) AS sent,
    sum(delivered) AS delivered,
    sum(failed) AS failed,
    round(if(sent = 0, 0, delivered / sent), 4) AS delivery_rate,
    sum(human_clicks) AS human_clicks,
    sum(unique_clickers) AS unique_clickers,
    sum(bot_clicks) AS bot_clicks,
    sum(conversions) AS conversions,
    sum(revenue_micros) / 1000000 AS revenue,
    sum(segments) AS segments,
    sum(cost_micros) / 1000000 AS cost
FROM message_stats
WHERE (%(company)s = '' OR company_id = %(company)s)
  AND day BETWEEN %(since)s AND %(until)s
GROUP BY company_id, flow_id, campaign_id
ORDER BY company_id, flow_id, campaign_id"""

_DELIVERABILITY = """\
SELECT
    company_id,
    category AS failure_category,
    sum(events) AS failed,
    round(sum(events) / any(sent), 4) AS share_of_sent
FROM message_outcomes
ANY LEFT JOIN
(
    SELECT company_id, sum(sent) AS sent
    FROM message_stats
    WHERE day BETWEEN %(since)s AND %(until)s
    GROUP BY company_id
) AS total USING (company_id)
WHERE outcome = 'failed'
  AND (%(company)s = '' OR company_id = %(company)s)
  AND day BETWEEN %(since)s AND %(until)s
GROUP BY company_id, failure_category
ORDER BY company_id, failed DESC, failure_category"""

_INBOUND_LATENCY = """\
SELECT
    company_id,
    message_type,
    minute,
    messages,
    p50_ms,
    p95_ms,
    p99_ms,
    max_ms
FROM inbound_latency_minute
WHERE (%(company)s = '' OR company_id = %(company)s)
  AND toDate(minute) BETWEEN %(since)s AND %(until)s
ORDER BY company_id, message_type, minute"""

_REVENUE_PER_FLOW = """\
SELECT
    company_id,
    flow_id,
    campaign_id,
    count() AS conversions,
    countIf(touch = 'click') AS by_click,
    countIf(touch = 'delivery') AS by_delivery,
    sum(value_micros) / 1000000 AS revenue,
    any(currency) AS currency
FROM attributed_conversions FINAL
WHERE (%(company)s = '' OR company_id = %(company)s)
  AND event_date BETWEEN %(since)s AND %(until)s
GROUP BY company_id, flow_id, campaign_id
ORDER BY revenue DESC, company_id, flow_id, campaign_id"""

_USAGE = """\
SELECT
    company_id,
    day,
    messages_sent,
    segments_sent,
    cost_micros / 1000000 AS cost,
    inbound_messages
FROM usage_daily
WHERE (%(company)s = '' OR company_id = %(company)s)
  AND day BETWEEN %(since)s AND %(until)s
ORDER BY company_id, day"""

QUERIES: dict[str, AnalyticsQuery] = {
    q.name: q
    for q in (
        AnalyticsQuery("flow-stats", "Flow and campaign SMS stats", _FLOW_STATS),
        AnalyticsQuery("deliverability", "Failed messages by failure category", _DELIVERABILITY),
        AnalyticsQuery("inbound-latency", "Inbound latency per message type per minute", _INBOUND_LATENCY),
        AnalyticsQuery("revenue", "Attributed revenue per flow and campaign", _REVENUE_PER_FLOW),
        AnalyticsQuery("usage", "Usage for billing per company and day", _USAGE),
    )
}


# The Date type's range: no bound given means every day.
_EARLIEST, _LATEST = dt.date(1970, 1, 2), dt.date(2105, 12, 31)


def run_query(
    client: Client, name: str, company: str = "", since: dt.date | None = None, until: dt.date | None = None
) -> QueryResult:
    """Run the query called ``name`` (a key of :data:`QUERIES`)."""
    query = QUERIES[name]
    params = {"company": company, "since": since or _EARLIEST, "until": until or _LATEST}
    rows, types = client.execute(query.sql, params, with_column_types=True)
    return QueryResult([column for column, _ in types], list(rows))
