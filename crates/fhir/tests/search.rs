//! Search parsing: every parameter form, modifier, prefix and error.

// The values compared are exact by construction (parsed from the same text).
#![allow(clippy::float_cmp, clippy::unreadable_literal)]

use fhir::defs::ParamType;
use fhir::index::date_range;
use fhir::search::{
    Include, Predicate, Prefix, SearchError, SearchOptions, SearchRequest, SortKey, StringMode,
    Test, TokenSystem, TotalMode, UriMode, canonical_key, parse,
};

fn pairs(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn search(ty: &str, params: &[(&str, &str)]) -> Result<SearchRequest, SearchError> {
    parse(Some(ty), &pairs(params), &SearchOptions::default())
}

fn ok(ty: &str, params: &[(&str, &str)]) -> SearchRequest {
    match search(ty, params) {
        Ok(r) => r,
        Err(e) => panic!("{params:?}: {e}"),
    }
}

/// The single test of a one-parameter, one-value search.
fn one(ty: &str, key: &str, value: &str) -> Predicate {
    let r = ok(ty, &[(key, value)]);
    assert_eq!(r.filters.len(), 1, "{key}={value}");
    assert_eq!(r.filters[0].any.len(), 1, "{key}={value}");
    r.filters[0].any[0].clone()
}

fn test_of(ty: &str, key: &str, value: &str) -> Test {
    one(ty, key, value).test
}

fn err(ty: &str, key: &str, value: &str) -> SearchError {
    match search(ty, &[(key, value)]) {
        Ok(r) => panic!("{key}={value} parsed: {r:?}"),
        Err(e) => e,
    }
}

#[test]
fn defaults_and_paging() {
    let r = ok("Patient", &[]);
    assert_eq!(r.resource_type.as_deref(), Some("Patient"));
    assert_eq!((r.count, r.offset, r.total), (20, 0, TotalMode::Auto));
    let r = ok(
        "Patient",
        &[("_count", "5"), ("_offset", "40"), ("_total", "none")],
    );
    assert_eq!((r.count, r.offset, r.total), (5, 40, TotalMode::None));
    assert_eq!(ok("Patient", &[("_count", "100000")]).count, 1000);
    assert_eq!(ok("Patient", &[("_count", "0")]).count, 0);
    assert_eq!(
        ok("Patient", &[("_total", "estimate")]).total,
        TotalMode::Estimate
    );
    assert_eq!(
        ok("Patient", &[("_total", "accurate")]).total,
        TotalMode::Accurate
    );
    let opts = SearchOptions {
        default_count: 50,
        max_count: 10,
    };
    assert_eq!(parse(Some("Patient"), &[], &opts).map(|r| r.count), Ok(10));
    assert!(matches!(
        err("Patient", "_count", "-1"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_count", "ten"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_offset", ""),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_total", "all"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        search("Patient", &[("_count", "1"), ("_count", "2")]),
        Err(SearchError::InvalidParameter { .. })
    ));
}

#[test]
fn result_params_pass_through() {
    let r = ok(
        "Patient",
        &[
            ("_summary", "count"),
            ("_elements", "id,name"),
            ("_format", "json"),
            ("_pretty", "true"),
        ],
    );
    assert!(r.filters.is_empty());
    assert_eq!(r.result_params.len(), 4);
    assert_eq!(
        r.result_params[1],
        ("_elements".to_owned(), "id,name".to_owned())
    );
}

#[test]
fn unknown_type_and_parameter() {
    assert_eq!(
        err("Patientx", "name", "a"),
        SearchError::UnknownResourceType("Patientx".into())
    );
    let e = err("Patient", "nome", "a");
    assert_eq!(
        e,
        SearchError::UnknownParameter {
            resource_type: "Patient".into(),
            param: "nome".into()
        }
    );
    assert_eq!(e.to_string(), "unknown search parameter 'nome' for Patient");
    assert!(matches!(
        err("Patient", "_text", "a"),
        SearchError::Unsupported { .. }
    ));
    assert!(matches!(
        err("Patient", "_content", "a"),
        SearchError::Unsupported { .. }
    ));
    assert!(matches!(
        err("Location", "near", "1|2|3|km"),
        SearchError::Unsupported { .. }
    ));
}

#[test]
fn and_or_and_empty_values() {
    let r = ok("Patient", &[("name", "a,b"), ("name", "c"), ("family", "")]);
    assert_eq!(r.filters.len(), 2);
    assert_eq!(r.filters[0].any.len(), 2);
    assert_eq!(r.filters[1].any.len(), 1);
    let r = ok("Patient", &[("name", r"a\,b")]);
    assert_eq!(
        r.filters[0].any[0].test,
        Test::String {
            value: "a,b".into(),
            mode: StringMode::StartsWith
        }
    );
}

#[test]
fn string_modes() {
    assert_eq!(
        test_of("Patient", "family", "Müller"),
        Test::String {
            value: "muller".into(),
            mode: StringMode::StartsWith
        }
    );
    assert_eq!(
        test_of("Patient", "family:exact", "Müller"),
        Test::String {
            value: "Müller".into(),
            mode: StringMode::Exact
        }
    );
    assert_eq!(
        test_of("Patient", "address-city:contains", "ÅS"),
        Test::String {
            value: "as".into(),
            mode: StringMode::Contains
        }
    );
    assert_eq!(
        err("Patient", "family:below", "x"),
        SearchError::UnknownModifier {
            param: "family".into(),
            modifier: "below".into()
        }
    );
}

#[test]
fn missing() {
    assert_eq!(
        test_of("Patient", "birthdate:missing", "true"),
        Test::Missing {
            missing: true,
            kind: ParamType::Date
        }
    );
    assert_eq!(
        test_of("Observation", "subject:missing", "false"),
        Test::Missing {
            missing: false,
            kind: ParamType::Reference
        }
    );
    assert!(matches!(
        err("Patient", "gender:missing", "yes"),
        SearchError::InvalidValue { .. }
    ));
}

#[test]
fn token_forms() {
    let tok = |s: TokenSystem, c: Option<&str>, negate| Test::Token {
        system: s,
        code: c.map(str::to_owned),
        negate,
    };
    assert_eq!(
        test_of("Patient", "gender", "male"),
        tok(TokenSystem::Any, Some("male"), false)
    );
    assert_eq!(
        test_of("Observation", "code", "http://loinc.org|8867-4"),
        tok(
            TokenSystem::Is("http://loinc.org".into()),
            Some("8867-4"),
            false
        )
    );
    assert_eq!(
        test_of("Observation", "code", "|x"),
        tok(TokenSystem::None, Some("x"), false)
    );
    assert_eq!(
        test_of("Patient", "identifier", "urn:oid:1.2|"),
        tok(TokenSystem::Is("urn:oid:1.2".into()), None, false)
    );
    assert_eq!(
        test_of("Patient", "gender:not", "male"),
        tok(TokenSystem::Any, Some("male"), true)
    );
    assert_eq!(
        test_of("Observation", "code", r"s|a\|b"),
        tok(TokenSystem::Is("s".into()), Some("a|b"), false)
    );
    assert_eq!(
        test_of("Observation", "code:text", "Heart Rate"),
        Test::TokenText("heart rate".into())
    );
    assert_eq!(
        test_of(
            "Patient",
            "identifier:of-type",
            "http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345"
        ),
        Test::OfType {
            type_system: "http://terminology.hl7.org/CodeSystem/v2-0203".into(),
            type_code: "MR".into(),
            value: "12345".into()
        }
    );
    assert!(matches!(
        err("Patient", "identifier:of-type", "MR|12345"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "code", "a|b|c"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "code:below", "a"),
        SearchError::Unsupported { .. }
    ));
    assert!(matches!(
        err("Observation", "code:in", "http://vs"),
        SearchError::Unsupported { .. }
    ));
    assert!(matches!(
        err("Observation", "code:exact", "a"),
        SearchError::UnknownModifier { .. }
    ));
    // Resource-level tokens.
    assert_eq!(one("Patient", "_id", "abc").param, "_id");
    assert_eq!(
        test_of("Patient", "_tag", "http://s|t"),
        tok(TokenSystem::Is("http://s".into()), Some("t"), false)
    );
    assert_eq!(one("Patient", "_security", "R").param, "_security");
    assert_eq!(
        test_of("Patient", "active", "true"),
        tok(TokenSystem::Any, Some("true"), false)
    );
}

#[test]
fn reference_forms() {
    let r = |t: Option<&str>, id: &str| Test::Reference {
        target_type: t.map(str::to_owned),
        id: id.into(),
    };
    assert_eq!(test_of("Observation", "subject", "123"), r(None, "123"));
    assert_eq!(
        test_of("Observation", "subject", "Patient/123"),
        r(Some("Patient"), "123")
    );
    assert_eq!(
        test_of("Observation", "subject", "Patient/123/_history/2"),
        r(Some("Patient"), "123")
    );
    assert_eq!(
        test_of("Observation", "subject:Patient", "123"),
        r(Some("Patient"), "123")
    );
    assert_eq!(test_of("Observation", "patient", "123"), r(None, "123"));
    assert_eq!(
        test_of("Observation", "subject", "http://other.org/fhir/Patient/1"),
        Test::ReferenceUrl("http://other.org/fhir/Patient/1".into())
    );
    assert_eq!(
        test_of(
            "QuestionnaireResponse",
            "questionnaire",
            "http://x.org/Q/1|2.0"
        ),
        Test::ReferenceUrl("http://x.org/Q/1|2.0".into())
    );
    assert_eq!(
        test_of("Observation", "subject:identifier", "http://hosp/mrn|42"),
        Test::ReferenceIdentifier {
            system: Some("http://hosp/mrn".into()),
            value: "42".into()
        }
    );
    assert_eq!(
        test_of("Observation", "subject:identifier", "42"),
        Test::ReferenceIdentifier {
            system: None,
            value: "42".into()
        }
    );
    assert!(matches!(
        err("Observation", "subject", "Nope/1"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "subject", "Medication/1"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "subject:Patient", "Group/1"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "subject:Medication", "1"),
        SearchError::InvalidParameter { .. }
    ));
    assert!(matches!(
        err("Observation", "subject", "a/b/c"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "subject:exact", "1"),
        SearchError::UnknownModifier { .. }
    ));
}

#[test]
fn dates_and_prefixes() {
    let (low, high) = date_range("2024-03").unwrap_or_default();
    assert_eq!(
        test_of("Patient", "birthdate", "2024-03"),
        Test::Date {
            prefix: Prefix::Eq,
            low,
            high
        }
    );
    for (p, prefix) in [
        ("eq", Prefix::Eq),
        ("ne", Prefix::Ne),
        ("gt", Prefix::Gt),
        ("lt", Prefix::Lt),
        ("ge", Prefix::Ge),
        ("le", Prefix::Le),
        ("sa", Prefix::Sa),
        ("eb", Prefix::Eb),
        ("ap", Prefix::Ap),
    ] {
        assert_eq!(
            test_of("Patient", "birthdate", &format!("{p}2024-03")),
            Test::Date { prefix, low, high }
        );
    }
    let (low, high) = date_range("2024-03-01T10:00:00+01:00").unwrap_or_default();
    assert_eq!(high - low, 999);
    assert_eq!(
        test_of("Observation", "date", "ge2024-03-01T10:00:00+01:00"),
        Test::Date {
            prefix: Prefix::Ge,
            low,
            high
        }
    );
    assert!(matches!(
        test_of("Patient", "_lastUpdated", "gt2024"),
        Test::Date {
            prefix: Prefix::Gt,
            ..
        }
    ));
    let e = err("Patient", "birthdate", "xx2024");
    assert!(
        e.to_string().contains("'xx2024'") && e.to_string().contains("birthdate"),
        "{e}"
    );
    assert!(matches!(
        err("Patient", "birthdate", "2024-13"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "birthdate:exact", "2024"),
        SearchError::UnknownModifier { .. }
    ));
}

#[test]
fn numbers_and_quantities() {
    assert_eq!(
        test_of("RiskAssessment", "probability", "gt0.8"),
        Test::Number {
            prefix: Prefix::Gt,
            value: 0.8,
            low: 0.75,
            high: 0.8500000000000001
        }
    );
    assert_eq!(
        test_of("ChargeItem", "factor-override", "100"),
        Test::Number {
            prefix: Prefix::Eq,
            value: 100.0,
            low: 99.5,
            high: 100.5
        }
    );
    assert!(matches!(
        test_of("ChargeItem", "factor-override", "1e2"),
        Test::Number { value, low, high, .. } if value == 100.0 && low == 50.0 && high == 150.0
    ));
    assert!(matches!(
        err("RiskAssessment", "probability", "abc"),
        SearchError::InvalidValue { .. }
    ));
    assert_eq!(
        test_of(
            "Observation",
            "value-quantity",
            "le5.4|http://unitsofmeasure.org|mg"
        ),
        Test::Quantity {
            prefix: Prefix::Le,
            value: 5.4,
            low: 5.3500000000000005,
            high: 5.45,
            system: Some("http://unitsofmeasure.org".into()),
            code: Some("mg".into())
        }
    );
    assert!(matches!(
        test_of("Observation", "value-quantity", "5.4||mg"),
        Test::Quantity { system: None, code: Some(c), .. } if c == "mg"
    ));
    assert!(matches!(
        test_of("Observation", "value-quantity", "ap5"),
        Test::Quantity {
            prefix: Prefix::Ap,
            system: None,
            code: None,
            ..
        }
    ));
    assert!(matches!(
        err("Observation", "value-quantity", "5|mg"),
        SearchError::InvalidValue { .. }
    ));
}

#[test]
fn uris() {
    let uri = |v: &str, mode| Test::Uri {
        value: v.into(),
        mode,
    };
    assert_eq!(
        test_of("ValueSet", "url", "http://x.org/vs"),
        uri("http://x.org/vs", UriMode::Exact)
    );
    assert_eq!(
        test_of("ValueSet", "url:below", "http://x.org/"),
        uri("http://x.org/", UriMode::Below)
    );
    assert_eq!(
        test_of("ValueSet", "url:above", "http://x.org/vs/1"),
        uri("http://x.org/vs/1", UriMode::Above)
    );
    assert_eq!(
        test_of("Patient", "_profile", "http://p"),
        uri("http://p", UriMode::Exact)
    );
    assert_eq!(
        test_of("Patient", "_source", "urn:s"),
        uri("urn:s", UriMode::Exact)
    );
    assert!(matches!(
        err("ValueSet", "url:contains", "x"),
        SearchError::UnknownModifier { .. }
    ));
}

#[test]
fn composites() {
    let t = test_of(
        "Observation",
        "code-value-quantity",
        "http://loinc.org|8480-6$gt150|http://unitsofmeasure.org|mm[Hg]",
    );
    let Test::Composite(parts) = t else {
        panic!("not composite: {t:?}")
    };
    assert_eq!(parts.len(), 2);
    assert!(matches!(&parts[0], Test::Token { code: Some(c), .. } if c == "8480-6"));
    assert!(
        matches!(&parts[1], Test::Quantity { prefix: Prefix::Gt, code: Some(c), .. } if c == "mm[Hg]")
    );
    let t = test_of("Observation", "component-code-value-concept", r"a$b\$c");
    assert!(
        matches!(&t, Test::Composite(p) if matches!(&p[1], Test::Token { code: Some(c), .. } if c == "b$c"))
    );
    assert!(matches!(
        err("Observation", "code-value-quantity", "a"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "code-value-quantity", "a$b$c"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "code-value-quantity", "a$xyz"),
        SearchError::InvalidValue { .. }
    ));
}

#[test]
fn chains() {
    let p = one("Observation", "subject:Patient.name", "peter");
    assert_eq!(p.param, "subject");
    let Test::Chain {
        target_types,
        predicate,
    } = p.test
    else {
        panic!("not a chain")
    };
    assert_eq!(target_types, vec!["Patient".to_owned()]);
    assert_eq!(predicate.param, "name");
    assert_eq!(
        predicate.test,
        Test::String {
            value: "peter".into(),
            mode: StringMode::StartsWith
        }
    );

    // Without a type: every target that has the parameter.
    let p = one("Observation", "subject.name", "x");
    let Test::Chain { target_types, .. } = &p.test else {
        panic!("not a chain")
    };
    assert!(target_types.contains(&"Patient".to_owned()));
    assert!(target_types.contains(&"Location".to_owned()));
    assert!(!target_types.contains(&"Group".to_owned()));
    assert!(!target_types.contains(&"Medication".to_owned()));

    // Multi-level, with a modifier at the end.
    let p = one(
        "Observation",
        "subject:Patient.organization.name:exact",
        "Acme",
    );
    let Test::Chain { predicate, .. } = p.test else {
        panic!("not a chain")
    };
    assert_eq!(predicate.param, "organization");
    let Test::Chain {
        target_types,
        predicate,
    } = predicate.test
    else {
        panic!("not a chain")
    };
    assert_eq!(target_types, vec!["Organization".to_owned()]);
    assert_eq!(
        predicate.test,
        Test::String {
            value: "Acme".into(),
            mode: StringMode::Exact
        }
    );

    // OR values inside a chain: one chain per value.
    let r = ok("Observation", &[("subject:Patient.gender", "male,female")]);
    assert_eq!(r.filters[0].any.len(), 2);

    assert!(matches!(
        err("Observation", "code.name", "x"),
        SearchError::InvalidParameter { .. }
    ));
    assert!(matches!(
        err("Observation", "subject.nope", "x"),
        SearchError::UnknownParameter { .. }
    ));
    assert!(matches!(
        err("Observation", "subject:Patient.nope", "x"),
        SearchError::UnknownParameter { .. }
    ));
    assert!(matches!(
        err("Observation", "subject:Patient.birthdate", "x"),
        SearchError::InvalidValue { .. }
    ));
}

#[test]
fn reverse_chains() {
    let p = one("Patient", "_has:Observation:patient:code", "1234-5");
    assert_eq!(p.param, "_has");
    let Test::Has {
        source_type,
        reference_param,
        predicate,
    } = p.test
    else {
        panic!("not _has")
    };
    assert_eq!(
        (source_type.as_str(), reference_param.as_str()),
        ("Observation", "patient")
    );
    assert_eq!(predicate.param, "code");

    // Nested.
    let p = one(
        "Patient",
        "_has:Observation:patient:_has:AuditEvent:entity:agent",
        "Practitioner/1",
    );
    let Test::Has { predicate, .. } = p.test else {
        panic!("not _has")
    };
    let Test::Has {
        source_type,
        reference_param,
        predicate,
    } = predicate.test
    else {
        panic!("not nested _has")
    };
    assert_eq!(
        (source_type.as_str(), reference_param.as_str()),
        ("AuditEvent", "entity")
    );
    assert_eq!(predicate.param, "agent");

    assert!(matches!(
        err("Patient", "_has:Observation:patient", "x"),
        SearchError::InvalidParameter { .. }
    ));
    assert!(matches!(
        err("Patient", "_has:Nope:patient:code", "x"),
        SearchError::InvalidParameter { .. }
    ));
    assert!(matches!(
        err("Patient", "_has:Observation:code:code", "x"),
        SearchError::InvalidParameter { .. }
    ));
    assert!(matches!(
        err("Patient", "_has:Observation:nope:code", "x"),
        SearchError::UnknownParameter { .. }
    ));
    assert!(matches!(
        err("Medication", "_has:Observation:patient:code", "x"),
        SearchError::InvalidParameter { .. }
    ));
    assert!(matches!(
        err("Patient", "_has:Observation:patient:nope", "x"),
        SearchError::UnknownParameter { .. }
    ));
}

#[test]
fn sort() {
    let r = ok("Observation", &[("_sort", "-date,code,_lastUpdated")]);
    assert_eq!(
        r.sort,
        vec![
            SortKey {
                param: "date".into(),
                descending: true,
                kind: ParamType::Date
            },
            SortKey {
                param: "code".into(),
                descending: false,
                kind: ParamType::Token
            },
            SortKey {
                param: "_lastUpdated".into(),
                descending: false,
                kind: ParamType::Date
            },
        ]
    );
    assert!(matches!(
        err("Observation", "_sort", "nope"),
        SearchError::UnknownParameter { .. }
    ));
    assert!(matches!(
        err("Observation", "_sort", "code-value-quantity"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "_sort", "date,-date"),
        SearchError::InvalidValue { .. }
    ));
}

#[test]
fn includes() {
    let r = ok(
        "MedicationRequest",
        &[
            ("_include", "MedicationRequest:patient"),
            (
                "_include:iterate",
                "Patient:general-practitioner:Practitioner",
            ),
            ("_include", "MedicationRequest:*"),
            ("_revinclude", "Provenance:target"),
            ("_revinclude:recurse", "Observation:based-on"),
        ],
    );
    assert_eq!(
        r.include,
        vec![
            Include {
                source_type: "MedicationRequest".into(),
                param: "patient".into(),
                target_type: None,
                iterate: false
            },
            Include {
                source_type: "Patient".into(),
                param: "general-practitioner".into(),
                target_type: Some("Practitioner".into()),
                iterate: true
            },
            Include {
                source_type: "MedicationRequest".into(),
                param: "*".into(),
                target_type: None,
                iterate: false
            },
        ]
    );
    assert_eq!(r.revinclude.len(), 2);
    assert!(r.revinclude[1].iterate);
    assert_eq!(ok("Patient", &[("_include", "*")]).include[0].param, "*");
    assert!(matches!(
        err("Patient", "_include", "Patient"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_include", "Nope:x"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_include", "Patient:name"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_include", "Patient:organization:Patient"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_include:deep", "Patient:organization"),
        SearchError::UnknownModifier { .. }
    ));
}

#[test]
fn system_search() {
    let r = parse(
        None,
        &pairs(&[("_id", "1"), ("_tag", "s|c"), ("_sort", "_lastUpdated")]),
        &SearchOptions::default(),
    );
    let r = r.unwrap_or_default();
    assert_eq!(r.resource_type, None);
    assert_eq!(r.filters.len(), 2);
    assert_eq!(r.sort.len(), 1);
    assert!(matches!(
        parse(None, &pairs(&[("name", "x")]), &SearchOptions::default()),
        Err(SearchError::UnknownParameter { resource_type, .. }) if resource_type == "all resource types"
    ));
}

#[test]
fn canonical_keys() {
    let a = ok(
        "Patient",
        &[("identifier", "s|1"), ("name", "b,a"), ("_count", "5")],
    );
    let b = ok("Patient", &[("name", "a,b"), ("identifier", "s|1")]);
    let c = ok("Patient", &[("name", "a"), ("identifier", "s|1")]);
    let d = ok("Practitioner", &[("name", "a,b"), ("identifier", "s|1")]);
    assert_eq!(canonical_key(&a), canonical_key(&b));
    assert_ne!(canonical_key(&a), canonical_key(&c));
    assert_ne!(canonical_key(&b), canonical_key(&d));
    assert!(canonical_key(&a).starts_with("Patient?"));
}

#[test]
fn never_panics_on_odd_input() {
    let odd = [
        "",
        ":",
        "::",
        ".",
        "..",
        "_has",
        "_has:",
        "_has:::",
        "subject.",
        "subject:.",
        "subject:Patient.",
        "é",
        "name:é",
        "code:",
        "_sort",
        "_include",
        "a.b.c.d",
        "_has:Observation:patient:_has",
    ];
    let values = [
        "", ",", "\\", "|", "$", "é", "ge", "gt-", "1e", "\\,", "||", "a$b$", "eq",
    ];
    for key in odd {
        for value in values {
            let _ = search("Observation", &[(key, value)]);
            let _ = search("Patient", &[(key, value)]);
            let _ = parse(None, &pairs(&[(key, value)]), &SearchOptions::default());
        }
    }
    for key in [
        "name",
        "code",
        "subject",
        "date",
        "value-quantity",
        "code-value-quantity",
        "_id",
        "url",
        "probability",
    ] {
        for value in values {
            for ty in ["Observation", "Patient", "ValueSet", "RiskAssessment"] {
                let _ = search(ty, &[(key, value)]);
            }
        }
    }
}
