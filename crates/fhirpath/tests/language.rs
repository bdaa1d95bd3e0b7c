//! Unit tests of paths, operators and functions on small resources.

mod common;

use common::{eval, patient, try_eval};
use fhirpath::{ChildType, Context, EvalError, Item, Model, parse};
use serde_json::json;

#[test]
fn paths_flatten_and_skip_missing() {
    let p = patient();
    assert_eq!(
        eval("Patient.name.given", &p),
        ["Peter", "James", "Jim", "Peter", "James"]
    );
    assert_eq!(eval("name.family", &p), ["Chalmers", "Windsor"]);
    assert_eq!(eval("Patient.name.suffix", &p), Vec::<String>::new());
    assert_eq!(eval("Resource.id", &p), ["example"]);
    assert_eq!(eval("DomainResource.id", &p), ["example"]);
    assert_eq!(eval("Observation.id", &p), Vec::<String>::new());
    assert_eq!(eval("Patient.address.city", &p), ["PleasantVille"]);
    assert_eq!(eval("Patient.name[1].given", &p), ["Jim"]);
    assert_eq!(eval("Patient.name[5].given", &p), Vec::<String>::new());
    assert_eq!(eval("Patient.`gender`", &p), ["male"]);
}

#[test]
fn choice_elements_and_types() {
    let obs = json!({"resourceType": "Observation", "valueQuantity": {"value": 5.4, "unit": "mg", "code": "mg"},
        "component": [{"valueString": "x"}, {"valueDateTime": "2020-01-01"}, {"valueCodeableConcept": {"text": "t"}}]});
    assert_eq!(eval("Observation.value.value", &obs), ["5.4"]);
    assert_eq!(eval("Observation.value is Quantity", &obs), ["true"]);
    assert_eq!(eval("Observation.value is FHIR.Quantity", &obs), ["true"]);
    assert_eq!(
        eval("Observation.value is System.Quantity", &obs),
        ["false"]
    );
    assert_eq!(eval("(Observation.value as Quantity).unit", &obs), ["mg"]);
    assert_eq!(eval("Observation.value.as(Quantity).unit", &obs), ["mg"]);
    assert_eq!(
        eval("Observation.value.ofType(string)", &obs),
        Vec::<String>::new()
    );
    assert_eq!(
        eval("Observation.component.value.ofType(string)", &obs),
        ["x"]
    );
    assert_eq!(
        eval("Observation.component.value.ofType(String)", &obs),
        ["x"]
    );
    assert_eq!(
        eval("Observation.component.value.as(DateTime)", &obs),
        ["2020-01-01"]
    );
    assert_eq!(
        eval("Observation.component.value.as(dateTime)", &obs),
        ["2020-01-01"]
    );
    assert_eq!(
        eval(
            "(Observation.component.value as CodeableConcept).text",
            &obs
        ),
        ["t"]
    );
    assert!(matches!(
        try_eval("Observation.component.value.is(CodeableConcept)", &obs),
        Err(EvalError::NotSingleton { .. })
    ));
    assert_eq!(
        eval("Observation.component[2].value.is(CodeableConcept)", &obs),
        ["true"]
    );
    assert_eq!(eval("Observation is Resource", &obs), ["true"]);
    assert_eq!(eval("Observation is DomainResource", &obs), ["true"]);
    assert_eq!(eval("Observation.is(Patient)", &obs), ["false"]);
    assert_eq!(eval("'a' is String", &obs), ["true"]);
    assert_eq!(eval("1 is Integer", &obs), ["true"]);
    assert_eq!(eval("1.5 is Decimal", &obs), ["true"]);
    let age = json!({"resourceType": "Condition", "onsetAge": {"value": 4, "unit": "a"}});
    assert_eq!(eval("Condition.onset.as(Age).value", &age), ["4"]);
    assert_eq!(eval("Condition.onset.as(Quantity).value", &age), ["4"]);
    assert_eq!(
        eval("Condition.onset.as(Range)", &age),
        Vec::<String>::new()
    );
}

