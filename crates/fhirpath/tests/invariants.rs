//! The FHIR R4 invariants (constraints of the core resources and data types) parse, and
//! evaluate on minimal resources without errors other than the documented unsupported ones.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use fhirpath::{Context, EvalError, parse};
use serde_json::{Value, json};

const SPEC_DIR: &str = "../../../shared/spec/fhir-r4";

/// (key, path of the element, expression) of a constraint.
type Constraint = (String, String, String);

/// Every constraint in a profiles bundle, read once per file.
fn constraints(file: &'static str) -> Option<Vec<Constraint>> {
    static CACHE: Mutex<BTreeMap<&'static str, Option<Vec<Constraint>>>> =
        Mutex::new(BTreeMap::new());
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache.entry(file).or_insert_with(|| load(file)).clone()
}

fn load(file: &str) -> Option<Vec<Constraint>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(SPEC_DIR)
        .join(file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipped: {} not found", path.display());
        return None;
    };
    let bundle: Value = serde_json::from_str(&text).expect("JSON");
    let mut out = Vec::new();
    for entry in bundle["entry"].as_array().into_iter().flatten() {
        for el in entry["resource"]["snapshot"]["element"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for c in el["constraint"].as_array().into_iter().flatten() {
                if let Some(e) = c["expression"].as_str() {
                    out.push((
                        c["key"].as_str().unwrap_or_default().to_owned(),
                        el["path"].as_str().unwrap_or_default().to_owned(),
                        e.to_owned(),
                    ));
                }
            }
        }
    }
    Some(out)
}

#[test]
fn core_invariants_parse_and_evaluate() {
    for file in ["profiles-resources.json", "profiles-types.json"] {
        let Some(all) = constraints(file) else { return };
        assert!(all.len() > 100, "{file}: {}", all.len());
        let mut failures = Vec::new();
        for (key, path, src) in &all {
            let expr = match parse(src) {
                Ok(e) => e,
                Err(e) => {
                    failures.push(format!("{key} ({path}): {src}: {e}"));
                    continue;
                }
            };
            // Evaluated on the element's resource type, as a validator would at the root.
            let root = path.split('.').next().unwrap_or_default();
            let resource = json!({"resourceType": root, "id": "x", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}});
            match expr.evaluate(&resource, &Context::default()) {
                Ok(_) | Err(EvalError::Unsupported { .. }) => {}
                Err(e) => failures.push(format!("{key} ({path}): {src}: {e}")),
            }
        }
        assert!(failures.is_empty(), "{file}:\n{}", failures.join("\n"));
    }
}

/// Every invariant of the resource's elements holds on a valid resource.
fn assert_invariants_hold(resource: &Value) {
    let Some(all) = constraints("profiles-resources.json") else {
        return;
    };
    let ty = resource["resourceType"].as_str().expect("resourceType");
    let ctx = Context::new().with_resource(resource);
    let mut checked = 0;
    let mut failures = Vec::new();
    for (key, path, src) in all
        .iter()
        .filter(|(_, p, _)| p.split('.').next() == Some(ty))
    {
        let nodes = parse(&path.replace("[x]", ""))
            .expect("element paths parse")
            .evaluate(resource, &ctx)
            .expect("element paths evaluate");
        let expr = parse(src).expect("parses");
        for node in &nodes {
            match expr.evaluate_items(std::slice::from_ref(node), resource, &ctx) {
                Ok(v) if v.is_empty() || v == [fhirpath::Item::Boolean(true)] => checked += 1,
                Ok(v) => failures.push(format!("{key} ({path}): {src} gave {v:?}")),
                Err(EvalError::Unsupported { .. }) => {}
                Err(e) => failures.push(format!("{key} ({path}): {src}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{ty}:\n{}", failures.join("\n"));
    assert!(checked > 3, "{ty}: only {checked} checks");
}

#[test]
fn invariants_hold_on_valid_resources() {
    assert_invariants_hold(&json!({
        "resourceType": "Patient", "id": "example",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Peter</div>"},
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}],
        "name": [{"use": "official", "family": "Chalmers", "given": ["Peter"]}],
        "contact": [{"name": {"family": "du Marché"}, "relationship": [{"text": "N"}]}],
        "telecom": [{"system": "phone", "value": "555"}],
        "link": [{"other": {"reference": "Patient/2"}, "type": "seealso"}],
        "managingOrganization": {"reference": "Organization/1"}
    }));
    assert_invariants_hold(&json!({
        "resourceType": "Observation", "id": "bp", "status": "final",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">BP</div>"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": "Patient/example"},
        "effectiveDateTime": "2012-09-17",
        "referenceRange": [{"low": {"value": 1, "unit": "mmHg"}}],
        "component": [{"code": {"text": "systolic"}, "valueQuantity": {"value": 107, "unit": "mmHg"}}]
    }));
    assert_invariants_hold(&json!({
        "resourceType": "Bundle", "id": "b", "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "p"}}]
    }));
}

#[test]
fn invariants_catch_invalid_resources() {
    let Some(all) = constraints("profiles-resources.json") else {
        return;
    };
    let find = |key: &str| {
        all.iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, e)| e.clone())
            .expect("constraint")
    };
    // obs-6: dataAbsentReason only when there is no value.
    let obs6 = parse(&find("obs-6")).expect("parses");
    let bad = json!({"resourceType": "Observation", "valueString": "x", "dataAbsentReason": {"text": "y"}});
    assert_eq!(
        obs6.evaluate_bool(&bad, &Context::default()),
        Ok(Some(false))
    );
    // pat-1: a contact needs details or an organization.
    let pat1 = parse(&find("pat-1")).expect("parses");
    let p = json!({"resourceType": "Patient", "contact": [{"gender": "male"}]});
    let contact = parse("Patient.contact")
        .expect("parses")
        .evaluate(&p, &Context::default())
        .expect("evaluates");
    let result = pat1
        .evaluate_items(&contact, &p, &Context::default())
        .expect("evaluates");
    assert_eq!(result, [fhirpath::Item::Boolean(false)]);
}
