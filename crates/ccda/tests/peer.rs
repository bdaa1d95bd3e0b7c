//! The Bundles of every corpus document (document and transaction), and of the CCDs written
//! back from them, are valid for an independent FHIR R4 implementation: `fhir.resources` 6.4.0
//! (Python), run by `tests/peers/fhir_validate_bundle.py` with the repository's `.venv`. Skips
//! with a message when the venv is absent, unless `CI` is set.

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ccda::{BundleType, CcdOptions, Options};
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
        eprintln!("SKIP: {} is absent", python.display());
        return;
    }
    let corpus = common::corpus();
    if corpus.is_empty() {
        return;
    }
    let mut bundles = Vec::new();
    let mut resources = 0;
    for (n, (name, bytes)) in corpus.iter().enumerate() {
        // A short id naming the sample (ids have at most 64 characters).
        let name = format!(
            "s{n}-{}",
            name.replace(['.', '_'], "-")
                .chars()
                .take(40)
                .collect::<String>()
        );
        for (kind, bundle_type) in [
            ("doc", BundleType::Document),
            ("tx", BundleType::Transaction),
        ] {
            let conv = ccda::to_fhir(
                bytes,
                &Options {
                    bundle_type,
                    ..Options::default()
                },
            )
            .expect("converts");
            let mut b = conv.bundle;
            if bundle_type == BundleType::Document {
                // And the same patient's data after a trip through a CCD.
                let rs = common::resources(&b);
                let patient = rs
                    .iter()
                    .find(|r| r["resourceType"] == "Patient")
                    .expect("patient");
                let opts = CcdOptions {
                    effective_time: Some("2024-01-01".into()),
                    ..CcdOptions::default()
                };
                let ccd = ccda::to_ccd(patient, &rs, &opts).expect("writes a CCD");
                let mut again = ccda::to_fhir(ccd.as_bytes(), &Options::default())
                    .expect("converts the CCD")
                    .bundle;
                resources += 1 + again["entry"].as_array().map_or(0, Vec::len);
                again["id"] = Value::String(format!("{name}-ccd"));
                bundles.push(again);
            }
            resources += 1 + b["entry"].as_array().map_or(0, Vec::len);
            // The sample's name, for the peer's messages.
            b["id"] = Value::String(format!("{name}-{kind}"));
            bundles.push(b);
        }
    }
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
