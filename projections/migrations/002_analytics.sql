-- Analytics read models, folded from `events` (001) inside ClickHouse.
--
-- How every table stays exact under duplicates, redelivery after a crash and replays:
--
-- * The projector inserts each event into `events` only. The materialized views below copy the rows of
--   each insert block into per-purpose FACT tables. A materialized view sees raw inserts, not the
--   deduplicated table, so a duplicate event reaches the fact table twice as well. That is harmless only
--   because every fact table is itself a ReplacingMergeTree whose sorting key ends in event_id and whose
--   partition key is derived from the event's own time: both copies have the same key in the same
--   partition and collapse to one row.
-- * Until a merge happens both copies can be on disk, so no query counts raw rows: every rollup is a
--   plain VIEW that reads its fact table with FINAL (merge-on-read of equal keys), never a Summing- or
--   AggregatingMergeTree fed by a materialized view (sum/count states would add a duplicate twice).
-- * Unique clickers use uniqExact, which is exact by definition.
-- * Latency rows keep the FIRST projection of an event (version = 2^64-1 - projected_at), so a replay or
--   a retried batch never changes a latency figure.
--
-- Valid on ClickHouse 18.16 and current releases: no DateTime64, Map, JSONExtract*, TTL or
-- toStartOfInterval; payload fields are read with visitParamExtract*.

