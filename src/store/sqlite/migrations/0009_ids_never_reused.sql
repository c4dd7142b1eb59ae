-- Message and invitation ids are never given twice. An INTEGER PRIMARY KEY takes the
-- largest id in the table plus one, so clearing the room that held the newest messages
-- handed their ids out again: to XMPP archives and XCCOS clients that had seen them, and
-- to the hub's join and invitation marks. Each table's highest deleted id is kept here,
-- and inserts number past both it and the largest id present.
CREATE TABLE id_floors (
    name TEXT PRIMARY KEY,
    last INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO id_floors (name, last) VALUES
    ('messages', (SELECT coalesce(max(id), 0) FROM messages)),
    ('invitations', (SELECT coalesce(max(id), 0) FROM invitations));
-- Only deletes above the floor write it: clearing old history costs one comparison a row.
CREATE TRIGGER messages_floor AFTER DELETE ON messages
    WHEN old.id > (SELECT last FROM id_floors WHERE name = 'messages')
BEGIN
    UPDATE id_floors SET last = old.id WHERE name = 'messages';
END;
CREATE TRIGGER invitations_floor AFTER DELETE ON invitations
    WHEN old.id > (SELECT last FROM id_floors WHERE name = 'invitations')
BEGIN
    UPDATE id_floors SET last = old.id WHERE name = 'invitations';
END;
