//! Every FHIR R4 SearchParameter expression parses and evaluates, and key parameters extract
//! the expected values from realistic resources.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use fhirpath::{Context, Item, parse};
use serde_json::{Value, json};

const SPEC: &str = "../../../shared/spec/fhir-r4/search-parameters.json";

/// (SearchParameter id, base types, expression, whether it is a component expression).
type Param = (String, Vec<String>, String, bool);

/// Every expression in the bundle, read once.
fn expressions() -> Option<Vec<Param>> {
    static CACHE: OnceLock<Option<Vec<Param>>> = OnceLock::new();
    CACHE.get_or_init(load).clone()
}

fn load() -> Option<Vec<Param>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SPEC);
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipped: {} not found", path.display());
        return None;
    };
    let bundle: Value = serde_json::from_str(&text).expect("search-parameters.json is JSON");
    let entries = bundle["entry"].as_array().expect("entries");
    assert_eq!(entries.len(), 1378);
    let mut out = Vec::new();
    for entry in entries {
        let r = &entry["resource"];
        let id = r["id"].as_str().unwrap_or_default().to_owned();
        let bases: Vec<String> = r["base"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b.as_str().map(str::to_owned))
            .collect();
        if let Some(e) = r["expression"].as_str() {
            out.push((id.clone(), bases.clone(), e.to_owned(), false));
        }
        for c in r["component"].as_array().into_iter().flatten() {
            if let Some(e) = c["expression"].as_str() {
                out.push((id.clone(), bases.clone(), e.to_owned(), true));
            }
        }
    }
    Some(out)
}

#[test]
fn every_expression_parses_and_evaluates_on_minimal_resources() {
    let Some(all) = expressions() else { return };
    let mut parsed = 0;
    let mut evaluated = 0;
    for (id, bases, src, _) in &all {
        let expr = parse(src).unwrap_or_else(|e| panic!("{id}: {src}: {e}"));
        parsed += 1;
        for base in bases {
            let resource = json!({"resourceType": base, "id": "x"});
            let items = expr
                .evaluate(&resource, &Context::default())
                .unwrap_or_else(|e| panic!("{id} on {base}: {src}: {e}"));
            // Only `Resource.id`-like and self-referencing expressions find anything here.
            assert!(items.len() <= 2, "{id} on {base}: {items:?}");
            evaluated += 1;
        }
    }
    assert_eq!(
        parsed, 1471,
        "1,378 parameters: 1,375 expressions and 96 component expressions"
    );
    assert!(evaluated > 1471, "{evaluated}");
}

/// The values of search parameter `id` (by SearchParameter id) on `resource`, rendered.
fn extract(id: &str, resource: &Value) -> Vec<String> {
    let all = expressions().expect("spec present");
    let (_, _, src, _) = all
        .iter()
        .find(|(i, _, _, c)| i == id && !c)
        .unwrap_or_else(|| panic!("no parameter {id}"));
    let items = parse(src)
        .expect("parses")
        .evaluate(resource, &Context::default())
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    items.iter().map(render).collect()
}

/// Renders strings as themselves and objects as compact JSON.
fn render(item: &Item<'_>) -> String {
    item.to_string()
}

fn components(id: &str, focus: &Value, resource: &Value) -> Vec<Vec<String>> {
    let all = expressions().expect("spec present");
    all.iter()
        .filter(|(i, _, _, c)| i == id && *c)
        .map(|(_, _, src, _)| {
            let ctx = Context::new().with_resource(resource);
            parse(src)
                .expect("parses")
                .evaluate(focus, &ctx)
                .unwrap_or_else(|e| panic!("{id}: {src}: {e}"))
                .iter()
                .map(render)
                .collect()
        })
        .collect()
}

fn present() -> bool {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(SPEC).exists()
}

#[test]
fn patient_parameters() {
    if !present() {
        println!("skipped: spec absent");
        return;
    }
    let p = common::patient();
    assert_eq!(extract("individual-family", &p), ["Chalmers", "Windsor"]);
    assert_eq!(extract("individual-given", &p), ["Peter", "James", "Jim"]);
    assert_eq!(extract("Patient-name", &p).len(), 3);
    assert_eq!(extract("Patient-identifier", &p).len(), 2);
    assert_eq!(extract("individual-birthdate", &p), ["1974-12-25"]);
    assert_eq!(extract("individual-address-city", &p), ["PleasantVille"]);
    assert_eq!(extract("individual-gender", &p), ["male"]);
    assert_eq!(
        extract("individual-email", &p),
        ["{\"system\":\"email\",\"value\":\"p.chalmers@example.org\"}"]
    );
    assert_eq!(extract("individual-phone", &p).len(), 1);
    assert_eq!(extract("Patient-active", &p), ["true"]);
    assert_eq!(extract("Patient-deceased", &p), ["false"]);
    assert_eq!(
        extract("Patient-organization", &p),
        ["{\"reference\":\"Organization/1\"}"]
    );
    assert_eq!(extract("Patient-general-practitioner", &p).len(), 2);
    assert_eq!(extract("Resource-id", &p), ["example"]);
}

fn observation() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "bp",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": "Patient/example"},
        "performer": [{"reference": "Practitioner/1"}],
        "effectiveDateTime": "2012-09-17",
        "valueQuantity": {"value": 107, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 107, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 60, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
        ]
    })
}

