-- Plexus store, SQLite, version 12: the metadata search index is filled in batches too.
--
-- Metadata values (an MRN, a visit number; with encryption at rest their blind indexes) are
-- as scattered as control ids, so the index on message_metadata(key, value, message_id) cost
-- a leaf page per pair per commit, as migration 11 describes for control ids. The same cure:
-- a message whose pairs are not filed yet is listed in message_metadata_pending (keyed by
-- message id), and the writer files the pairs of every listed message into
-- message_metadata_index in key order when it moves the pending control ids. A search reads
-- the index and the pairs of the listed messages. Deleting a message deletes its index rows
-- (store code); the pairs themselves still go with the message (foreign key).
DROP INDEX message_metadata_kv;

CREATE TABLE message_metadata_index (
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    message_id TEXT NOT NULL,
    PRIMARY KEY (key, value, message_id)
) WITHOUT ROWID;

CREATE TABLE message_metadata_pending (
    message_id TEXT NOT NULL PRIMARY KEY
) WITHOUT ROWID;

INSERT OR IGNORE INTO message_metadata_index (key, value, message_id)
    SELECT key, value, message_id FROM message_metadata ORDER BY key, value, message_id;
