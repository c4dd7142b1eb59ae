-- The full-text index holds each message's room as a token of its own (`r` and the room id,
-- in column room_key), so a search names its room inside the index: FTS5 walks only that
-- room's matches, however many other rooms match the same words. The index reads its
-- content through a view that makes the token; it is rebuilt once here.
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_fts;
CREATE VIEW messages_fts_source (id, body, room_key) AS
    SELECT id, body, 'r' || room_id FROM messages;
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    body, room_key, content = 'messages_fts_source', content_rowid = 'id'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, body, room_key) VALUES (new.id, new.body, 'r' || new.room_id);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body, room_key)
        VALUES ('delete', old.id, old.body, 'r' || old.room_id);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body, room_id ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body, room_key)
        VALUES ('delete', old.id, old.body, 'r' || old.room_id);
    INSERT INTO messages_fts (rowid, body, room_key) VALUES (new.id, new.body, 'r' || new.room_id);
END;
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
