-- Plexus store, PostgreSQL, version 11: nothing changes here. Version 11 of the SQLite
-- schema fills its control-id index in batches (see migrations/sqlite/0011); PostgreSQL keeps
-- its index on messages(control_id), whose inserts cost a WAL record each rather than a whole
-- page. The versions of both schemas stay in step.
SELECT 1;
