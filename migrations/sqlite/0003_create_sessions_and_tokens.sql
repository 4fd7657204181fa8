-- Sign-in sessions and the API tokens of service accounts (docs/operations.md).
-- Only SHA-256 hashes of the tokens are stored; the tokens themselves are
-- shown once, when created. Grants (role + scope) are JSON.
-- Forward-only: never edit once landed.

CREATE TABLE api_tokens (
    token_id      INTEGER PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    grants        TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER,
    revoked_at_ms INTEGER,
    revoked_by    TEXT
);

CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL,
    principal     TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);

CREATE INDEX sessions_by_user ON sessions (username);
