//! # fhirpath — FHIRPath over FHIR JSON
//!
//! (being written)
