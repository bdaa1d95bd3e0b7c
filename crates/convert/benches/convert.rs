//! Criterion benchmarks of the HL7 v2 → FHIR conversion (filled in below).

fn main() {}
