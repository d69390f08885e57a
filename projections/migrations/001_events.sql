-- One row per domain event, the analysts' base table.
-- Exactness: ReplacingMergeTree keyed by event_id, so a duplicate delivery of the same event (same
-- deterministic id) collapses to one row at merge time; queries that count read FINAL or count
-- uniqExact(event_id), so a duplicate that has not been merged yet never counts twice either.
CREATE TABLE IF NOT EXISTS {db}.events
(
    event_id String,
    event_type String,
    company_id String,
    profile_key String,
    occurred_at UInt64,
    received_at UInt64,
    projected_at UInt64,
    event_date Date,
    causation_id String,
    message_id String,
    flow_id String,
    campaign_id String,
    payload String
)
ENGINE = ReplacingMergeTree(projected_at)
PARTITION BY toYYYYMM(event_date)
ORDER BY (company_id, event_id);
