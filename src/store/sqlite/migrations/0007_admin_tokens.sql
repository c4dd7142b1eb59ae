-- Tokens of the HTTPS admin API: only the SHA-256 digest of each secret is kept (the
-- secret is shown once, when made). Times are ticks; 0 = never used.
CREATE TABLE admin_tokens (
    name TEXT PRIMARY KEY,
    digest BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL DEFAULT 0
);
