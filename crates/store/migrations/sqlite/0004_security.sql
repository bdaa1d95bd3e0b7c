-- Plexus store, SQLite, version 4: the security tables of the SMART authorization server.
--
-- security_user: people who sign in (console, admin API, SMART authorization page); the
-- password is an argon2id PHC string, never the password. security_client: registered OAuth
-- clients, their settings as JSON (redirect URIs, kind, secret hash, JWKS, scopes).
-- security_grant: short- and long-lived secrets the server handed out or saw (authorization
-- codes, refresh tokens, API tokens, revoked token ids, client assertion `jti`s, launch
-- contexts), keyed by (kind, key) where key is a SHA-256 of the secret, never the secret.
-- `family` ties grants that fall together (a refresh-token chain and its access tokens).
-- Times are microseconds since the Unix epoch.

CREATE TABLE security_user (
    name          TEXT    PRIMARY KEY,
    password_hash TEXT,
    roles         TEXT    NOT NULL,
    fhir_user     TEXT,
    disabled      INTEGER NOT NULL CHECK (disabled IN (0, 1)),
    created       INTEGER NOT NULL
);

CREATE TABLE security_client (
    client_id TEXT    PRIMARY KEY,
    config    TEXT    NOT NULL,
    created   INTEGER NOT NULL
);

CREATE TABLE security_grant (
    kind    TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    family  TEXT,
    payload TEXT    NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX security_grant_family ON security_grant (family) WHERE family IS NOT NULL;
CREATE INDEX security_grant_expires ON security_grant (expires);
