-- The timeline keyed by event id alone, so that two copies of one event always collapse.
--
-- 002 sorted the timeline by (company_id, profile_key, occurred_at, event_id), assuming both copies of
-- a duplicate event carry the same occurred_at. They do not always: a decider that re-decides a cause
-- after a crash (its state's changelog not yet written when it was killed) emits the same event id
-- stamped with a later wall-clock time. Such a pair kept two timeline rows; the worker-kill fault test
-- found them. Keyed by (company_id, profile_key, event_id), the copy projected last wins, as in `events`.
-- Paging newest first still reads one profile's rows only (the key's prefix) and sorts them.
--
-- The materialized view timeline_mv writes to the table named `timeline` (resolved by name), so the new
-- table takes that name in one RENAME and the view feeds it from then on; rows the old table received
-- are copied over, those that reached it around the RENAME included (duplicates collapse).
-- Not idempotent past the RENAME: if this file fails after it, finish it by hand (copy, then drop
-- `timeline_002`) and record the migration, or rebuild with `smsfold replay --projection clickhouse`.

CREATE TABLE IF NOT EXISTS {db}.timeline_by_id
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
ORDER BY (company_id, profile_key, event_id);

RENAME TABLE {db}.timeline TO {db}.timeline_002, {db}.timeline_by_id TO {db}.timeline;

INSERT INTO {db}.timeline SELECT * FROM {db}.timeline_002;

DROP TABLE IF EXISTS {db}.timeline_002;
