-- Plexus store, PostgreSQL, version 8: no change.
--
-- SQLite's version 8 turns the FHIR index tables into WITHOUT ROWID tables clustered by
-- (rid, param, seq), which drops one B-tree per index row there. PostgreSQL tables are heaps
-- with no clustered form kept up to date on insert, so the tables stay as version 7 left
-- them; the version exists so both backends count their schema versions alike.
SELECT 1;
