-- Delivered and failed counted from our own DeliveryStatusChanged, not from the vendor's callbacks.
--
-- 002 counted MessageDelivered and MessageFailed. In the live pipeline those are the vendor's status
-- callbacks as the normalizer reads them: they carry the vendor's message id only, not ours, nor the flow
-- or campaign, so message_stats put every delivery under an empty flow and delivery_latency (joined by
-- our message id) stayed empty. The profile decider joins each callback to the message it reports on and
-- emits DeliveryStatusChanged with our message, flow and campaign ids, once per status reached (its event
-- id derives from the message and the status), only when the status moves forward.
--
-- message_facts now holds one row per DeliveryStatusChanged that is an outcome, in the new column
-- delivery_outcome: 'delivered' the first time a message reaches delivered (or read, which implies it),
-- 'failed' when it fails (the sender's own refusals included: they pass through the same fold). Queued
-- and sent moves are not facts. A multi-part message delivered and then failed counts once as each.
-- (streams/statuses.py `delivery_outcome` is the same rule in Python, used by the verifier.)
-- The vendor's MessageDelivered/MessageFailed stay in `events` and the timeline, no longer here.
--
-- Exactness is unchanged: every DeliveryStatusChanged row has its own event id at the end of the key, so
-- a duplicate collapses as before.
--
-- Order of the steps: the new materialized view starts before the old one is dropped, so no insert into
-- `events` is missed in between (one seen by both collapses). Facts for DeliveryStatusChanged events
-- projected before this migration come from inserting those rows of `events` into `events` again: the new
-- view sees the insert and writes their facts (the copies in `events` and the timeline collapse, same key
-- and content). The old vendor rows are then deleted from message_facts (a mutation that runs in the
-- background; the views no longer count them anyway).

ALTER TABLE {db}.message_facts ADD COLUMN delivery_outcome String;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.message_facts_v4_mv TO {db}.message_facts AS
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
    projected_at,
    if(event_type != 'DeliveryStatusChanged', '', multiIf(
        visitParamExtractString(payload, 'status') = 'failed', 'failed',
        visitParamExtractString(payload, 'status') IN ('delivered', 'read')
            AND visitParamExtractString(payload, 'previous_status') NOT IN ('delivered', 'read'), 'delivered',
        '')) AS delivery_outcome
FROM {db}.events
WHERE event_type IN ('SendRequested', 'SendSkipped', 'MessageSent', 'LinkClicked', 'ConversionAttributed')
   OR delivery_outcome != '';

DROP TABLE IF EXISTS {db}.message_facts_mv;

INSERT INTO {db}.events SELECT * FROM {db}.events FINAL WHERE event_type = 'DeliveryStatusChanged';

ALTER TABLE {db}.message_facts DELETE WHERE event_type IN ('MessageDelivered', 'MessageFailed');

-- The rollups, as in 002 but counting delivery outcomes.
DROP TABLE IF EXISTS {db}.message_stats;

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
    countIf(delivery_outcome = 'delivered') AS delivered,
    countIf(delivery_outcome = 'failed') AS failed,
    countIf(event_type = 'LinkClicked' AND is_bot = 0) AS human_clicks,
    uniqExactIf(profile_key, event_type = 'LinkClicked' AND is_bot = 0) AS unique_clickers,
    countIf(event_type = 'LinkClicked' AND is_bot = 1) AS bot_clicks,
    countIf(event_type = 'ConversionAttributed') AS conversions,
    sumIf(value_micros, event_type = 'ConversionAttributed') AS revenue_micros,
    sumIf(segments, event_type = 'MessageSent') AS segments,
    sumIf(cost_micros, event_type = 'MessageSent') AS cost_micros
FROM {db}.message_facts FINAL
GROUP BY company_id, flow_id, campaign_id, message_id, day;

-- Skips by reason (outcome 'skipped') and failures by category (outcome 'failed').
DROP TABLE IF EXISTS {db}.message_outcomes;

CREATE VIEW IF NOT EXISTS {db}.message_outcomes AS
SELECT
    company_id,
    flow_id,
    campaign_id,
    message_id,
    event_date AS day,
    if(event_type = 'SendSkipped', 'skipped', 'failed') AS outcome,
    if(event_type = 'SendSkipped', reason, failure_category) AS category,
    count() AS events
FROM {db}.message_facts FINAL
WHERE event_type = 'SendSkipped' OR delivery_outcome = 'failed'
GROUP BY company_id, flow_id, campaign_id, message_id, day, outcome, category;

-- Delivery latency per message: vendor acceptance (MessageSent) -> first delivered, by event time.
DROP TABLE IF EXISTS {db}.delivery_latency;

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
    WHERE delivery_outcome = 'delivered'
    GROUP BY company_id, message_id
) USING (company_id, message_id);
