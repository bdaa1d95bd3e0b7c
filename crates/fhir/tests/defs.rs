//! The generated FHIR R4 definitions: search parameters, compartment, types and
//! elements, required value sets.

use std::collections::BTreeSet;

use fhir::defs::{
    ParamType, SOURCE_PARAMS, TypeKind, child_element, children, element, is_resource_type,
    patient_compartment, primitive_regex, required_codes, required_value_set, resource_types,
    search_param, search_param_by_url, search_params, type_def,
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

#[test]
fn every_resource_type_has_a_definition() {
    for ty in resource_types() {
        let def = type_def(ty).unwrap();
        assert_eq!(def.kind, TypeKind::Resource);
        assert!(!def.is_abstract);
        assert!(
            def.elements.windows(2).all(|w| w[0].path < w[1].path),
            "{ty}"
        );
        assert!(element(ty, "id").is_some(), "{ty}");
    }
    let resource = type_def("Resource").unwrap();
    assert!(resource.is_abstract);
    assert_eq!(resource.base, None);
    assert_eq!(type_def("Patient").unwrap().base, Some("DomainResource"));
    assert_eq!(type_def("string").unwrap().kind, TypeKind::Primitive);
    assert_eq!(type_def("HumanName").unwrap().kind, TypeKind::Complex);
    // Constraining profiles are not base types.
    assert!(type_def("SimpleQuantity").is_none());
}

#[test]
fn elements_of_patient_and_observation() {
    let name = element("Patient", "Patient.contact.name").unwrap();
    assert_eq!(name.types, ["HumanName"]);
    assert_eq!((name.min, name.max), (0, Some(1)));
    assert_eq!(element("Patient", "contact.name"), Some(name));
    let contact = element("Patient", "contact").unwrap();
    assert_eq!(contact.types, ["BackboneElement"]);
    assert!(contact.is_array());
    let kids: Vec<&str> = children("Patient", "Patient.contact")
        .map(fhir::defs::ElementDef::name)
        .collect();
    assert!(kids.contains(&"name"));
    assert!(kids.contains(&"relationship"));
    assert!(kids.contains(&"extension"));
    assert!(!kids.iter().any(|k| k.contains('.')));
    assert_eq!(
        element("Patient", "gender").unwrap().required_binding,
        Some("http://hl7.org/fhir/ValueSet/administrative-gender")
    );
    assert_eq!(element("Patient", "id").unwrap().types, ["id"]);
    let value = element("Observation", "Observation.value[x]").unwrap();
    assert!(value.choice);
    assert!(value.types.contains(&"Quantity"));
    assert!(value.types.contains(&"CodeableConcept"));
    let subject = element("Observation", "subject").unwrap();
    assert_eq!(subject.types, ["Reference"]);
    assert!(subject.target_profiles.contains(&"Patient"));
    assert!(subject.target_profiles.contains(&"Group"));
    let status = element("Observation", "status").unwrap();
    assert_eq!(status.min, 1);
    let item = element("Questionnaire", "item.item").unwrap();
    assert_eq!(item.content_reference, Some("Questionnaire.item"));
    assert!(item.types.is_empty());
    assert!(element("Patient", "nope").is_none());
    assert!(element("Nope", "id").is_none());
    assert_eq!(children("Nope", "Nope").count(), 0);
    let family = element("HumanName", "family").unwrap();
    assert_eq!(family.types, ["string"]);
}

/// `child_element` finds what `element` finds at `parent.name`, or the choice `name[x]`.
#[test]
fn child_elements_by_parent_path_and_name() {
    let found = |t, parent, name| child_element(t, parent, name).map(|(e, c)| (e.path, c));
    assert_eq!(
        found("Patient", "Patient.contact", "name"),
        Some(("Patient.contact.name", false))
    );
    assert_eq!(
        found("Patient", "Patient", "contact"),
        Some(("Patient.contact", false))
    );
    assert_eq!(
        found("Observation", "Observation", "value"),
        Some(("Observation.value[x]", true))
    );
    assert_eq!(
        found("Observation", "Observation.component", "value"),
        Some(("Observation.component.value[x]", true))
    );
    assert_eq!(
        found("HumanName", "HumanName", "family"),
        Some(("HumanName.family", false))
    );
    assert_eq!(
        found("Questionnaire", "Questionnaire.item", "item"),
        Some(("Questionnaire.item.item", false))
    );
    // a prefix of an element's name, a name that only starts the path, unknown names
    assert_eq!(found("Patient", "Patient", "contac"), None);
    assert_eq!(
        found("Patient", "Patient", "contact.name"),
        Some(("Patient.contact.name", false))
    );
    assert_eq!(found("Patient", "Patient", "valu"), None);
    assert_eq!(found("Patient", "Patient", "nope"), None);
    assert_eq!(found("Nope", "Nope", "id"), None);
    for (t, parent, name) in [
        ("Patient", "Patient", "gender"),
        ("Observation", "Observation", "subject"),
        ("Patient", "Patient.contact", "telecom"),
    ] {
        assert_eq!(
            child_element(t, parent, name).map(|(e, _)| e),
            element(t, &format!("{parent}.{name}"))
        );
    }
}

#[test]
fn primitive_regexes() {
    assert_eq!(primitive_regex("id"), Some("[A-Za-z0-9\\-\\.]{1,64}"));
    assert!(primitive_regex("dateTime").is_some());
    assert_eq!(primitive_regex("xhtml"), None);
    assert_eq!(primitive_regex("HumanName"), None);
}

#[test]
fn required_value_sets() {
    let gender =
        required_codes("http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1").unwrap();
    assert_eq!(gender, ["female", "male", "other", "unknown"]);
    let vs = required_value_set("http://hl7.org/fhir/ValueSet/administrative-gender").unwrap();
    assert_eq!(vs.systems, ["http://hl7.org/fhir/administrative-gender"]);
    assert!(
        required_codes("http://hl7.org/fhir/ValueSet/observation-status")
            .unwrap()
            .contains(&"final")
    );
    // UCUM, MIME types are not expandable here.
    assert_eq!(
        required_codes("http://hl7.org/fhir/ValueSet/ucum-units"),
        None
    );
    assert_eq!(
        required_codes("http://hl7.org/fhir/ValueSet/mimetypes"),
        None
    );
    assert!(
        !required_value_set("http://hl7.org/fhir/ValueSet/mimetypes")
            .unwrap()
            .not_expandable
            .is_empty()
    );
    // Every required binding of the tables has an entry, and expanded ones have sorted codes.
    for ty in resource_types() {
        for e in type_def(ty).unwrap().elements {
            if let Some(url) = e.required_binding {
                let vs = required_value_set(url).unwrap();
                if let Some(codes) = vs.codes {
                    assert!(codes.windows(2).all(|w| w[0] < w[1]), "{url}");
                }
            }
        }
    }
}
