-- The CHECK constraints of the message tables (and of FHIR's version table) that list more than two values, rewritten as
-- equalities joined by OR. SQLite evaluates `x IN (a, b, c)` with more than two constants by
-- building a temporary b-tree of the list, and a table's CHECK runs on every row written: one
-- temporary b-tree (opened, filled, closed) per row written to messages, message_content,
-- message_destinations and queue_items, about ten per channel message on the writer thread.
-- Both forms accept the same values (the columns are NOT NULL) and the stored rows do not
-- change, so only the table definitions are edited in place, as SQLite documents for CHECK
-- changes (https://sqlite.org/lang_altertable.html#otheralter); a definition whose text is not
-- the one migration 0001 wrote stays as it is (still correct, only slower).
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (status IN
        (''RECEIVED'', ''FILTERED'', ''TRANSFORMED'', ''QUEUED'', ''SENT'', ''ERROR''))',
    'CHECK (status = ''RECEIVED'' OR status = ''FILTERED'' OR status = ''TRANSFORMED''
        OR status = ''QUEUED'' OR status = ''SENT'' OR status = ''ERROR'')')
WHERE type = 'table' AND name IN ('messages', 'message_destinations');
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (stage IN
        (''RAW'', ''TRANSFORMED'', ''ENCODED'', ''SENT'', ''RESPONSE''))',
    'CHECK (stage = ''RAW'' OR stage = ''TRANSFORMED'' OR stage = ''ENCODED''
        OR stage = ''SENT'' OR stage = ''RESPONSE'')')
WHERE type = 'table' AND name = 'message_content';
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (state IN (''READY'', ''LEASED'', ''DONE'', ''DEAD''))',
    'CHECK (state = ''READY'' OR state = ''LEASED'' OR state = ''DONE'' OR state = ''DEAD'')')
WHERE type = 'table' AND name = 'queue_items';
-- the FHIR history table, one row per resource version written
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (method IN (''C'', ''U'', ''D''))',
    'CHECK (method = ''C'' OR method = ''U'' OR method = ''D'')')
WHERE type = 'table' AND name = 'fhir_version';
-- this connection reads the definitions again
PRAGMA writable_schema = RESET;
-- and every other one too: a schema change moves the schema cookie they check
CREATE TABLE plexus_schema_touch (x INTEGER);
DROP TABLE plexus_schema_touch;