-- Message lifecycle facts: one row per SendRequested, SendSkipped, MessageSent, MessageDelivered,
-- MessageFailed, LinkClicked and ConversionAttributed event.
CREATE TABLE IF NOT EXISTS {db}.message_facts
(
    company_id String,
    event_date Date,
    flow_id String,
    campaign_id String,
    message_id String,
    event_type String,
    event_id String,
    profile_key String,
    occurred_at UInt64,
    reason String,
    failure_category String,
    is_bot UInt8,
    segments UInt64,
    cost_micros Int64,
    value_micros Int64,
    currency String,
    projected_at UInt64
)
ENGINE = ReplacingMergeTree(projected_at)
PARTITION BY toYYYYMM(event_date)
ORDER BY (company_id, event_date, flow_id, campaign_id, message_id, event_type, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.message_facts_mv TO {db}.message_facts AS
SELECT
    company_id,
    event_date,
    flow_id,
    campaign_id,
    message_id,
    event_type,
    event_id,
    profile_key,
    occurred_at,
    visitParamExtractString(payload, 'reason') AS reason,
    visitParamExtractString(payload, 'failure_category') AS failure_category,
    toUInt8(visitParamExtractRaw(payload, 'is_bot') = 'true') AS is_bot,
    visitParamExtractUInt(payload, 'segments') AS segments,
    visitParamExtractInt(payload, 'cost_micros') AS cost_micros,
    visitParamExtractInt(payload, 'value_micros') AS value_micros,
    visitParamExtractString(payload, 'currency') AS currency,
    projected_at
FROM {db}.events
WHERE event_type IN ('SendRequested', 'SendSkipped', 'MessageSent', 'MessageDelivered', 'MessageFailed',
                     'LinkClicked', 'ConversionAttributed');

-- Message stats per company, flow/campaign, message and day.
CREATE VIEW IF NOT EXISTS {db}.message_stats AS
SELECT
    company_id,
    flow_id,
    campaign_id,
    message_id,
    event_date AS day,
    countIf(event_type = 'SendRequested') AS requested,
    countIf(event_type = 'SendSkipped') AS skipped,
    countIf(event_type = 'MessageSent') AS sent,
    countIf(event_type = 'MessageDelivered') AS delivered,
    countIf(event_type = 'MessageFailed') AS failed,
    countIf(event_type = 'LinkClicked' AND is_bot = 0) AS human_clicks,
    uniqExactIf(profile_key, event_type = 'LinkClicked' AND is_bot = 0) AS unique_clickers,
    countIf(event_type = 'LinkClicked' AND is_bot = 1) AS bot_clicks,
    countIf(event_type = 'ConversionAttributed') AS conversions,
    sumIf(value_micros, event_type = 'ConversionAttributed') AS revenue_micros,
    sumIf(segments, event_type = 'MessageSent') AS segments,
    sumIf(cost_micros, event_type = 'MessageSent') AS cost_micros
FROM {db}.message_facts FINAL
GROUP BY company_id, flow_id, campaign_id, message_id, day;

-- Skips by reason and failures by category, per company, flow/campaign, message and day.
CREATE VIEW IF NOT EXISTS {db}.message_outcomes AS
SELECT
    company_id,
    flow_id,
    campaign_id,
    message_id,
    event_date AS day,
    event_type,
    if(event_type = 'SendSkipped', reason, failure_category) AS category,
    count() AS events
FROM {db}.message_facts FINAL
WHERE event_type IN ('SendSkipped', 'MessageFailed')
GROUP BY company_id, flow_id, campaign_id, message_id, day, event_type, category;

-- Inbound latency, one row per InboundReceived: gateway receipt -> first projection into ClickHouse.
CREATE TABLE IF NOT EXISTS {db}.inbound_latency
(
    company_id String,
    event_date Date,
    message_type String,
    event_id String,
    occurred_at UInt64,
    received_at UInt64,
    projected_at UInt64,
    latency_ms UInt64,
    first_seen UInt64
)
ENGINE = ReplacingMergeTree(first_seen)
PARTITION BY toYYYYMM(event_date)
ORDER BY (company_id, event_date, message_type, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.inbound_latency_mv TO {db}.inbound_latency AS
SELECT
    company_id,
    event_date,
    visitParamExtractString(payload, 'message_type') AS message_type,
    event_id,
    occurred_at,
    received_at,
    projected_at,
    toUInt64(if(projected_at > received_at, projected_at - received_at, 0)) AS latency_ms,
    toUInt64(18446744073709551615 - projected_at) AS first_seen
FROM {db}.events
WHERE event_type = 'InboundReceived';

-- Inbound latency per company, message type and minute of receipt.
CREATE VIEW IF NOT EXISTS {db}.inbound_latency_minute AS
SELECT
    company_id,
    message_type,
    toStartOfMinute(toDateTime(intDiv(received_at, 1000))) AS minute,
    count() AS messages,
    quantileExact(0.5)(latency_ms) AS p50_ms,
    quantileExact(0.95)(latency_ms) AS p95_ms,
    quantileExact(0.99)(latency_ms) AS p99_ms,
    max(latency_ms) AS max_ms
FROM {db}.inbound_latency FINAL
GROUP BY company_id, message_type, minute;

-- Delivery latency per message: vendor acceptance (MessageSent) -> carrier delivery (MessageDelivered),
-- both by event time. A message redelivered or replayed still has one sent and one delivered fact.
CREATE VIEW IF NOT EXISTS {db}.delivery_latency AS
SELECT
    company_id,
    message_id,
    flow_id,
    campaign_id,
    sent_at,
    delivered_at,
    if(delivered_at > sent_at, delivered_at - sent_at, 0) AS latency_ms
FROM
(
    SELECT company_id, message_id, any(flow_id) AS flow_id, any(campaign_id) AS campaign_id,
           min(occurred_at) AS sent_at
    FROM {db}.message_facts FINAL
    WHERE event_type = 'MessageSent'
    GROUP BY company_id, message_id
)
ANY INNER JOIN
(
    SELECT company_id, message_id, min(occurred_at) AS delivered_at
    FROM {db}.message_facts FINAL
    WHERE event_type = 'MessageDelivered'
    GROUP BY company_id, message_id
) USING (company_id, message_id);

-- Consent history: every ConsentChanged, newest version last.
CREATE TABLE IF NOT EXISTS {db}.consent_history
(
    company_id String,
    profile_key String,
    version UInt64,
    event_id String,
    event_date Date,
    occurred_at UInt64,
    status String,
    previous_status String,
    source String,
    method String,
    projected_at UInt64
)
ENGINE = ReplacingMergeTree(projected_at)
PARTITION BY toYYYYMM(event_date)
ORDER BY (company_id, profile_key, version, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.consent_history_mv TO {db}.consent_history AS
SELECT
    company_id,
    profile_key,
    visitParamExtractUInt(payload, 'version') AS version,
    event_id,
    event_date,
    occurred_at,
    visitParamExtractString(payload, 'status') AS status,
    visitParamExtractString(payload, 'previous_status') AS previous_status,
    visitParamExtractString(payload, 'source') AS source,
    visitParamExtractString(payload, 'method') AS method,
    projected_at
FROM {db}.events
WHERE event_type = 'ConsentChanged';

-- Attributed conversions: one row per ConversionAttributed.
CREATE TABLE IF NOT EXISTS {db}.attributed_conversions
(
    company_id String,
    event_date Date,
    flow_id String,
    campaign_id String,
    message_id String,
    event_id String,
    profile_key String,
    conversion_id String,
    touch String,
    window_ms UInt64,
    occurred_at UInt64,
    value_micros Int64,
    currency String,
    projected_at UInt64
)
ENGINE = ReplacingMergeTree(projected_at)
PARTITION BY toYYYYMM(event_date)
ORDER BY (company_id, event_date, flow_id, campaign_id, message_id, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.attributed_conversions_mv TO {db}.attributed_conversions AS
SELECT
    company_id,
    event_date,
    flow_id,
    campaign_id,
    message_id,
    event_id,
    profile_key,
    visitParamExtractString(payload, 'conversion_id') AS conversion_id,
    visitParamExtractString(payload, 'touch') AS touch,
    visitParamExtractUInt(payload, 'window_ms') AS window_ms,
    occurred_at,
    visitParamExtractInt(payload, 'value_micros') AS value_micros,
    visitParamExtractString(payload, 'currency') AS currency,
    projected_at
FROM {db}.events
WHERE event_type = 'ConversionAttributed';

-- Usage for billing per company and day: what was sent (segments, vendor cost) and received.
CREATE VIEW IF NOT EXISTS {db}.usage_daily AS
SELECT
    company_id,
    day,
    sum(messages_sent) AS messages_sent,
    sum(segments_sent) AS segments_sent,
    sum(cost_micros) AS cost_micros,
    sum(inbound_messages) AS inbound_messages
FROM
(
    SELECT company_id, event_date AS day, count() AS messages_sent, sum(segments) AS segments_sent,
           sum(cost_micros) AS cost_micros, toUInt64(0) AS inbound_messages
    FROM {db}.message_facts FINAL
    WHERE event_type = 'MessageSent'
    GROUP BY company_id, day
    UNION ALL
    SELECT company_id, event_date AS day, toUInt64(0) AS messages_sent, toUInt64(0) AS segments_sent,
           toInt64(0) AS cost_micros, count() AS inbound_messages
    FROM {db}.inbound_latency FINAL
    GROUP BY company_id, day
)
GROUP BY company_id, day;

-- Timeline: every event of a profile, ordered for newest-first paging by (occurred_at, event_id).
CREATE TABLE IF NOT EXISTS {db}.timeline
(
    company_id String,
    profile_key String,
    occurred_at UInt64,
    event_id String,
    event_type String,
    event_date Date,
    message_id String,
    flow_id String,
    campaign_id String,
    payload String,
    projected_at UInt64
)
ENGINE = ReplacingMergeTree(projected_at)
PARTITION BY toYYYYMM(event_date)
ORDER BY (company_id, profile_key, occurred_at, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.timeline_mv TO {db}.timeline AS
SELECT
    company_id,
    profile_key,
    occurred_at,
    event_id,
    event_type,
    event_date,
    message_id,
    flow_id,
    campaign_id,
    payload,
    projected_at
FROM {db}.events;
