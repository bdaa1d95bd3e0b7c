-- Plexus store, PostgreSQL, version 6: encryption at rest (see src/crypto.rs).
--
-- With encryption on, message_metadata.value holds a blind index of the value (a keyed
-- hash, found by exact value) and `sealed` the value encrypted; without it, `sealed` is NULL
-- and `value` the value. Encrypted columns (message_content.bytes, message_metadata.sealed,
-- fhir_version.content) hold envelopes that name their key id.
ALTER TABLE message_metadata ADD COLUMN sealed BYTEA;

-- The key ids this store has used, each with a check value (an HMAC under a key derived
-- from the key), so a wrong key is refused at open; `blind_index` marks the key the blind
-- indexes are derived from.
CREATE TABLE plexus_keys (
    key_id      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    check_value TEXT    NOT NULL,
    blind_index INTEGER NOT NULL DEFAULT 0 CHECK (blind_index IN (0, 1)),
    added_at    BIGINT  NOT NULL
);