#[test]
fn primitive_extensions() {
    let p = patient();
    assert_eq!(eval("Patient.birthDate", &p), ["1974-12-25"]);
    assert_eq!(
        eval(
            "Patient.birthDate.extension('http://hl7.org/fhir/StructureDefinition/patient-birthTime').value",
            &p
        ),
        ["1974-12-25T14:35:45-05:00"]
    );
    assert_eq!(
        eval("Patient.contact.name.family.extension.value", &p),
        ["VV"]
    );
    let only_ext = json!({"resourceType": "Patient", "_gender": {"extension": [{"url": "u", "valueCode": "x"}]},
        "name": [{"given": ["A", null], "_given": [null, {"extension": [{"url": "v", "valueString": "B"}]}]}]});
    assert_eq!(eval("Patient.gender.exists()", &only_ext), ["true"]);
    assert_eq!(eval("Patient.gender.hasValue()", &only_ext), ["false"]);
    assert_eq!(eval("Patient.name.given.count()", &only_ext), ["2"]);
    assert_eq!(
        eval("Patient.name.given.extension('v').value", &only_ext),
        ["B"]
    );
    assert_eq!(eval("Patient.birthDate.hasValue()", &p), ["true"]);
    assert_eq!(eval("Patient.birthDate.getValue()", &p), ["1974-12-25"]);
    assert_eq!(eval("Patient.name.hasValue()", &p), ["false"]);
}

#[test]
fn existence_and_subsetting() {
    let p = patient();
    assert_eq!(eval("Patient.name.exists()", &p), ["true"]);
    assert_eq!(eval("Patient.photo.exists()", &p), ["false"]);
    assert_eq!(eval("Patient.photo.empty()", &p), ["true"]);
    assert_eq!(eval("Patient.name.exists(use = 'usual')", &p), ["true"]);
    assert_eq!(eval("Patient.name.exists(use = 'nickname')", &p), ["false"]);
    assert_eq!(eval("Patient.name.given.first()", &p), ["Peter"]);
    assert_eq!(eval("Patient.name.given.last()", &p), ["James"]);
    assert_eq!(eval("Patient.name.given.tail().count()", &p), ["4"]);
    assert_eq!(eval("Patient.name.given.skip(3)", &p), ["Peter", "James"]);
    assert_eq!(eval("Patient.name.given.take(2)", &p), ["Peter", "James"]);
    assert_eq!(
        eval("Patient.name.given.distinct()", &p),
        ["Peter", "James", "Jim"]
    );
    assert_eq!(eval("Patient.name.given.isDistinct()", &p), ["false"]);
    assert_eq!(eval("Patient.gender.single()", &p), ["male"]);
    assert!(matches!(
        try_eval("Patient.name.single()", &p),
        Err(EvalError::NotSingleton { count: 3, .. })
    ));
    assert_eq!(eval("Patient.name.all(given.exists())", &p), ["true"]);
    assert_eq!(eval("Patient.name.all(family.exists())", &p), ["false"]);
    assert_eq!(eval("(true | false).allTrue()", &p), ["false"]);
    assert_eq!(eval("(true | false).anyTrue()", &p), ["true"]);
    assert_eq!(eval("(false).allFalse()", &p), ["true"]);
    assert_eq!(eval("{}.anyFalse()", &p), ["false"]);
    assert_eq!(
        eval("Patient.name.where(use = 'official').given", &p),
        ["Peter", "James"]
    );
    assert_eq!(
        eval("Patient.name.select(given.first())", &p),
        ["Peter", "Jim", "Peter"]
    );
    assert_eq!(
        eval("Patient.name.where($this.use = 'usual').given", &p),
        ["Jim"]
    );
    assert_eq!(eval("Patient.name.select($index)", &p), ["0", "1", "2"]);
    assert_eq!(
        eval("Patient.telecom.where(system = 'email').value", &p),
        ["p.chalmers@example.org"]
    );
}

#[test]
fn union_combine_and_sets() {
    let p = patient();
    assert_eq!(
        eval("Patient.name.given | Patient.name.family", &p),
        ["Peter", "James", "Jim", "Chalmers", "Windsor"]
    );
    assert_eq!(
        eval("Patient.name.given.union(Patient.name.family).count()", &p),
        ["5"]
    );
    assert_eq!(
        eval(
            "Patient.name.given.combine(Patient.name.family).count()",
            &p
        ),
        ["7"]
    );
    assert_eq!(eval("(1 | 2 | 3).intersect(2 | 3 | 4)", &p), ["2", "3"]);
    assert_eq!(eval("(1 | 2 | 3).exclude(2)", &p), ["1", "3"]);
    assert_eq!(eval("(1 | 2).subsetOf(1 | 2 | 3)", &p), ["true"]);
    assert_eq!(eval("(1 | 2).supersetOf(3)", &p), ["false"]);
    assert_eq!(eval("2 in (1 | 2)", &p), ["true"]);
    assert_eq!(eval("(1 | 2) contains 3", &p), ["false"]);
    assert_eq!(eval("{} in (1 | 2)", &p), Vec::<String>::new());
}