#[test]
fn observation_parameters() {
    if !present() {
        println!("skipped: spec absent");
        return;
    }
    let o = observation();
    assert_eq!(extract("clinical-code", &o).len(), 1);
    assert_eq!(
        extract("Observation-value-quantity", &o),
        [
            "{\"code\":\"mm[Hg]\",\"system\":\"http://unitsofmeasure.org\",\"unit\":\"mmHg\",\"value\":107}"
        ]
    );
    assert_eq!(
        extract("clinical-patient", &o),
        ["{\"reference\":\"Patient/example\"}"]
    );
    assert_eq!(extract("Observation-subject", &o).len(), 1);
    assert_eq!(extract("Observation-performer", &o).len(), 1);
    assert_eq!(extract("clinical-date", &o), ["2012-09-17"]);
    assert_eq!(extract("Observation-category", &o).len(), 1);
    assert_eq!(extract("Observation-combo-code", &o).len(), 3);
    assert_eq!(extract("Observation-component-value-quantity", &o).len(), 2);
    assert_eq!(
        extract("Observation-combo-value-quantity", &o).len(),
        2,
        "107 mmHg twice is one value"
    );
    assert_eq!(
        extract("Observation-value-string", &o),
        Vec::<String>::new()
    );
    // Composite: evaluated per component, sub-expressions relative to it.
    let comp = extract("Observation-component-code-value-quantity", &o);
    assert_eq!(comp.len(), 2);
    let comp0 = &o["component"][0];
    let values = components("Observation-component-code-value-quantity", comp0, &o);
    assert_eq!(values.len(), 2);
    assert_eq!(values[0].len(), 1);
    assert!(values[1][0].contains("107"));
    // A patient reference to a Group is not the patient parameter.
    let mut g = o.clone();
    g["subject"] = json!({"reference": "Group/1"});
    assert_eq!(extract("clinical-patient", &g), Vec::<String>::new());
    assert_eq!(extract("Observation-subject", &g).len(), 1);
}

#[test]
fn encounter_condition_medication_parameters() {
    if !present() {
        println!("skipped: spec absent");
        return;
    }
    let e = json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
        "subject": {"reference": "Patient/1"}, "period": {"start": "2020-01-01T10:00:00Z", "end": "2020-01-01T11:00:00Z"},
        "participant": [{"individual": {"reference": "Practitioner/2"}}], "length": {"value": 60, "unit": "min"}});
    assert_eq!(extract("Encounter-class", &e), ["{\"code\":\"AMB\"}"]);
    assert_eq!(extract("clinical-patient", &e).len(), 1);
    assert_eq!(extract("clinical-date", &e).len(), 1);
    assert_eq!(extract("Encounter-practitioner", &e).len(), 1);
    assert_eq!(extract("Encounter-length", &e).len(), 1);
    assert_eq!(extract("Encounter-status", &e), ["finished"]);

    let c = json!({"resourceType": "Condition", "code": {"text": "x"}, "subject": {"reference": "Patient/1"},
        "onsetDateTime": "2019-05-01", "abatementString": "in remission", "clinicalStatus": {"coding": [{"code": "active"}]}});
    assert_eq!(extract("Condition-onset-date", &c), ["2019-05-01"]);
    assert_eq!(extract("Condition-abatement-string", &c), ["in remission"]);
    assert_eq!(extract("Condition-onset-age", &c), Vec::<String>::new());
    assert_eq!(extract("clinical-patient", &c).len(), 1);
    assert_eq!(extract("clinical-code", &c).len(), 1);
    assert_eq!(extract("Condition-clinical-status", &c).len(), 1);

    let m = json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "582620"}]},
        "subject": {"reference": "Patient/1"}, "authoredOn": "2015-01-15"});
    assert_eq!(extract("clinical-code", &m).len(), 1);
    assert_eq!(extract("medications-medication", &m), Vec::<String>::new());
    assert_eq!(extract("clinical-patient", &m).len(), 1);
    assert_eq!(extract("MedicationRequest-authoredon", &m), ["2015-01-15"]);
    let mut m2 = m.clone();
    m2.as_object_mut()
        .unwrap()
        .remove("medicationCodeableConcept");
    m2["medicationReference"] = json!({"reference": "Medication/5"});
    assert_eq!(extract("clinical-code", &m2), Vec::<String>::new());
    assert_eq!(extract("medications-medication", &m2).len(), 1);
}

#[test]
fn bundle_parameters() {
    if !present() {
        println!("skipped: spec absent");
        return;
    }
    let b = json!({"resourceType": "Bundle", "type": "document", "identifier": {"value": "d1"}, "timestamp": "2020-02-02T00:00:00Z",
    "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Composition", "id": "c", "title": "Doc"}},
        {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Patient", "id": "p"}}
    ]});
    let comp = extract("Bundle-composition", &b);
    assert_eq!(comp.len(), 1);
    assert!(comp[0].contains("Composition"));
    assert_eq!(extract("Bundle-type", &b), ["document"]);
    assert_eq!(extract("Bundle-timestamp", &b), ["2020-02-02T00:00:00Z"]);
    assert_eq!(extract("Bundle-identifier", &b).len(), 1);
    // The entry's resource is typed by its resourceType.
    let e = parse("Bundle.entry.resource.ofType(Patient).id").unwrap();
    let ids: BTreeSet<String> = e
        .evaluate(&b, &Context::default())
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(ids, BTreeSet::from(["p".to_owned()]));
}
