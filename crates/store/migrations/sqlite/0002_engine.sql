-- Plexus store, SQLite, version 2: what the channel engine needs.
-- Reprocessing (original_id, route_only), per-destination status, strict FIFO claims.

-- The message a reprocessed message copies; not a foreign key, so that pruning an original
-- keeps its copies (and the id they name).
ALTER TABLE messages ADD COLUMN original_id TEXT
    CHECK (original_id IS NULL OR length(original_id) = 26);
-- The destination numbers a reprocessed message must go to, as text: "1,3".
ALTER TABLE messages ADD COLUMN route_only TEXT;

CREATE INDEX messages_original ON messages (original_id, id) WHERE original_id IS NOT NULL;

CREATE TABLE message_destinations (
    message_id  TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    destination INTEGER NOT NULL CHECK (destination >= 0),
    name        TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN
        ('RECEIVED', 'FILTERED', 'TRANSFORMED', 'QUEUED', 'SENT', 'ERROR')),
    error       TEXT,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (message_id, destination)
) WITHOUT ROWID;

-- claim_head reads a queue's unfinished items in id order and stops at the first it may not
-- take.
CREATE INDEX queue_items_head ON queue_items (queue, id) WHERE state IN ('READY', 'LEASED');
