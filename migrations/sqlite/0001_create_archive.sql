-- The archive's metadata: what the store needs to find and dedupe events,
-- key epochs with their wrapped data keys, and segment checkpoints.
-- Forward-only: never edit once landed.

CREATE TABLE archive_meta (
    meta_key   TEXT PRIMARY KEY NOT NULL,
    meta_value TEXT NOT NULL
);

CREATE TABLE key_epochs (
    epoch_id        INTEGER PRIMARY KEY NOT NULL,
    team            TEXT NOT NULL,
    channel         TEXT NOT NULL,
    day             TEXT NOT NULL,
    wrapped_key     BLOB,
    kek_fingerprint TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    destroyed_at_ms INTEGER,
    UNIQUE (team, channel, day)
);

CREATE TABLE segments (
    segment_no    INTEGER PRIMARY KEY NOT NULL,
    created_at_ms INTEGER NOT NULL,
    sealed_at_ms  INTEGER,
    first_seq     INTEGER NOT NULL,
    n_records     INTEGER NOT NULL,
    end_offset    INTEGER NOT NULL,
    last_seq      INTEGER NOT NULL,
    last_hash     BLOB NOT NULL,
    file_sha256   BLOB
);

CREATE TABLE events (
    seq           INTEGER PRIMARY KEY NOT NULL,
    event_id      TEXT NOT NULL UNIQUE,
    segment_no    INTEGER NOT NULL,
    record_offset INTEGER NOT NULL,
    record_len    INTEGER NOT NULL,
    epoch_id      INTEGER NOT NULL REFERENCES key_epochs (epoch_id),
    kind          TEXT NOT NULL,
    at_us         INTEGER NOT NULL,
    team          TEXT NOT NULL,
    channel       TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    post_id       TEXT
);

CREATE INDEX events_by_post ON events (post_id, seq);
