-- Plexus store, PostgreSQL, version 4: the security tables of the SMART authorization server.
-- Same layout as the SQLite migration 0004 (see there); JSON is kept as text, exactly as
-- written.

CREATE TABLE security_user (
    name          TEXT        PRIMARY KEY,
    password_hash TEXT,
    roles         TEXT        NOT NULL,
    fhir_user     TEXT,
    disabled      BOOLEAN     NOT NULL,
    created       TIMESTAMPTZ NOT NULL
);

CREATE TABLE security_client (
    client_id TEXT        PRIMARY KEY,
    config    TEXT        NOT NULL,
    created   TIMESTAMPTZ NOT NULL
);

CREATE TABLE security_grant (
    kind    TEXT        NOT NULL,
    key     TEXT        NOT NULL,
    subject TEXT        NOT NULL,
    family  TEXT,
    payload TEXT        NOT NULL,
    expires TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX security_grant_family ON security_grant (family) WHERE family IS NOT NULL;
CREATE INDEX security_grant_expires ON security_grant (expires);
