-- Exports, scheduled exports and their deliveries (docs/exports.md).
-- Forward-only: never edit once landed.

-- Exports walk a channel in time order.
CREATE INDEX events_by_channel ON events (team, channel, at_us, seq);

CREATE TABLE exports (
    export_id       BIGSERIAL PRIMARY KEY,
    requested_by    TEXT NOT NULL,
    schedule        TEXT,
    request         TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    finished_at_ms  BIGINT,
    total_events    BIGINT NOT NULL DEFAULT 0,
    exported_events BIGINT NOT NULL DEFAULT 0,
    seq_from        BIGINT,
    seq_to          BIGINT,
    package_dir     TEXT,
    manifest_sha256 TEXT,
    warnings        BIGINT NOT NULL DEFAULT 0,
    error           TEXT
);
CREATE INDEX exports_by_schedule ON exports (schedule, export_id);

-- How far each schedule has exported: every live event with seq in
-- (0, exported_seq] that its selection matches is in exactly one package.
CREATE TABLE export_schedules (
    name          TEXT PRIMARY KEY NOT NULL,
    exported_seq  BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- One row per package and target; a failed delivery is retried until it
-- succeeds or an operator gives up on it, never dropped.
CREATE TABLE export_deliveries (
    export_id          BIGINT NOT NULL,
    target             TEXT NOT NULL,
    status             TEXT NOT NULL,
    attempts           BIGINT NOT NULL,
    last_error         TEXT,
    next_attempt_at_ms BIGINT,
    delivered_at_ms    BIGINT,
    PRIMARY KEY (export_id, target)
);
