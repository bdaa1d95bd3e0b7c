-- Plexus store, SQLite, version 11: the control-id search index is filled in batches.
--
-- An index on messages(control_id) took one B-tree insert per message at a place that depends
-- on the sender: every sending system numbers its messages in its own series, so the
-- messages of one commit (from many connections) land on as many different leaf pages of the
-- index, and each such page is written to the WAL again at every commit. With fifty
-- connections that was half the bytes written per message and a quarter of the writer's CPU.
--
-- Now an append adds (message_id, control_id) to message_control_pending, whose key follows
-- the message ids (time-ordered): one page at the end. Every so many appends (see
-- `sqlite::ops::BatchedIndexes`) the writer moves the pending rows into message_control in
-- control-id order, in the same transaction, so one write of a hot leaf page carries all the
-- rows it received since the last move. A search by control id reads both tables: the
-- index, and the pending rows (at most a few thousand, read whole). Deleting a message deletes
-- its row from both (store code, not a foreign key: no index on message_id is needed).
DROP INDEX messages_control;

CREATE TABLE message_control (
    control_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    PRIMARY KEY (control_id, message_id)
) WITHOUT ROWID;

CREATE TABLE message_control_pending (
    message_id TEXT NOT NULL PRIMARY KEY,
    control_id TEXT NOT NULL
) WITHOUT ROWID;

INSERT INTO message_control (control_id, message_id)
    SELECT control_id, id FROM messages WHERE control_id IS NOT NULL ORDER BY control_id, id;
