-- Plexus store, SQLite, version 8: FHIR index tables clustered by resource (WITHOUT ROWID).
--
-- Each index table was a rowid table plus a (rid, param) index, so every index row went into
-- one B-tree more than its searches need, and a search that checked a resource's values
-- found them through the (rid, param) index and then read the row from the table. Now the
-- table itself is a B-tree keyed by (rid, param, seq): a write inserts each row into the
-- table and its value index(es) only, an update deletes one key range, and a correlated
-- check of a resource's values is one seek. `seq` tells apart the rows of one resource (a
-- write numbers them 0, 1, …; rows copied here keep their old rowid, unique in their table).
-- The value indexes keep their names and columns; as indexes of WITHOUT ROWID tables they
-- end with (rid, seq) instead of the rowid.
--
-- Planner statistics: dropping a table drops its rows of sqlite_stat1, and the search plans
-- of a large store depend on them (the store gathers them with `PRAGMA optimize` at close).
-- They are kept: a value index keeps its statistics as they were, the (rid, param) index's
-- become the primary key's (rid, param, seq) with one row per key. A store that had none
-- gets none.

-- makes sure sqlite_stat1 exists (analysing sqlite_schema itself records nothing)
ANALYZE sqlite_schema;
CREATE TEMP TABLE fhir_idx_stat_kept AS
    SELECT tbl, idx, stat FROM sqlite_stat1
    WHERE tbl IN ('fhir_idx_string', 'fhir_idx_token', 'fhir_idx_reference', 'fhir_idx_date',
                  'fhir_idx_number', 'fhir_idx_quantity', 'fhir_idx_uri')
      AND idx IS NOT NULL;

CREATE TABLE fhir_idx_string_new (
    rid        INTEGER NOT NULL,
    param      TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    grp        INTEGER NOT NULL DEFAULT 0,
    pos        INTEGER NOT NULL DEFAULT 0,
    normalized TEXT    NOT NULL,
    exact      TEXT    NOT NULL,
    PRIMARY KEY (rid, param, seq)
) WITHOUT ROWID;
INSERT INTO fhir_idx_string_new (rid, param, seq, type, grp, pos, normalized, exact)
    SELECT rid, param, rowid, type, grp, pos, normalized, exact FROM fhir_idx_string;
DROP TABLE fhir_idx_string;
ALTER TABLE fhir_idx_string_new RENAME TO fhir_idx_string;
CREATE INDEX fhir_idx_string_value ON fhir_idx_string (type, param, normalized, rid);

CREATE TABLE fhir_idx_token_new (
    rid         INTEGER NOT NULL,
    param       TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    grp         INTEGER NOT NULL DEFAULT 0,
    pos         INTEGER NOT NULL DEFAULT 0,
    system      TEXT,
    code        TEXT,
    display     TEXT,
    type_system TEXT,
    type_code   TEXT,
    PRIMARY KEY (rid, param, seq)
) WITHOUT ROWID;
INSERT INTO fhir_idx_token_new (rid, param, seq, type, grp, pos, system, code, display,
                                type_system, type_code)
    SELECT rid, param, rowid, type, grp, pos, system, code, display, type_system, type_code
    FROM fhir_idx_token;
DROP TABLE fhir_idx_token;
ALTER TABLE fhir_idx_token_new RENAME TO fhir_idx_token;
CREATE INDEX fhir_idx_token_value ON fhir_idx_token (type, param, code, system);

CREATE TABLE fhir_idx_reference_new (
    rid               INTEGER NOT NULL,
    param             TEXT    NOT NULL,
    seq               INTEGER NOT NULL,
    type              TEXT    NOT NULL,
    grp               INTEGER NOT NULL DEFAULT 0,
    pos               INTEGER NOT NULL DEFAULT 0,
    target_type       TEXT,
    target_id         TEXT,
    url               TEXT,
    identifier_system TEXT,
    identifier_value  TEXT,
    PRIMARY KEY (rid, param, seq)
) WITHOUT ROWID;
INSERT INTO fhir_idx_reference_new (rid, param, seq, type, grp, pos, target_type, target_id,
                                    url, identifier_system, identifier_value)
    SELECT rid, param, rowid, type, grp, pos, target_type, target_id, url, identifier_system,
           identifier_value
    FROM fhir_idx_reference;
DROP TABLE fhir_idx_reference;
ALTER TABLE fhir_idx_reference_new RENAME TO fhir_idx_reference;
CREATE INDEX fhir_idx_reference_value  ON fhir_idx_reference (type, param, target_id, target_type);
CREATE INDEX fhir_idx_reference_target ON fhir_idx_reference (target_id, target_type)
    WHERE target_id IS NOT NULL;
CREATE INDEX fhir_idx_reference_url    ON fhir_idx_reference (type, param, url)
    WHERE url IS NOT NULL;
CREATE INDEX fhir_idx_reference_ident  ON fhir_idx_reference (type, param, identifier_value)
    WHERE identifier_value IS NOT NULL;