#[test]
fn three_valued_logic() {
    let p = patient();
    let cases = [
        ("true and {}", vec![]),
        ("false and {}", vec!["false"]),
        ("{} and false", vec!["false"]),
        ("true or {}", vec!["true"]),
        ("{} or false", vec![]),
        ("true xor false", vec!["true"]),
        ("true xor {}", vec![]),
        ("false implies {}", vec!["true"]),
        ("{} implies true", vec!["true"]),
        ("true implies {}", vec![]),
        ("true implies false", vec!["false"]),
        ("{}.not()", vec![]),
        ("true.not()", vec!["false"]),
        ("Patient.active and Patient.gender = 'male'", vec!["true"]),
        (
            "Patient.deceased.exists() and Patient.deceased != false",
            vec!["false"],
        ),
    ];
    for (expr, want) in cases {
        assert_eq!(eval(expr, &p), want, "{expr}");
    }
}

#[test]
fn comparison_and_equality() {
    let p = patient();
    let cases = [
        ("1 = 1", vec!["true"]),
        ("1 = 1.0", vec!["true"]),
        ("1 != 2", vec!["true"]),
        ("'a' = 'a'", vec!["true"]),
        ("'a' = {}", vec![]),
        ("'A b' ~ 'a  B'", vec!["true"]),
        ("'a' !~ 'b'", vec!["true"]),
        ("1 < 2", vec!["true"]),
        ("2.5 >= 2", vec!["true"]),
        ("'abc' < 'abd'", vec!["true"]),
        ("@2020-01-01 < @2020-01-02", vec!["true"]),
        ("@2020-01 < @2020-01-02", vec![]),
        ("@2020-01-01 = @2020-01-01", vec!["true"]),
        ("@2020 = @2020-01", vec![]),
        (
            "@2020-01-01T10:00:00Z = @2020-01-01T11:00:00+01:00",
            vec!["true"],
        ),
        ("@T10:00 < @T11:00", vec!["true"]),
        ("Patient.birthDate < @2000-01-01", vec!["true"]),
        ("Patient.birthDate > '1970'", vec!["true"]),
        ("Patient.birthDate = @1974-12-25", vec!["true"]),
        ("5 'mg' = 5 'mg'", vec!["true"]),
        ("5 'mg' < 6 'mg'", vec!["true"]),
        ("Patient.name.given = Patient.name.given", vec!["true"]),
        ("Patient.name[0] = Patient.name[2]", vec!["false"]),
        (
            "Patient.name[0].given = Patient.name[2].given",
            vec!["true"],
        ),
        ("Patient.telecom.rank = 1", vec!["true"]),
        ("(1 | 2) = (1 | 2)", vec!["true"]),
        ("(1 | 2) = (2 | 1)", vec!["false"]),
        ("(1 | 2) ~ (2 | 1)", vec!["true"]),
    ];
    for (expr, want) in cases {
        assert_eq!(eval(expr, &p), want, "{expr}");
    }
    assert!(matches!(
        try_eval("Patient.name.given < 'x'", &p),
        Err(EvalError::NotSingleton { .. })
    ));
    assert!(matches!(
        try_eval("1 < 'x'", &p),
        Err(EvalError::Type { .. })
    ));
}

