-- Plexus store, version 14: the (type, param, high, low) index of date rows holds only the
-- rows that are not `fast`.
--
-- A fast row is its resource's only value of the parameter and spans less than a day, so a
-- bound on its end (`gt`, `ge`, `eb`) is also a bound on its start, which
-- fhir_idx_date_value answers: every search on dates now reads fast rows through that index
-- and the others through this one or fhir_idx_date_slow. Most date rows are fast (a
-- birthDate, an Observation's effectiveDateTime), and each was one more random B-tree insert
-- per write.
DROP INDEX fhir_idx_date_high;
CREATE INDEX fhir_idx_date_high ON fhir_idx_date (type, param, high, low) WHERE fast = 0;
