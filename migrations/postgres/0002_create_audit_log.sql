-- The audit trail (docs/audit.md): one row per audited request, linked by a
-- keyed hash chain, and the chain's head.
--
-- audit_log is append-only. holdfast has no UPDATE and no DELETE of it; the
-- triggers below refuse them (and TRUNCATE) from anyone else too. They are
-- defence in depth, not the proof: whoever owns the table can disable a
-- trigger and edit rows, and the keyed chain (checked by
-- `holdfast audit verify`) is what catches that. audit_head only moves
-- forward, and the key fingerprint is set once.
-- Forward-only: never edit once landed.

CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY NOT NULL,
    at_us     BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    role      TEXT,
    client    TEXT,
    action    TEXT NOT NULL,
    params    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    detail    TEXT,
    prev_hash BYTEA NOT NULL,
    hash      BYTEA NOT NULL
);

CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_by_action ON audit_log (action, seq);
CREATE INDEX audit_log_by_at ON audit_log (at_us, seq);

-- One row: the last record's seq and hash (0 and 32 zero bytes when empty).
-- Every append locks it (SELECT ... FOR UPDATE), which keeps one linear
-- chain across several holdfast nodes; verify compares it with the last record.
CREATE TABLE audit_head (
    id              BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    seq             BIGINT NOT NULL,
    hash            BYTEA NOT NULL,
    key_fingerprint TEXT
);

INSERT INTO audit_head (id, seq, hash, key_fingerprint)
VALUES (1, 0, decode(repeat('00', 32), 'hex'), NULL);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

CREATE FUNCTION audit_head_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.id = OLD.id
           AND NEW.seq >= OLD.seq
           AND (OLD.key_fingerprint IS NULL
                OR NEW.key_fingerprint IS NOT DISTINCT FROM OLD.key_fingerprint) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_head only moves forward';
END;
$$;

CREATE TRIGGER audit_head_forward_only BEFORE UPDATE OR DELETE ON audit_head
FOR EACH ROW EXECUTE FUNCTION audit_head_refuse_change();

CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
FOR EACH STATEMENT EXECUTE FUNCTION audit_head_refuse_change();
