-- Plexus store, version 13: string index rows say which HumanName or Address part they were
-- converted from (`family`, `city`, …; NULL otherwise).
--
-- A parameter on one part (`Patient.address-city` is `Patient.address.city`) gets no rows of
-- its own any more: searches read the rows of the parameter on the whole element
-- (`address`) that carry the part. Rows such parameters got before this version stay and
-- are still read (a search reads both), until the resource is next written; nothing is
-- rewritten here, so a store whose index values are blind indexes (encryption at rest,
-- keyed by parameter) migrates the same way.
ALTER TABLE fhir_idx_string ADD COLUMN part TEXT;
