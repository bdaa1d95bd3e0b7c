-- Plexus store, PostgreSQL, version 5: the audit trail (see src/audit.rs and
-- docs/decisions/0007-audit-trail.md).
--
-- One row per audited event, numbered 1, 2, 3, … with no gaps: appends take a
-- transaction-scoped advisory lock (one per schema), read the head and insert seq = head + 1,
-- so appends from every node are serialised into one chain. Rows are hash-chained:
-- hash = SHA-256(prev_hash ‖ canonical encoding of the row), prev_hash of seq 1 being 32 zero
-- bytes.
--
-- The table is append-only: triggers refuse UPDATE, DELETE and TRUNCATE. A superuser or the
-- table owner can disable them; the hash chain is what detects that. `event` is TEXT, not
-- jsonb, because jsonb re-orders keys and the hash covers the JSON bytes as stored.

CREATE TABLE audit_event (
    seq         BIGINT      PRIMARY KEY CHECK (seq >= 1),
    recorded    TIMESTAMPTZ NOT NULL,
    action      TEXT        NOT NULL,
    outcome     TEXT        NOT NULL,
    type_code   TEXT        NOT NULL,
    subtype     TEXT,
    agent       TEXT        NOT NULL,
    client_id   TEXT,
    source_addr TEXT,
    patient     TEXT,
    entity      TEXT,
    detail      TEXT,
    event       TEXT        NOT NULL,
    prev_hash   BYTEA       NOT NULL CHECK (length(prev_hash) = 32),
    hash        BYTEA       NOT NULL CHECK (length(hash) = 32)
);
CREATE INDEX audit_event_recorded ON audit_event (recorded);
CREATE INDEX audit_event_agent ON audit_event (agent, seq);
CREATE INDEX audit_event_patient ON audit_event (patient, seq) WHERE patient IS NOT NULL;

CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
