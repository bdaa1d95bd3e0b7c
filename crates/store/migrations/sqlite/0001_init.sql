-- Plexus store, SQLite, version 1: message journal, metadata, content stages, queues.
-- Times are INTEGER microseconds since the Unix epoch, UTC. Message ids are 26-character
-- ULIDs, which sort by time as text.

CREATE TABLE messages (
    id                  TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 26),
    channel             TEXT    NOT NULL,
    received_at         INTEGER NOT NULL,
    peer_addr           TEXT,
    tls_subject         TEXT,
    message_type        TEXT,
    trigger_event       TEXT,
    control_id          TEXT,
    sending_application TEXT,
    sending_facility    TEXT,
    status              TEXT    NOT NULL CHECK (status IN
        ('RECEIVED', 'FILTERED', 'TRANSFORMED', 'QUEUED', 'SENT', 'ERROR')),
    error               TEXT
) WITHOUT ROWID;

-- Listing is newest first (by id) within the usual filters.
CREATE INDEX messages_channel  ON messages (channel, id);
CREATE INDEX messages_received ON messages (received_at);
CREATE INDEX messages_type     ON messages (message_type, trigger_event, id);
CREATE INDEX messages_status   ON messages (status, id);
CREATE INDEX messages_control  ON messages (control_id);

CREATE TABLE message_metadata (
    message_id TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    PRIMARY KEY (message_id, seq)
) WITHOUT ROWID;

CREATE INDEX message_metadata_kv ON message_metadata (key, value, message_id);

CREATE TABLE message_content (
    message_id  TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    destination INTEGER NOT NULL CHECK (destination >= 0),
    stage       TEXT    NOT NULL CHECK (stage IN
        ('RAW', 'TRANSFORMED', 'ENCODED', 'SENT', 'RESPONSE')),
    created_at  INTEGER NOT NULL,
    bytes       BLOB    NOT NULL,
    PRIMARY KEY (message_id, destination, stage)
);

-- AUTOINCREMENT: an item id is never reused, so a stale ack can never hit a newer item.
-- available_at is when the item can next be claimed: due time while READY, lease end while
-- LEASED; one index then serves both "ready and due" and "lease expired".
CREATE TABLE queue_items (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT    NOT NULL,
    message_id   TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    destination  INTEGER NOT NULL CHECK (destination >= 0),
    attempts     INTEGER NOT NULL DEFAULT 0,
    available_at INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER,
    state        TEXT    NOT NULL CHECK (state IN ('READY', 'LEASED', 'DONE', 'DEAD')),
    last_error   TEXT,
    created_at   INTEGER NOT NULL
);

CREATE INDEX queue_items_claimable ON queue_items (queue, available_at, id)
    WHERE state IN ('READY', 'LEASED');
CREATE INDEX queue_items_dead ON queue_items (queue, id) WHERE state = 'DEAD';
CREATE INDEX queue_items_message ON queue_items (message_id);
