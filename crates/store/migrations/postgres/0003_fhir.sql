-- Plexus store, PostgreSQL, version 3: FHIR resources, their version history and search index.
--
-- fhir_resource holds one row per logical resource (its current version); fhir_version holds
-- every version's JSON exactly once, so reading the current version is a join on
-- (rid, version). Times are BIGINT microseconds since the Unix epoch (not TIMESTAMPTZ), so
-- both backends share the search SQL and its parameters. Text is COLLATE "C": prefix searches are byte
-- ranges (`normalized >= $1 AND normalized < $2`) that a btree index answers.
--
-- The index tables hold the search values of the CURRENT, non-deleted version only: a write
-- replaces a resource's rows, a delete removes them. So a row found in an index table always
-- belongs to a live resource and searches never need to look at `deleted`.
--
-- Every index row repeats the resource type (`type`, never changes for a rid): search indexes
-- start with (type, param, value…), so `Patient?name=smi` is one range scan of the index that
-- touches only Patient rows, without a join to fhir_resource to filter the type.
--
-- Composite parameters: each component is a row in the table of its kind, with `grp` the
-- composite value's number within the resource (1, 2, …) and `pos` the component's position
-- (0, 1, …); plain rows have grp = 0 and pos = 0. A composite search joins the component rows
-- on (rid, param, grp). Composite params have their own codes, so plain searches never meet
-- component rows.

CREATE TABLE fhir_resource (
    rid          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type         TEXT COLLATE "C" NOT NULL,
    id           TEXT COLLATE "C" NOT NULL,
    version      BIGINT NOT NULL CHECK (version >= 1),
    last_updated BIGINT NOT NULL,
    deleted      BOOLEAN NOT NULL,
    UNIQUE (type, id)
);
CREATE INDEX fhir_resource_updated ON fhir_resource (type, last_updated);

-- method: C(reate), U(pdate), D(elete). content: the JSON as stored (empty for deletions).
CREATE TABLE fhir_version (
    rid          BIGINT NOT NULL REFERENCES fhir_resource (rid),
    version      BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    deleted      BOOLEAN NOT NULL,
    method       TEXT COLLATE "C" NOT NULL CHECK (method IN ('C', 'U', 'D')),
    content      BYTEA  NOT NULL,
    PRIMARY KEY (rid, version)
);
-- system and type history, newest first
CREATE INDEX fhir_version_updated ON fhir_version (last_updated);

CREATE TABLE fhir_idx_string (
    rid        BIGINT NOT NULL,
    type       TEXT COLLATE "C" NOT NULL,
    param      TEXT COLLATE "C" NOT NULL,
    grp        INTEGER NOT NULL DEFAULT 0,
    pos        INTEGER NOT NULL DEFAULT 0,
    normalized TEXT COLLATE "C" NOT NULL,
    exact      TEXT COLLATE "C" NOT NULL
);
CREATE INDEX fhir_idx_string_rid   ON fhir_idx_string (rid, param);
CREATE INDEX fhir_idx_string_value ON fhir_idx_string (type, param, normalized, rid);
CREATE INDEX fhir_idx_string_exact ON fhir_idx_string (type, param, exact);

CREATE TABLE fhir_idx_token (
    rid         BIGINT NOT NULL,
    type        TEXT COLLATE "C" NOT NULL,
    param       TEXT COLLATE "C" NOT NULL,
    grp         INTEGER NOT NULL DEFAULT 0,
    pos         INTEGER NOT NULL DEFAULT 0,
    system      TEXT COLLATE "C",
    code        TEXT COLLATE "C",
    display     TEXT COLLATE "C",
    type_system TEXT COLLATE "C",
    type_code   TEXT COLLATE "C"
);
CREATE INDEX fhir_idx_token_rid   ON fhir_idx_token (rid, param);
CREATE INDEX fhir_idx_token_value ON fhir_idx_token (type, param, code, system);