#[test]
fn arithmetic_and_strings() {
    let p = patient();
    let cases = [
        ("1 + 2 * 3", vec!["7"]),
        ("(1 + 2) * 3", vec!["9"]),
        ("7 div 2", vec!["3"]),
        ("7 mod 2", vec!["1"]),
        ("7 / 2", vec!["3.5"]),
        ("1 / 0", vec![]),
        ("5 div 0", vec![]),
        ("-3 + 1", vec!["-2"]),
        ("-(1 + 2)", vec!["-3"]),
        ("2 - -1", vec!["3"]),
        ("1.5 + 1", vec!["2.5"]),
        ("'a' + 'b'", vec!["ab"]),
        ("'a' & {} & 'c'", vec!["ac"]),
        ("9223372036854775807 + 1", vec![]),
        ("'abc'.length()", vec!["3"]),
        ("'abcdef'.substring(2, 3)", vec!["cde"]),
        ("'abcdef'.substring(2)", vec!["cdef"]),
        ("'abcdef'.substring(10)", vec![]),
        ("'abc'.startsWith('ab')", vec!["true"]),
        ("'abc'.endsWith('bc')", vec!["true"]),
        ("'abc'.contains('d')", vec!["false"]),
        ("'abc'.indexOf('c')", vec!["2"]),
        ("'ABC'.lower()", vec!["abc"]),
        ("'abc'.upper()", vec!["ABC"]),
        ("'a,b,c'.split(',')", vec!["a", "b", "c"]),
        ("'a,b,c'.split(',').join('-')", vec!["a-b-c"]),
        ("'a.b'.replace('.', '/')", vec!["a/b"]),
        ("'abc123'.matches('[a-z]+[0-9]+')", vec!["true"]),
        ("'abc123'.matches('[0-9]+')", vec!["false"]),
        ("'abc123'.replaceMatches('[0-9]', '#')", vec!["abc###"]),
        ("' x '.trim()", vec!["x"]),
        ("'it''s'", vec![]),
        (r"'tab\there'", vec!["tab	here"]),
        (r"'\u0041'", vec!["A"]),
        (
            "Patient.name.given.first() & ' ' & Patient.name.family.first()",
            vec!["Peter Chalmers"],
        ),
        ("(-2).abs()", vec!["2"]),
        ("1.5.ceiling()", vec!["2"]),
        ("1.5.floor()", vec!["1"]),
        ("3.14159.round(2)", vec!["3.14"]),
        ("2.power(10)", vec!["1024"]),
    ];
    for (expr, want) in cases {
        if expr == "'it''s'" {
            assert!(parse(expr).is_err());
            continue;
        }
        assert_eq!(eval(expr, &p), want, "{expr}");
    }
    assert!(matches!(
        try_eval("'x'.matches('(')", &p),
        Err(EvalError::Regex { .. })
    ));
    assert!(matches!(
        try_eval("1.startsWith('1')", &p),
        Err(EvalError::Type { .. })
    ));
}

#[test]
fn conversions() {
    let p = patient();
    let cases = [
        ("'12'.toInteger()", vec!["12"]),
        ("'x'.toInteger()", vec![]),
        ("'1.5'.toDecimal()", vec!["1.5"]),
        ("1.toString()", vec!["1"]),
        ("true.toString()", vec!["true"]),
        ("'true'.toBoolean()", vec!["true"]),
        ("'2020-01-02'.toDate()", vec!["2020-01-02"]),
        (
            "'2020-01-02T10:00:00Z'.toDateTime()",
            vec!["2020-01-02T10:00:00Z"],
        ),
        ("'2020-13-02'.toDate()", vec![]),
        ("'12'.convertsToInteger()", vec!["true"]),
        (r"'5 \'mg\''.toQuantity()", vec!["5 'mg'"]),
        ("Patient.telecom.rank.toString()", vec!["1"]),
        ("Patient.birthDate.toDate() < @2000-01-01", vec!["true"]),
        ("iif(Patient.active, 'yes', 'no')", vec!["yes"]),
        ("iif({}, 'yes', 'no')", vec!["no"]),
        ("iif(false, 'yes')", vec![]),
        ("today() > @2020-01-01", vec!["true"]),
        ("now() > @2020-01-01T00:00:00Z", vec!["true"]),
        ("Patient.name.trace('n').count()", vec!["3"]),
    ];
    for (expr, want) in cases {
        assert_eq!(eval(expr, &p), want, "{expr}");
    }
}

#[test]
fn children_and_descendants() {
    let p = json!({"resourceType": "Patient", "name": [{"family": "A", "given": ["B"]}], "active": true});
    assert_eq!(eval("Patient.children().count()", &p), ["2"]);
    assert_eq!(eval("Patient.descendants().count()", &p), ["4"]);
    assert_eq!(eval("Patient.name.children()", &p), ["A", "B"]);
    assert_eq!(eval("Patient.descendants().ofType(String)", &p), ["A", "B"]);
    assert_eq!(eval("Patient.name.repeat(given)", &p), ["B"]);
}

