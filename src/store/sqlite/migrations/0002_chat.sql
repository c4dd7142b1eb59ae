-- Groups of users and groups (principals as text: sip:user@domain, group:NAME).
CREATE TABLE groups (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE TABLE group_members (
    group_id  INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    principal TEXT NOT NULL,
    PRIMARY KEY (group_id, principal)
) STRICT;

-- EnablePersistentChat per scope: 'global', 'group:NAME' or 'sip:user@domain'.
CREATE TABLE policies (
    scope   TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL CHECK (enabled IN (0, 1))
) STRICT;

-- Server settings (DefaultChatHistory, ...); absent means the default.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;

CREATE TABLE categories (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description  TEXT NOT NULL DEFAULT '',
    invitations  INTEGER NOT NULL DEFAULT 1,
    file_upload  INTEGER NOT NULL DEFAULT 1,
    chat_history INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE TABLE category_principals (
    category_id INTEGER NOT NULL REFERENCES categories (id) ON DELETE CASCADE,
    list        TEXT NOT NULL CHECK (list IN ('allowed', 'denied', 'creators')),
    principal   TEXT NOT NULL,
    PRIMARY KEY (category_id, list, principal)
) STRICT;

CREATE TABLE addins (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    url  TEXT NOT NULL
) STRICT;

CREATE TABLE rooms (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description TEXT NOT NULL DEFAULT '',
    category_id INTEGER NOT NULL REFERENCES categories (id) ON DELETE RESTRICT,
    privacy     TEXT NOT NULL CHECK (privacy IN ('open', 'closed', 'secret')),
    kind        TEXT NOT NULL CHECK (kind IN ('normal', 'auditorium')),
    invitations TEXT NOT NULL CHECK (invitations IN ('inherit', 'false')),
    disabled    INTEGER NOT NULL DEFAULT 0,
    addin       TEXT REFERENCES addins (name) ON DELETE SET NULL ON UPDATE CASCADE
) STRICT;
CREATE TABLE room_principals (
    room_id   INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    role      TEXT NOT NULL CHECK (role IN ('member', 'manager', 'presenter')),
    principal TEXT NOT NULL,
    PRIMARY KEY (room_id, role, principal)
) STRICT;

-- Chat history. `id` is the one message id every protocol and tool uses; `ts` is the
-- server's receipt time in 100 ns ticks since the Unix epoch (the 7-digit form on the wire).
CREATE TABLE messages (
    id      INTEGER PRIMARY KEY,
    room_id INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    author  TEXT NOT NULL,
    ts      INTEGER NOT NULL,
    body    TEXT NOT NULL,
    extra   TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX messages_by_room ON messages (room_id, id);
CREATE INDEX messages_by_room_time ON messages (room_id, ts);
CREATE VIRTUAL TABLE messages_fts USING fts5 (body, content = 'messages', content_rowid = 'id');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
END;

-- Invitations, fetched by clients after the last id they saw.
CREATE TABLE invitations (
    id         INTEGER PRIMARY KEY,
    user       TEXT NOT NULL,
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX invitations_by_user ON invitations (user, id);

-- Opaque per-user preferences with a sequence id.
CREATE TABLE preferences (
    user    TEXT NOT NULL,
    label   TEXT NOT NULL,
    seqid   INTEGER NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (user, label)
) STRICT;
