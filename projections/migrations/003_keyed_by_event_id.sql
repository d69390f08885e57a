-- The timeline and the consent history keyed by event id, so that two copies of one event always collapse.
--
-- 002 sorted the timeline by (company_id, profile_key, occurred_at, event_id) and the consent history by
-- (company_id, profile_key, version, event_id), assuming both copies of a duplicate event carry the same
-- occurred_at and version. They do not always: a decider that decides a cause again after a crash or a
-- rebalance (its state's changelog not yet written, or the cause itself redelivered at another offset)
-- emits the same event id stamped with a later wall-clock time, or with the version of the other copy's
-- offset. Such a pair kept two rows; the fault tests found them. Keyed by (company_id, profile_key,
-- event_id), the copy projected last wins, as in `events`. Readers still get one profile's rows from the
-- key's prefix and sort them (newest first for the timeline, by version for the consent history).
--
-- Each new table takes its columns from the old one (CREATE TABLE ... AS), so INSERT ... SELECT * copies
-- column for column.
-- Each materialized view writes to the table of its name (resolved by name), so the new table takes that
-- name in one RENAME and the view feeds it from then on; rows the old table received are copied over,
-- those that reached it around the RENAME included (duplicates collapse).
-- Not idempotent past a RENAME: if this file fails after one, finish it by hand (copy, then drop the
-- `*_002` table) and record the migration, or rebuild with `smsfold replay --projection clickhouse`.

CREATE TABLE IF NOT EXISTS {db}.timeline_by_id AS {db}.timeline
ENGINE = ReplacingMergeTree(projected_at)
PARTITION BY toYYYYMM(event_date)
ORDER BY (company_id, profile_key, event_id);

RENAME TABLE {db}.timeline TO {db}.timeline_002, {db}.timeline_by_id TO {db}.timeline;

INSERT INTO {db}.timeline SELECT * FROM {db}.timeline_002;

DROP TABLE IF EXISTS {db}.timeline_002;

CREATE TABLE IF NOT EXISTS {db}.consent_history_by_id AS {db}.consent_history
ENGINE = ReplacingMergeTree(projected_at)
PARTITION BY toYYYYMM(event_date)
ORDER BY (company_id, profile_key, event_id);

RENAME TABLE {db}.consent_history TO {db}.consent_history_002, {db}.consent_history_by_id TO {db}.consent_history;

INSERT INTO {db}.consent_history SELECT * FROM {db}.consent_history_002;

DROP TABLE IF EXISTS {db}.consent_history_002;
