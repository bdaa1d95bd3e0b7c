//! Helpers shared by the integration tests.
#![allow(dead_code)]

use fhirpath::{Context, EvalError, Item, parse};
use serde_json::Value;

/// Evaluates `expr` on `resource` and renders each item (`toString()` style).
pub fn eval(expr: &str, resource: &Value) -> Vec<String> {
    try_eval(expr, resource).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

/// Evaluates `expr`, returning the error.
pub fn try_eval(expr: &str, resource: &Value) -> Result<Vec<String>, EvalError> {
    let parsed = parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let items = parsed.evaluate(resource, &Context::default())?;
    Ok(items.iter().map(Item::to_string).collect())
}

/// A Patient used by several tests.
pub fn patient() -> Value {
    serde_json::json!({
        "resourceType": "Patient",
        "id": "example",
        "active": true,
        "identifier": [
            {"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}},
            {"system": "http://ns.example/ssn", "value": "999-99-9999"}
        ],
        "name": [
            {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
            {"use": "usual", "given": ["Jim"]},
            {"use": "maiden", "family": "Windsor", "given": ["Peter", "James"], "period": {"end": "2002"}}
        ],
        "telecom": [
            {"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1},
            {"system": "email", "value": "p.chalmers@example.org"}
        ],
        "gender": "male",
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
        "deceasedBoolean": false,
        "address": [
            {"use": "home", "line": ["534 Erewhon St"], "city": "PleasantVille", "state": "Vic", "postalCode": "3999", "country": "AU"}
        ],
        "contact": [{"relationship": [{"coding": [{"code": "N"}]}], "name": {"family": "du Marché", "_family": {"extension": [{"url": "http://example.org/prefix", "valueString": "VV"}]}}}],
        "managingOrganization": {"reference": "Organization/1"},
        "generalPractitioner": [{"reference": "https://example.org/fhir/Practitioner/7"}, {"reference": "#p1"}],
        "contained": [{"resourceType": "Practitioner", "id": "p1", "name": [{"family": "Careful"}]}]
    })
}
