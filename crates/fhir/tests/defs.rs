//! The generated FHIR R4 definitions: search parameters, compartment.

use std::collections::BTreeSet;

use fhir::defs::{
    ParamType, SOURCE_PARAMS, is_resource_type, patient_compartment, resource_types, search_param,
    search_param_by_url, search_params,
};

#[test]
fn every_source_parameter_is_represented() {
    assert_eq!(SOURCE_PARAMS, 1378);
    let mut urls = BTreeSet::new();
    for ty in resource_types() {
        for p in search_params(ty) {
            urls.insert(p.url);
        }
    }
    assert_eq!(urls.len(), 1378);
    for url in &urls {
        assert_eq!(search_param_by_url(url).map(|p| p.url), Some(*url));
    }
}

#[test]
fn resource_types_are_concrete_and_sorted() {
    let types = resource_types();
    // The 145 of R4 that any-type reference parameters list, plus Parameters and the
    // SubscriptionStatus backport of the definitions package.
    assert_eq!(types.len(), 147);
    assert!(types.windows(2).all(|w| w[0] < w[1]));
    assert!(is_resource_type("Patient"));
    assert!(!is_resource_type("Resource"));
    assert!(!is_resource_type("DomainResource"));
    assert!(!is_resource_type("HumanName"));
    assert!(!is_resource_type("patient"));
}

#[test]
fn patient_parameters() {
    for code in [
        "name",
        "family",
        "birthdate",
        "identifier",
        "general-practitioner",
    ] {
        assert!(search_param("Patient", code).is_some(), "{code}");
    }
    let birthdate = search_param("Patient", "birthdate").unwrap();
    assert_eq!(birthdate.kind, ParamType::Date);
    assert_eq!(birthdate.expression, "Patient.birthDate");
    assert_eq!(
        search_param("Patient", "identifier").unwrap().kind,
        ParamType::Token
    );
    let gp = search_param("Patient", "general-practitioner").unwrap();
    assert_eq!(gp.kind, ParamType::Reference);
    assert_eq!(
        gp.targets,
        ["Organization", "Practitioner", "PractitionerRole"]
    );
    // Resource and DomainResource parameters apply.
    assert_eq!(
        search_param("Patient", "_tag").unwrap().expression,
        "Resource.meta.tag"
    );
    assert_eq!(search_param("Patient", "_text").unwrap().expression, "");
    // Bundle is not a DomainResource.
    assert!(search_param("Bundle", "_id").is_some());
    assert!(search_param("Bundle", "_text").is_none());
    assert!(search_param("Nope", "_id").is_none());
    assert_eq!(search_params("Nope").count(), 0);
}

#[test]
fn composite_components() {
    let p = search_param("Observation", "code-value-quantity").unwrap();
    assert_eq!(p.kind, ParamType::Composite);
    assert_eq!(p.components.len(), 2);
    assert_eq!(
        p.components[0].definition,
        "http://hl7.org/fhir/SearchParameter/clinical-code"
    );
    for c in p.components {
        assert!(
            search_param_by_url(c.definition).is_some(),
            "{}",
            c.definition
        );
    }
}

#[test]
fn shared_parameters_have_the_expression_of_their_type() {
    let p = search_param("Observation", "patient").unwrap();
    assert_eq!(
        p.url,
        "http://hl7.org/fhir/SearchParameter/clinical-patient"
    );
    assert!(p.expression.contains("Observation."));
    assert!(!p.expression.contains("Condition"));
    assert!(!p.expression.contains("AllergyIntolerance"));
    let c = search_param("Condition", "code").unwrap();
    assert_eq!(c.expression, "Condition.code");
    // Every expression mentions only its own type (or is a Resource-level one).
    for ty in resource_types() {
        for p in search_params(ty) {
            let e = p.expression;
            assert!(
                e.is_empty() || e.starts_with("Resource.") || e.contains(ty) || !e.contains('.'),
                "{ty}.{}: {e}",
                p.code
            );
        }
    }
}

#[test]
fn patient_compartment_links() {
    let obs = patient_compartment("Observation");
    assert!(obs.contains(&"subject"));
    assert!(obs.contains(&"performer"));
    assert!(patient_compartment("Organization").is_empty());
    assert!(patient_compartment("Nope").is_empty());
    for ty in resource_types() {
        for code in patient_compartment(ty) {
            assert!(
                *code == "{def}" || search_param(ty, code).is_some(),
                "{ty}.{code}"
            );
        }
    }
}
