//! The Bundles of every corpus message are valid for an independent FHIR R4 implementation:
//! `fhir.resources` 6.4.0 (Python), run by `tests/peers/fhir_validate_bundle.py` with the
//! repository's `.venv`. Skips with a message when the venv is absent, unless `CI` is set.

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use convert::{Options, convert_bytes};
use serde_json::Value;

#[test]
fn fhir_resources_accepts_every_bundle() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is absent (python3 -m venv .venv && .venv/bin/pip install -r tests/peers/requirements.txt)",
            python.display()
        );
        eprintln!("skipped: {} is absent", python.display());
        return;
    }
    let Some(files) = common::corpus() else {
        return;
    };
    let mut bundles = Vec::new();
    let mut resources = 0;
    for (name, raw) in &files {
        if let Ok(out) = convert_bytes(raw, &Options::default()) {
            let mut b = out.bundle;
            resources += 1 + b["entry"].as_array().map_or(0, Vec::len);
            // the name of the sample, for the peer's messages
            b["id"] = Value::String(name.replace(['.', '_'], "-"));
            bundles.push(b);
        }
    }
    assert!(bundles.len() >= 60, "only {} bundles", bundles.len());
    let mut child = Command::new(&python)
        .arg(root.join("tests/peers/fhir_validate_bundle.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the peer");
    let input = serde_json::to_vec(&Value::Array(bundles)).expect("json");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write");
    let out = child.wait_with_output().expect("peer output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fhir.resources rejected resources:\n{text}"
    );
    assert!(
        text.contains(&format!("validated {resources} resources")),
        "expected {resources} resources validated:\n{text}"
    );
}
