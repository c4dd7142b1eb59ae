-- Generation counter: bumped by every change an administrator makes, so a running server
-- notices changes made by another process (perch admin) and reloads.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO meta (key, value) VALUES ('generation', 0);

-- Users. `aor` is the canonical user@domain (lower case). Digest credentials are stored as
-- HA1 values for the user's domain as realm, never as passwords.
CREATE TABLE users (
    id           INTEGER PRIMARY KEY,
    aor          TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL DEFAULT '',
    enabled      INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    ha1_md5      TEXT,
    ha1_sha256   TEXT,
    created_at   INTEGER NOT NULL
) STRICT;
