-- Plexus store, PostgreSQL, version 12: nothing changes here (see migrations/sqlite/0012 and
-- 0011 of this folder); the versions of both schemas stay in step.
SELECT 1;