#[test]
fn resolve_without_resolver() {
    let p = patient();
    assert_eq!(
        eval(
            "Patient.managingOrganization.where(resolve() is Organization).reference",
            &p
        ),
        ["Organization/1"]
    );
    assert_eq!(
        eval(
            "Patient.managingOrganization.where(resolve() is Patient)",
            &p
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        eval(
            "Patient.generalPractitioner.resolve().ofType(Practitioner).count()",
            &p
        ),
        ["2"]
    );
    assert_eq!(
        eval("Patient.generalPractitioner[1].resolve().name.family", &p),
        ["Careful"]
    );
    assert_eq!(
        eval(
            "Patient.generalPractitioner.where(resolve() is Practitioner).count()",
            &p
        ),
        ["2"]
    );
    let r = json!({"resourceType": "Observation", "subject": {"reference": "urn:uuid:1234"}});
    assert_eq!(
        eval("Observation.subject.resolve()", &r),
        Vec::<String>::new()
    );
    let h =
        json!({"resourceType": "Observation", "subject": {"reference": "Patient/1/_history/2"}});
    assert_eq!(
        eval(
            "Observation.subject.where(resolve() is Patient).exists()",
            &h
        ),
        ["true"]
    );
}

#[test]
fn resolve_with_resolver() {
    let target = json!({"resourceType": "Patient", "id": "1", "gender": "female"});
    let obs = json!({"resourceType": "Observation", "subject": {"reference": "Patient/1"}});
    let ctx = Context::new().with_resolver(|r| (r == "Patient/1").then_some(&target));
    let e = parse("Observation.subject.resolve().gender").unwrap();
    let items = e.evaluate(&obs, &ctx).unwrap();
    assert_eq!(
        items.iter().filter_map(Item::as_str).collect::<Vec<_>>(),
        ["female"]
    );
}

#[test]
fn variables() {
    let p = patient();
    assert_eq!(eval("%resource.id", &p), ["example"]);
    assert_eq!(eval("%context.id", &p), ["example"]);
    assert_eq!(eval("%ucum", &p), ["http://unitsofmeasure.org"]);
    assert_eq!(
        eval("%`vs-administrative-gender`", &p),
        ["http://hl7.org/fhir/ValueSet/administrative-gender"]
    );
    assert!(matches!(
        try_eval("%nope", &p),
        Err(EvalError::UndefinedVariable { .. })
    ));
    let e = parse("%limit + 1").unwrap();
    let ctx = Context::new().with_variable("limit", vec![Item::Integer(41)]);
    assert_eq!(e.evaluate(&p, &ctx).unwrap(), [Item::Integer(42)]);
    // A component evaluated on its own, with %resource the Observation.
    let obs =
        json!({"resourceType": "Observation", "id": "o", "component": [{"valueString": "v"}]});
    let comp = &obs["component"][0];
    let ctx = Context::new().with_resource(&obs);
    let e = parse("value.as(string) | %resource.id").unwrap();
    let items = e.evaluate(comp, &ctx).unwrap();
    assert_eq!(
        items.iter().filter_map(Item::as_str).collect::<Vec<_>>(),
        ["v", "o"]
    );
}

#[test]
fn parse_errors_have_positions() {
    let cases = [
        ("Patient.name.foo()", 13),
        ("Patient.name.where()", 13),
        ("Patient.name.where(a, b)", 13),
        ("Patient.", 8),
        ("(1 + 2", 6),
        ("'abc", 0),
        ("1 +", 3),
        ("Patient.name.ofType('x')", 13),
        ("@20", 0),
        ("a $foo", 2),
    ];
    for (src, pos) in cases {
        let err = parse(src).expect_err(src);
        assert_eq!(err.position, pos, "{src}: {err}");
    }
    assert!(
        parse(
            "Patient.name // comment
 .given /* block */"
        )
        .is_ok()
    );
    assert!(parse("Patient.name.where(given.contains('a'))").is_ok());
    assert!(parse("x.`div`").is_ok());
    assert!(parse("(((((((((((((((((((((((((1)))))))))))))))))))))))))").is_ok());
    assert!(parse(&"(".repeat(10_000)).is_err());
    assert!(parse(&"-".repeat(10_000)).is_err());
}

#[test]
fn expr_is_send_sync_and_reusable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<fhirpath::Expr>();
    let e = parse("Patient.id").unwrap();
    let handle = std::thread::spawn(move || {
        e.evaluate(
            &json!({"resourceType": "Patient", "id": "t"}),
            &Context::default(),
        )
        .map(|v| v.len())
    });
    assert_eq!(handle.join().unwrap(), Ok(1));
    let e: fhirpath::Expr = "Patient.name.given".parse().unwrap();
    assert_eq!(e.to_string(), "Patient.name.given");
    assert_eq!(e.source(), "Patient.name.given");
}

