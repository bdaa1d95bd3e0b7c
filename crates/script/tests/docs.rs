//! Every `js` example in docs/scripting.md compiles and runs: on the ADT^A01 fixture, or, for
//! a block marked `js json` / `js xml`, on the data its first line (`// data: ...`) gives.

mod common;

use script::{Context, Data, Limits, Sandbox, ScriptErrorKind, ScriptKind};
use serde_json::json;

fn examples() -> Vec<(String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/scripting.md");
    let doc = std::fs::read_to_string(path).expect("docs/scripting.md");
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in doc.lines() {
        match &mut current {
            None => {
                if let Some(info) = line.strip_prefix("```js") {
                    current = Some((info.trim().to_owned(), String::new()));
                }
            }
            Some((_, body)) if line.starts_with("```") => {
                let _ = body;
                out.extend(current.take());
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    out
}

fn data_for(info: &str, source: &str) -> Data {
    let given = source
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("// data: "))
        .unwrap_or_default();
    match info {
        "" => common::adt(),
        "json" => Data::Json(serde_json::from_str(given).expect("// data: holds JSON")),
        "xml" => Data::Xml(given.to_owned()),
        other => panic!("unknown example kind {other:?}"),
    }
}

#[test]
fn every_example_runs() {
    let examples = examples();
    assert!(
        examples.len() >= 12,
        "found only {} examples",
        examples.len()
    );
    let mut sb = Sandbox::new(Limits::default()).unwrap();
    for (n, (info, source)) in examples.iter().enumerate() {
        let id = sb
            .compile(&format!("example {n}"), source, ScriptKind::Transformer)
            .unwrap_or_else(|e| panic!("{e}\n{source}"));
        let mut cx = Context::new(data_for(info, source));
        cx.source_map
            .insert("remoteAddress".into(), json!("192.0.2.10"));
        sb.run(id, &mut cx)
            .unwrap_or_else(|e| panic!("{e}\n{source}"));
    }
}

#[test]
fn the_documented_error_texts_are_the_real_ones() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/scripting.md"),
    )
    .unwrap();
    let mut sb = Sandbox::new(Limits::default()).unwrap();
    // the out-of-memory case gets a generous deadline, so that a loaded machine (a debug build
    // beside other jobs) still hits the memory limit before the default one second
    let mut patient = Sandbox::new(Limits {
        time: std::time::Duration::from_secs(20),
        ..Limits::default()
    })
    .unwrap();
    let cases = [
        (
            "x = null;\n\nmsg.set('PID-5-1', msg.get('ZZZ-1').toUpperCase());",
            ScriptErrorKind::Exception,
        ),
        (
            "\n\n\n\nmsg.replace('PID|1', 'HL7V2');",
            ScriptErrorKind::Api,
        ),
        (
            "var i = 0;\nwhile (true) { i++; }",
            ScriptErrorKind::Timeout,
        ),
        (
            "var a = []; while (true) a.push(new Array(1e6));",
            ScriptErrorKind::OutOfMemory,
        ),
    ];
    for (source, kind) in cases {
        let source = source.replacen("x = null;", "var x = null;", 1);
        let sb = if kind == ScriptErrorKind::OutOfMemory {
            &mut patient
        } else {
            &mut sb
        };
        let id = sb
            .compile("adt transformer", &source, ScriptKind::Transformer)
            .unwrap();
        let e = sb.run(id, &mut Context::new(common::adt())).unwrap_err();
        assert_eq!(e.kind, kind, "{e}");
        assert!(
            doc.contains(&e.to_string()),
            "docs/scripting.md should show: {e}"
        );
    }
}