CREATE TABLE fhir_idx_date_new (
    rid   INTEGER NOT NULL,
    param TEXT    NOT NULL,
    seq   INTEGER NOT NULL,
    type  TEXT    NOT NULL,
    grp   INTEGER NOT NULL DEFAULT 0,
    pos   INTEGER NOT NULL DEFAULT 0,
    low   INTEGER NOT NULL,
    high  INTEGER NOT NULL,
    -- 1 when this row is its resource's only value of the parameter and spans less than a
    -- day: two bounds on such a parameter are then one range on `low` (see the search SQL)
    fast  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rid, param, seq)
) WITHOUT ROWID;
INSERT INTO fhir_idx_date_new (rid, param, seq, type, grp, pos, low, high, fast)
    SELECT rid, param, rowid, type, grp, pos, low, high, fast FROM fhir_idx_date;
DROP TABLE fhir_idx_date;
ALTER TABLE fhir_idx_date_new RENAME TO fhir_idx_date;
CREATE INDEX fhir_idx_date_value ON fhir_idx_date (type, param, low, high);
-- searches bounded from below (gt, ge, sa) scan by the end of the range
CREATE INDEX fhir_idx_date_high  ON fhir_idx_date (type, param, high, low);
CREATE INDEX fhir_idx_date_slow  ON fhir_idx_date (type, param, low) WHERE fast = 0;

CREATE TABLE fhir_idx_number_new (
    rid   INTEGER NOT NULL,
    param TEXT    NOT NULL,
    seq   INTEGER NOT NULL,
    type  TEXT    NOT NULL,
    grp   INTEGER NOT NULL DEFAULT 0,
    pos   INTEGER NOT NULL DEFAULT 0,
    value REAL    NOT NULL,
    low   REAL    NOT NULL,
    high  REAL    NOT NULL,
    PRIMARY KEY (rid, param, seq)
) WITHOUT ROWID;
INSERT INTO fhir_idx_number_new (rid, param, seq, type, grp, pos, value, low, high)
    SELECT rid, param, rowid, type, grp, pos, value, low, high FROM fhir_idx_number;
DROP TABLE fhir_idx_number;
ALTER TABLE fhir_idx_number_new RENAME TO fhir_idx_number;
CREATE INDEX fhir_idx_number_value ON fhir_idx_number (type, param, low, high);

CREATE TABLE fhir_idx_quantity_new (
    rid    INTEGER NOT NULL,
    param  TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    type   TEXT    NOT NULL,
    grp    INTEGER NOT NULL DEFAULT 0,
    pos    INTEGER NOT NULL DEFAULT 0,
    system TEXT,
    code   TEXT,
    unit   TEXT,
    value  REAL    NOT NULL,
    low    REAL    NOT NULL,
    high   REAL    NOT NULL,
    PRIMARY KEY (rid, param, seq)
) WITHOUT ROWID;
INSERT INTO fhir_idx_quantity_new (rid, param, seq, type, grp, pos, system, code, unit, value,
                                   low, high)
    SELECT rid, param, rowid, type, grp, pos, system, code, unit, value, low, high
    FROM fhir_idx_quantity;
DROP TABLE fhir_idx_quantity;
ALTER TABLE fhir_idx_quantity_new RENAME TO fhir_idx_quantity;
CREATE INDEX fhir_idx_quantity_value ON fhir_idx_quantity (type, param, low, high);

CREATE TABLE fhir_idx_uri_new (
    rid   INTEGER NOT NULL,
    param TEXT    NOT NULL,
    seq   INTEGER NOT NULL,
    type  TEXT    NOT NULL,
    grp   INTEGER NOT NULL DEFAULT 0,
    pos   INTEGER NOT NULL DEFAULT 0,
    value TEXT    NOT NULL,
    PRIMARY KEY (rid, param, seq)
) WITHOUT ROWID;
INSERT INTO fhir_idx_uri_new (rid, param, seq, type, grp, pos, value)
    SELECT rid, param, rowid, type, grp, pos, value FROM fhir_idx_uri;
DROP TABLE fhir_idx_uri;
ALTER TABLE fhir_idx_uri_new RENAME TO fhir_idx_uri;
CREATE INDEX fhir_idx_uri_value ON fhir_idx_uri (type, param, value);

INSERT INTO sqlite_stat1 (tbl, idx, stat)
    SELECT tbl,
           CASE WHEN idx = tbl || '_rid' THEN tbl ELSE idx END,
           CASE WHEN idx = tbl || '_rid' THEN stat || ' 1' ELSE stat END
    FROM temp.fhir_idx_stat_kept
    WHERE idx = tbl || '_rid' OR idx IN (SELECT name FROM sqlite_schema WHERE type = 'index');
DROP TABLE temp.fhir_idx_stat_kept;
-- reloads the statistics for this connection
ANALYZE sqlite_schema;
