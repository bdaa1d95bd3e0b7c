-- Plexus store, SQLite, version 5: the audit trail (see src/audit.rs and
-- docs/decisions/0007-audit-trail.md).
--
-- One row per audited event, numbered 1, 2, 3, … with no gaps (the writer assigns seq = the
-- previous head + 1 inside the transaction that inserts). Rows are hash-chained:
-- hash = SHA-256(prev_hash ‖ canonical encoding of the row), prev_hash of seq 1 being 32 zero
-- bytes, so a changed, removed or re-ordered row is found by `plexus audit verify`.
--
-- The table is append-only: the triggers below refuse every UPDATE and DELETE. They stop the
-- application and anyone using SQL through it; someone with write access to the file can drop
-- them, which is what the hash chain is for. Times are microseconds since the Unix epoch.
-- `event` is the FHIR AuditEvent JSON exactly as hashed.

CREATE TABLE audit_event (
    seq         INTEGER PRIMARY KEY CHECK (seq >= 1),
    recorded    INTEGER NOT NULL,
    action      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    type_code   TEXT    NOT NULL,
    subtype     TEXT,
    agent       TEXT    NOT NULL,
    client_id   TEXT,
    source_addr TEXT,
    patient     TEXT,
    entity      TEXT,
    detail      TEXT,
    event       TEXT    NOT NULL,
    prev_hash   BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash        BLOB    NOT NULL CHECK (length(hash) = 32)
);
CREATE INDEX audit_event_recorded ON audit_event (recorded);
CREATE INDEX audit_event_agent ON audit_event (agent, seq);
CREATE INDEX audit_event_patient ON audit_event (patient, seq) WHERE patient IS NOT NULL;

CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
BEGIN
    SELECT RAISE(ABORT, 'audit_event is append-only: rows cannot be updated');
END;

CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
BEGIN
    SELECT RAISE(ABORT, 'audit_event is append-only: rows cannot be deleted');
END;

-- INSERT OR REPLACE deletes the row it replaces without firing delete triggers (unless
-- recursive_triggers is on): refuse an insert whose seq is taken before it gets there.
CREATE TRIGGER audit_event_no_replace BEFORE INSERT ON audit_event
WHEN EXISTS (SELECT 1 FROM audit_event WHERE seq = NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'audit_event is append-only: rows cannot be replaced');
END;