CREATE TABLE fhir_idx_reference (
    rid               BIGINT NOT NULL,
    type              TEXT COLLATE "C" NOT NULL,
    param             TEXT COLLATE "C" NOT NULL,
    grp               INTEGER NOT NULL DEFAULT 0,
    pos               INTEGER NOT NULL DEFAULT 0,
    target_type       TEXT COLLATE "C",
    target_id         TEXT COLLATE "C",
    url               TEXT COLLATE "C",
    identifier_system TEXT COLLATE "C",
    identifier_value  TEXT COLLATE "C"
);
CREATE INDEX fhir_idx_reference_rid    ON fhir_idx_reference (rid, param);
CREATE INDEX fhir_idx_reference_value  ON fhir_idx_reference (type, param, target_id, target_type);
-- _has / _revinclude: who points at this resource
CREATE INDEX fhir_idx_reference_target ON fhir_idx_reference (target_id, target_type)
    WHERE target_id IS NOT NULL;
CREATE INDEX fhir_idx_reference_url    ON fhir_idx_reference (type, param, url)
    WHERE url IS NOT NULL;
CREATE INDEX fhir_idx_reference_ident  ON fhir_idx_reference (type, param, identifier_value)
    WHERE identifier_value IS NOT NULL;

CREATE TABLE fhir_idx_date (
    rid   BIGINT NOT NULL,
    type  TEXT COLLATE "C" NOT NULL,
    param TEXT COLLATE "C" NOT NULL,
    grp   INTEGER NOT NULL DEFAULT 0,
    pos   INTEGER NOT NULL DEFAULT 0,
    low   BIGINT NOT NULL,
    high  BIGINT NOT NULL,
    -- 1 when this row is its resource's only value of the parameter and spans less than a
    -- day: two bounds on such a parameter are then one range on `low` (see the search SQL)
    fast  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX fhir_idx_date_rid   ON fhir_idx_date (rid, param);
CREATE INDEX fhir_idx_date_value ON fhir_idx_date (type, param, low, high);
-- searches bounded from below (gt, ge, sa) scan by the end of the range
CREATE INDEX fhir_idx_date_high  ON fhir_idx_date (type, param, high, low);
CREATE INDEX fhir_idx_date_fast  ON fhir_idx_date (type, param, fast, low);

CREATE TABLE fhir_idx_number (
    rid   BIGINT NOT NULL,
    type  TEXT COLLATE "C" NOT NULL,
    param TEXT COLLATE "C" NOT NULL,
    grp   INTEGER NOT NULL DEFAULT 0,
    pos   INTEGER NOT NULL DEFAULT 0,
    value DOUBLE PRECISION    NOT NULL,
    low   DOUBLE PRECISION    NOT NULL,
    high  DOUBLE PRECISION    NOT NULL
);
CREATE INDEX fhir_idx_number_rid   ON fhir_idx_number (rid, param);
CREATE INDEX fhir_idx_number_value ON fhir_idx_number (type, param, low, high);

CREATE TABLE fhir_idx_quantity (
    rid    BIGINT NOT NULL,
    type   TEXT COLLATE "C" NOT NULL,
    param  TEXT COLLATE "C" NOT NULL,
    grp    INTEGER NOT NULL DEFAULT 0,
    pos    INTEGER NOT NULL DEFAULT 0,
    system TEXT COLLATE "C",
    code   TEXT COLLATE "C",
    unit   TEXT COLLATE "C",
    value  DOUBLE PRECISION    NOT NULL,
    low    DOUBLE PRECISION    NOT NULL,
    high   DOUBLE PRECISION    NOT NULL
);
CREATE INDEX fhir_idx_quantity_rid   ON fhir_idx_quantity (rid, param);
CREATE INDEX fhir_idx_quantity_value ON fhir_idx_quantity (type, param, low, high);

CREATE TABLE fhir_idx_uri (
    rid   BIGINT NOT NULL,
    type  TEXT COLLATE "C" NOT NULL,
    param TEXT COLLATE "C" NOT NULL,
    grp   INTEGER NOT NULL DEFAULT 0,
    pos   INTEGER NOT NULL DEFAULT 0,
    value TEXT COLLATE "C" NOT NULL
);
CREATE INDEX fhir_idx_uri_rid   ON fhir_idx_uri (rid, param);
CREATE INDEX fhir_idx_uri_value ON fhir_idx_uri (type, param, value);
