-- Posts are added to the full-text index by the store's writer, once per committed batch
-- (SqliteStore's Flush), not by a trigger per row: a trigger makes SQLite open a statement
-- savepoint for each insert, at which FTS5 writes its pending index as a segment of its
-- own, one per post. Deletes and edits keep their triggers (they are rare, and the writer
-- indexes a batch's posts before any of them runs).
DROP TRIGGER messages_fts_insert;
