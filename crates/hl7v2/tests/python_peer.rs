//! Cross-check against an independent parser: for every corpus message, every field,
//! repetition, component and subcomponent agrees with python-hl7 (pinned in
//! `tests/peers/requirements.txt`), run here through `tests/peers/python_hl7_dump.py`.

mod common;

use std::process::Command;

use hl7v2::{Message, MessageReader};
use serde_json::{Map, Value};

/// Our view in the dump's shape: fields by number; MSH-1/2 as strings, every other field as
/// repetitions → components → subcomponents of raw text.
fn our_dump(file: &std::path::Path) -> Value {
    let bytes = std::fs::read(file).expect("read");
    let mut messages = Vec::new();
    for raw in MessageReader::new(std::io::BufReader::new(&bytes[..])) {
        let raw = raw.expect("read message");
        let msg = Message::parse(&raw.bytes).expect("parse");
        let mut segments = Vec::new();
        for seg in msg.segments() {
            let mut fields = Map::new();
            for (n, f) in seg.fields() {
                let text = |b: &[u8]| Value::String(String::from_utf8_lossy(b).into_owned());
                let v = if seg.id() == "MSH" && n <= 2 {
                    text(f.raw())
                } else {
                    Value::Array(
                        f.children()
                            .map(|r| {
                                Value::Array(
                                    r.children()
                                        .map(|c| {
                                            Value::Array(
                                                c.children().map(|s| text(s.raw())).collect(),
                                            )
                                        })
                                        .collect(),
                                )
                            })
                            .collect(),
                    )
                };
                fields.insert(n.to_string(), v);
            }
            let mut s = Map::new();
            s.insert("id".into(), Value::String(seg.id().to_owned()));
            s.insert("fields".into(), Value::Object(fields));
            segments.push(Value::Object(s));
        }
        let mut m = Map::new();
        m.insert("segments".into(), Value::Array(segments));
        messages.push(Value::Object(m));
    }
    let mut top = Map::new();
    top.insert("messages".into(), Value::Array(messages));
    Value::Object(top)
}

fn diff(path: &str, ours: &Value, theirs: &Value, out: &mut Vec<String>) {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            for k in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff(&format!("{path}.{k}"), x, y, out),
                    (x, y) => out.push(format!("{path}.{k}: ours {x:?}, python-hl7 {y:?}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        _ if ours == theirs => {}
        _ => out.push(format!("{path}: ours {ours}, python-hl7 {theirs}")),
    }
}

#[test]
fn every_value_agrees_with_python_hl7() {
    let Some(files) = common::corpus_files() else {
        return;
    };
    let Some(python) = common::python() else {
        return;
    };
    let script = common::root().join("tests/peers/python_hl7_dump.py");
    let mut problems = Vec::new();
    let mut values = 0usize;
    for file in &files {
        let out = Command::new(&python)
            .arg(&script)
            .arg(file)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "python-hl7 failed on {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: Value = serde_json::from_slice(&out.stdout).expect("python output is JSON");
        let ours = our_dump(file);
        values += ours.to_string().matches('"').count() / 2;
        let mut d = Vec::new();
        diff(&file.display().to_string(), &ours, &theirs, &mut d);
        problems.extend(d);
    }
    assert!(
        problems.is_empty(),
        "{} disagreements, first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(values > 10_000, "compared only {values} values");
}