struct TestModel;

impl Model for TestModel {
    fn child_type(&self, parent: &str, element: &str) -> Option<ChildType> {
        let (path, name, choice) = match (parent, element) {
            ("Patient" | "Patient.contact", "name") => ("HumanName", "HumanName", false),
            ("Patient", "contact") => ("Patient.contact", "BackboneElement", false),
            ("HumanName", "family") => ("string", "string", false),
            ("Patient", "birthDate") => ("date", "date", false),
            ("Patient", "deceased") | ("Patient.contact", "value") => ("", "", true),
            _ => return None,
        };
        Some(ChildType {
            type_path: path.into(),
            type_name: name.into(),
            choice,
        })
    }
}

#[test]
fn model_types_nodes() {
    let p = patient();
    let model = TestModel;
    let ctx = Context::new().with_model(&model);
    let run = |src: &str| -> Vec<String> {
        parse(src)
            .unwrap()
            .evaluate(&p, &ctx)
            .unwrap()
            .iter()
            .map(Item::to_string)
            .collect()
    };
    assert_eq!(run("Patient.name.ofType(HumanName).count()"), ["3"]);
    assert_eq!(
        run("Patient.contact.name.family.ofType(string)"),
        ["du Marché"]
    );
    assert_eq!(run("Patient.contact.name is HumanName"), ["true"]);
    assert_eq!(run("Patient.birthDate is date"), ["true"]);
    assert_eq!(run("Patient.birthDate < @2000"), ["true"]);
    assert_eq!(run("Patient.deceased is boolean"), ["true"]);
    let items = parse("Patient.contact.name")
        .unwrap()
        .evaluate(&p, &ctx)
        .unwrap();
    let node = items[0].as_node().unwrap();
    assert_eq!(node.type_path.as_deref(), Some("HumanName"));
    // children() sees `deceasedBoolean` as the choice `deceased`, typed boolean.
    assert_eq!(run("Patient.children().ofType(boolean)"), ["true", "false"]);
    let kids = parse("Patient.children()")
        .unwrap()
        .evaluate(&p, &ctx)
        .unwrap();
    assert!(
        kids.iter()
            .any(|k| k.as_node().and_then(|n| n.type_name.as_deref()) == Some("boolean"))
    );
    // Without a model, an untyped object has no type name.
    assert_eq!(eval("Patient.name.ofType(HumanName).count()", &p), ["0"]);
}

#[test]
fn deep_expressions_error_instead_of_overflowing() {
    let p = patient();
    // At the limit: every shape parses and evaluates on a 2 MiB test thread.
    let shapes = |n: usize| {
        [
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            format!("1{}", " + 1".repeat(n)),
            format!("name{}", ".given".repeat(n)),
            format!("{}1", "-".repeat(n)),
            format!("{}true{}", "(true and ".repeat(n / 2), ")".repeat(n / 2)),
            format!("{}name{}", "name.where(".repeat(n / 2), ")".repeat(n / 2)),
            format!("{}1{}", "iif(true, ".repeat(n / 2), ")".repeat(n / 2)),
            format!("name{}", "[0]".repeat(n)),
            format!("1{}", " | 1".repeat(n)),
        ]
    };
    for shape in 0..9 {
        // The largest n that still parses, found by bisection.
        let (mut lo, mut hi) = (1, 1000);
        while lo + 1 < hi {
            let mid = usize::midpoint(lo, hi);
            if parse(&shapes(mid)[shape]).is_ok() {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        assert!(lo >= 40, "shape {shape}: only {lo} levels parse");
        let src = &shapes(lo)[shape];
        let e = parse(src).expect("parses");
        let _ = e.evaluate(&p, &Context::default());
    }
    // Far over the limit: a parse error, never a stack overflow.
    let n = 100_000;
    let too_deep = [
        format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        format!("1{}", " + 1".repeat(n)),
        format!("name{}", ".given".repeat(n)),
        format!("{}1", "-".repeat(n)),
        format!("{}name{}", "name.where(".repeat(n), ")".repeat(n)),
        format!("name{}", "[0]".repeat(n)),
    ];
    for src in &too_deep {
        let err = parse(src).expect_err("too deep");
        assert!(err.message.contains("deeply"), "{err}");
    }
}

#[test]
fn resolve_inside_a_bundle() {
    let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "1", "gender": "other"}},
        {"fullUrl": "urn:uuid:o1", "resource": {"resourceType": "Observation", "subject": {"reference": "urn:uuid:p1"}}},
        {"resource": {"resourceType": "Observation", "subject": {"reference": "Patient/1"}}}
    ]});
    assert_eq!(
        eval(
            "Bundle.entry.resource.ofType(Observation).subject.resolve().gender",
            &b
        ),
        ["other", "other"]
    );
    assert_eq!(
        eval(
            "Bundle.entry.resource.ofType(Observation).where(subject.resolve() is Patient).count()",
            &b
        ),
        ["2"]
    );
}

