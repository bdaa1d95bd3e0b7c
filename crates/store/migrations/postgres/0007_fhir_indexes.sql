-- Plexus store, PostgreSQL, version 7: fewer index B-trees per FHIR index row (writes were
-- bound by the single writer inserting each row into 3–5 B-trees).
--
-- fhir_idx_string_exact is dropped: every row's `normalized` is the normalization of its
-- `exact` text, so `:exact` searches now look up `normalized` on fhir_idx_string_value and
-- compare `exact` on the few rows found (with encryption at rest, the whole value's row
-- carries the blind index of the whole normalized value, so the same holds).
--
-- fhir_idx_date_fast only serves the rows that are not `fast` (a range over two bounds
-- answers fast rows from fhir_idx_date_value), so it becomes a partial index of those rows.
--
-- No data changes: existing rows stay as they are, only two indexes are rebuilt or dropped.

DROP INDEX fhir_idx_string_exact;

DROP INDEX fhir_idx_date_fast;
CREATE INDEX fhir_idx_date_slow ON fhir_idx_date (type, param, low) WHERE fast = 0;
