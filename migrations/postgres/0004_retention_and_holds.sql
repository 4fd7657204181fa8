-- Retention policies and legal holds (docs/retention.md).
-- Forward-only: never edit once landed.

-- A carry epoch holds events re-encrypted out of an expiring epoch (held, or
-- kept longer by their kind's policy); its day is "YYYY-MM-DD+N".
ALTER TABLE key_epochs ADD COLUMN carried_from BIGINT;
ALTER TABLE key_epochs ADD COLUMN destroyed_by_run BIGINT;

-- record_seq: the seq of the record that now holds the event when it was
-- re-encrypted into a carry epoch (NULL: the record with the event's own seq).
-- shredded_run / shredded_policy: the retention run and policy that deleted it.
ALTER TABLE events ADD COLUMN record_seq BIGINT;
ALTER TABLE events ADD COLUMN shredded_run BIGINT;
ALTER TABLE events ADD COLUMN shredded_policy TEXT;
CREATE UNIQUE INDEX events_by_record_seq ON events (record_seq) WHERE record_seq IS NOT NULL;
CREATE INDEX events_by_epoch ON events (epoch_id);

-- The file hash a sealed segment had before its first compaction.
ALTER TABLE segments ADD COLUMN original_sha256 BYTEA;

-- Byte ranges of sealed segments whose records were all shredded and whose
-- disk was reclaimed: what verify needs to carry the chain across them.
CREATE TABLE compacted_ranges (
    segment_no      BIGINT NOT NULL,
    start_offset    BIGINT NOT NULL,
    end_offset      BIGINT NOT NULL,
    first_seq       BIGINT NOT NULL,
    last_seq        BIGINT NOT NULL,
    n_records       BIGINT NOT NULL,
    prev_hash       BYTEA NOT NULL,
    last_hash       BYTEA NOT NULL,
    run_id          BIGINT NOT NULL,
    PRIMARY KEY (segment_no, start_offset)
);

CREATE TABLE holds (
    hold_id        BIGSERIAL PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    matter         TEXT NOT NULL,
    reason         TEXT NOT NULL,
    criteria       TEXT NOT NULL,
    scope          TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    released_by    TEXT,
    released_at_ms BIGINT,
    release_reason TEXT
);

-- One row; hold creation and the destruction step of a retention run both
-- write it first, which serializes them on both backends.
CREATE TABLE retention_lock (
    lock_id    BIGINT PRIMARY KEY NOT NULL CHECK (lock_id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO retention_lock (lock_id, generation) VALUES (1, 0);

-- The highest floor (min_keep_days) ever applied per scope and event kind.
CREATE TABLE retention_floors (
    scope_key     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    min_keep_days BIGINT NOT NULL,
    policy        TEXT NOT NULL,
    source        TEXT NOT NULL,
    applied_at_ms BIGINT NOT NULL,
    PRIMARY KEY (scope_key, kind)
);

CREATE TABLE retention_runs (
    run_id         BIGSERIAL PRIMARY KEY,
    started_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT,
    as_of          TEXT NOT NULL,
    started_by     TEXT NOT NULL,
    run_trigger    TEXT NOT NULL,
    status         TEXT NOT NULL,
    stage          TEXT NOT NULL,
    policies       TEXT NOT NULL,
    plan           TEXT NOT NULL,
    certificate    TEXT
);
