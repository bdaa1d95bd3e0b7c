//! FHIR REST server (being written).
