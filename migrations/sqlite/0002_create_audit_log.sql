-- The audit trail (docs/audit.md): one row per audited request, linked by a
-- keyed hash chain, and the chain's head.
--
-- audit_log is append-only. holdfast has no UPDATE and no DELETE of it; the
-- triggers below refuse them from anyone else too. They are defence in
-- depth, not the proof: whoever can drop a trigger can edit rows, and the
-- keyed chain (checked by `holdfast audit verify`) is what catches that.
-- audit_head only moves forward, and the key fingerprint is set once.
-- Forward-only: never edit once landed.

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY NOT NULL,
    at_us     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    role      TEXT,
    client    TEXT,
    action    TEXT NOT NULL,
    params    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    detail    TEXT,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
);

CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_by_action ON audit_log (action, seq);
CREATE INDEX audit_log_by_at ON audit_log (at_us, seq);

-- One row: the last record's seq and hash (0 and 32 zero bytes when empty).
-- Every append locks it; verify compares it with the last record.
CREATE TABLE audit_head (
    id              INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq             INTEGER NOT NULL,
    hash            BLOB NOT NULL,
    key_fingerprint TEXT
);

INSERT INTO audit_head (id, seq, hash, key_fingerprint) VALUES (1, 0, zeroblob(32), NULL);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head
WHEN NEW.id IS NOT OLD.id
  OR NEW.seq < OLD.seq
  OR (OLD.key_fingerprint IS NOT NULL AND NEW.key_fingerprint IS NOT OLD.key_fingerprint)
BEGIN
    SELECT RAISE(ABORT, 'audit_head only moves forward');
END;

CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN
    SELECT RAISE(ABORT, 'audit_head cannot be deleted');
END;