#[test]
fn date_arithmetic() {
    let p = patient();
    let cases = [
        ("@2020-01-31 + 1 month", vec!["2020-02-29"]),
        ("@2020-01-01 - 1 day", vec!["2019-12-31"]),
        (
            "@2020-01-01T10:00:00Z + 90 minutes",
            vec!["2020-01-01T11:30:00Z"],
        ),
        ("@T23:00 + 2 hours", vec!["01:00"]),
        ("@2020-01-01 + 1 'mg'", vec![]),
        (
            "Patient.birthDate.toDate() + 18 years < today()",
            vec!["true"],
        ),
        ("today() - 1 'd' < today()", vec!["true"]),
    ];
    for (expr, want) in cases {
        assert_eq!(eval(expr, &p), want, "{expr}");
    }
}

#[test]
fn aggregate_with_total() {
    let p = patient();
    assert_eq!(eval("(1 | 2 | 3).aggregate($this + $total, 0)", &p), ["6"]);
    assert_eq!(
        eval(
            "(1 | 5 | 3).aggregate(iif($total.empty(), $this, iif($this > $total, $this, $total)))",
            &p
        ),
        ["5"]
    );
    assert_eq!(
        eval("Patient.name.given.aggregate($total + 1, 0)", &p),
        ["5"]
    );
}

#[test]
fn placeholders_are_resources() {
    let p = patient();
    assert_eq!(
        eval(
            "Patient.managingOrganization.resolve() is DomainResource",
            &p
        ),
        ["true"]
    );
    assert_eq!(
        eval("Patient.managingOrganization.resolve() is Resource", &p),
        ["true"]
    );
    assert_eq!(
        eval("Patient.managingOrganization.resolve().ofType(Patient)", &p),
        Vec::<String>::new()
    );
    assert_eq!(
        eval("(Patient.name.given | Patient.name.given).count()", &p),
        ["3"]
    );
    assert_eq!(eval("Patient.name.given.distinct().count()", &p), ["3"]);
}

#[test]
fn invariant_regexes() {
    let p = patient();
    let eld20 =
        r"'Patient.name.given'.matches('[A-Za-z][A-Za-z0-9]*(\\.[a-z][A-Za-z0-9]*(\\[x])?)*')";
    assert_eq!(eval(eld20, &p), ["true"]);
    let eld19 = r#"'Observation.value[x]'.matches('[^\\s\\.,:;\\\'"\\/|?!@#$%&*()\\[\\]{}]{1,64}(\\.[^\\s\\.,:;\\\'"\\/|?!@#$%&*()\\[\\]{}]{1,64}(\\[x\\])?(\\:[^\\s\\.]+)?)*')"#;
    assert_eq!(eval(eld19, &p), ["true"]);
    assert_eq!(
        eval("'MyName'.matches('[A-Z]([A-Za-z0-9_]){0,254}')", &p),
        ["true"]
    );
    assert_eq!(
        eval("'my name'.matches('[A-Z]([A-Za-z0-9_]){0,254}')", &p),
        ["false"]
    );
    assert_eq!(eval("'ab'.matchesFull('a')", &p), ["false"]);
}
