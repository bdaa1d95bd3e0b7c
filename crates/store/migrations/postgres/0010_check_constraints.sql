-- Nothing to change on PostgreSQL: SQLite's migration 0010 rewrites CHECK constraints that
-- SQLite evaluates slowly; PostgreSQL evaluates `x IN (...)` lists in place. The version is
-- kept in step with SQLite's.
SELECT 1;
