//! Helpers shared by the integration tests.
#![allow(dead_code)]

use script::{Context, Data, DataType, Limits, Outcome, Sandbox, ScriptError, ScriptKind};

/// A real-size ADT^A01 (synthetic patient, 14 segments, ~1.8 KB).
pub const ADT_A01: &[u8] = include_bytes!("../../../hl7v2/tests/fixtures/adt_a01.hl7");

/// The ADT^A01 as working data.
pub fn adt() -> Data {
    Data::parse(DataType::Hl7v2, ADT_A01).expect("fixture parses")
}

/// Compiles `source` in a fresh sandbox with default limits.
pub fn sandbox(source: &str, kind: ScriptKind) -> (Sandbox, script::ScriptId) {
    let mut sb = Sandbox::new(Limits::default()).expect("sandbox");
    let id = sb.compile("test", source, kind).expect("compiles");
    (sb, id)
}

/// Runs a transformer once on `data`.
pub fn transform(source: &str, data: Data) -> (Context, Result<Outcome, ScriptError>) {
    let (mut sb, id) = sandbox(source, ScriptKind::Transformer);
    let mut cx = Context::new(data);
    let r = sb.run(id, &mut cx);
    (cx, r)
}

/// Runs a transformer that must succeed; gives back the context.
pub fn transform_ok(source: &str, data: Data) -> Context {
    let (cx, r) = transform(source, data);
    if let Err(e) = r {
        panic!("script failed: {e}");
    }
    cx
}

/// The data encoded as text.
pub fn text(data: &Data) -> String {
    String::from_utf8(data.encode()).expect("UTF-8")
}

/// The segment of an encoded HL7 message that starts with `id`.
pub fn segment(data: &Data, id: &str) -> String {
    text(data)
        .split(['\r', '\n'])
        .find(|s| s.starts_with(id))
        .unwrap_or_default()
        .to_owned()
}
