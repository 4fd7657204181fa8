-- The archive's metadata: what the store needs to find and dedupe events,
-- key epochs with their wrapped data keys, and segment checkpoints.
-- Forward-only: never edit once landed.

CREATE TABLE archive_meta (
    meta_key   TEXT PRIMARY KEY NOT NULL,
    meta_value TEXT NOT NULL
);

CREATE TABLE key_epochs (
    epoch_id        BIGSERIAL PRIMARY KEY,
    team            TEXT NOT NULL,
    channel         TEXT NOT NULL,
    day             TEXT NOT NULL,
    wrapped_key     BYTEA,
    kek_fingerprint TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    destroyed_at_ms BIGINT,
    UNIQUE (team, channel, day)
);

CREATE TABLE segments (
    segment_no    BIGINT PRIMARY KEY NOT NULL,
    created_at_ms BIGINT NOT NULL,
    sealed_at_ms  BIGINT,
    first_seq     BIGINT NOT NULL,
    n_records     BIGINT NOT NULL,
    end_offset    BIGINT NOT NULL,
    last_seq      BIGINT NOT NULL,
    last_hash     BYTEA NOT NULL,
    file_sha256   BYTEA
);

CREATE TABLE events (
    seq           BIGINT PRIMARY KEY NOT NULL,
    event_id      TEXT NOT NULL UNIQUE,
    segment_no    BIGINT NOT NULL,
    record_offset BIGINT NOT NULL,
    record_len    BIGINT NOT NULL,
    epoch_id      BIGINT NOT NULL REFERENCES key_epochs (epoch_id),
    kind          TEXT NOT NULL,
    at_us         BIGINT NOT NULL,
    team          TEXT NOT NULL,
    channel       TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    post_id       TEXT
);

CREATE INDEX events_by_post ON events (post_id, seq);
