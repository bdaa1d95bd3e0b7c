//! Property tests: no expression text and no JSON data makes the crate panic.

mod common;

use fhirpath::{Context, parse};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Tokens that make generated text look like FHIRPath, so the parser gets deep.
const TOKENS: &[&str] = &[
    "Patient",
    "name",
    "given",
    ".",
    "(",
    ")",
    "[",
    "]",
    "where",
    "select",
    "exists",
    "first",
    "ofType",
    "as",
    "is",
    "|",
    "and",
    "or",
    "implies",
    "=",
    "!=",
    "~",
    "<",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "div",
    "mod",
    "&",
    "'a'",
    "'\\u00e9'",
    "1",
    "2.5",
    "@2020-01-01",
    "@T10:00",
    "5 'mg'",
    "{}",
    "$this",
    "$index",
    "%resource",
    "%ucum",
    "resolve()",
    "`div`",
    "value",
    "Quantity",
    "substring",
    "matches",
    "'[a-'",
    ",",
    "iif",
    "repeat",
    "descendants()",
    "children()",
    "extension",
    "true",
    "false",
    "not()",
    "count()",
    "in",
    "contains",
    "xor",
    "'",
    "`",
    "@",
    "%",
    "$",
    "//",
    "/*",
    "\\",
];

fn expression_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..24).prop_map(|t| t.concat())
}

const KEYS: &[&str] = &[
    "resourceType",
    "id",
    "name",
    "given",
    "_given",
    "family",
    "value",
    "valueQuantity",
    "valueString",
    "_valueString",
    "reference",
    "extension",
    "url",
    "contained",
    "code",
    "subject",
    "entry",
    "resource",
    "birthDate",
    "_birthDate",
    "deceasedBoolean",
    "unit",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(
            &[
                "Patient",
                "Patient/1",
                "#c",
                "2020-01-01",
                "mg",
                "",
                "Observation"
            ][..]
        )
        .prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// Expressions exercising navigation, typing, resolve and the operators on any data.
const FIXED: &[&str] = &[
    "Patient.name.given",
    "name.where(given.exists()).family",
    "descendants()",
    "descendants().ofType(string)",
    "children().value.as(Quantity)",
    "value.as(string) | value.is(Quantity)",
    "subject.where(resolve() is Patient)",
    "contained.resolve() | subject.resolve().name",
    "entry[0].resource",
    "name.given.first() & name.family",
    "birthDate < @2000-01-01",
    "value > 5 'mg'",
    "value + 1",
    "id.substring(1, 2).length()",
    "id.matches('[a-z]+')",
    "name.given.join(',')",
    "extension('u').value",
    "birthDate.extension.url",
    "deceased.exists() and deceased != false",
    "repeat(name)",
    "name.select($index)",
    "id.toInteger() + id.toDecimal()",
    "name = name",
    "name ~ given",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_never_panics(src in ".{0,64}") {
        let _ = parse(&src);
    }

    #[test]
    fn token_soup_parses_or_errors_and_evaluates(src in expression_text()) {
        if let Ok(expr) = parse(&src) {
            let _ = expr.evaluate(&common::patient(), &Context::default());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn evaluate_never_panics_on_any_json(data in json()) {
        for src in FIXED {
            let expr = parse(src).expect("fixed expressions parse");
            let _ = expr.evaluate(&data, &Context::default());
        }
    }
}
