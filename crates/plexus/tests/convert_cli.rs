//! `plexus convert …` run as a binary: HL7 v2 and C-CDA samples of `../shared/corpus` to FHIR,
//! a converted document back to a CCD, and bad input named precisely with a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn plexus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run plexus")
}

/// The shared corpus directory, or `None` (with a message) when it is absent.
fn corpus(sub: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus")
        .join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn resource_types(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            e["resource"]["resourceType"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn hl7v2_samples_become_transaction_bundles_with_a_report() {
    let Some(dir) = corpus("hl7v2/fhir-converter") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundles.ndjson");
    let report = tmp.path().join("report.txt");
    let files = ["ADT-A01-01.hl7", "ORU-R01-RMGEAD.hl7", "VXU-V04-01.hl7"];
    let mut args = vec!["convert", "hl7v2-to-fhir"];
    let paths: Vec<String> = files
        .iter()
        .map(|f| dir.join(f).display().to_string())
        .collect();
    args.extend(paths.iter().map(String::as_str));
    let (out_s, report_s) = (out.display().to_string(), report.display().to_string());
    args.extend(["--out", &out_s, "--report", &report_s]);
    let o = plexus(&args);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    assert!(o.stdout.is_empty(), "--out given, yet stdout has output");
    let bundles: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON Bundle per line"))
        .collect();
    assert_eq!(bundles.len(), files.len());
    for b in &bundles {
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["type"], "transaction");
        let types = resource_types(b);
        assert!(types.iter().any(|t| t == "Patient"), "{types:?}");
        assert!(types.iter().any(|t| t == "Provenance"), "{types:?}");
    }
    assert!(resource_types(&bundles[0]).iter().any(|t| t == "Encounter"));
    assert!(
        resource_types(&bundles[1])
            .iter()
            .any(|t| t == "Observation")
    );
    assert!(
        resource_types(&bundles[2])
            .iter()
            .any(|t| t == "Immunization")
    );
    // The report names file and message for every line, and it went to the file, not stderr.
    let report = std::fs::read_to_string(&report).unwrap();
    for line in report.lines() {
        assert!(line.contains(": message 1: "), "{line}");
        assert!(paths.iter().any(|p| line.starts_with(p.as_str())), "{line}");
    }
    assert!(
        !text(&o.stderr).contains(": message 1: "),
        "{}",
        text(&o.stderr)
    );

    // Same input, same output (deterministic ids), and --pretty is the same JSON.
    let again = plexus(&["convert", "hl7v2-to-fhir", &paths[0], "--pretty"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let pretty: Value = serde_json::from_slice(&again.stdout).expect("one pretty Bundle");
    assert!(text(&again.stdout).contains("\n  \"resourceType\""));
    assert_eq!(pretty, bundles[0]);
}

#[test]
fn every_hl7v2_sample_converts_or_is_named() {
    let Some(dir) = corpus("hl7v2/fhir-converter") else {
        return;
    };
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "hl7"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report.txt").display().to_string();
    let mut args = vec!["convert", "hl7v2-to-fhir", "--report", &report];
    args.extend(files.iter().map(String::as_str));
    let o = plexus(&args);
    let stderr = text(&o.stderr);
    let bundles: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert!(bundles.iter().all(|b| b["type"] == "transaction"));
    // Every message gives a Bundle or one error line naming file, line and message number;
    // which messages the converter refuses is the convert crate's corpus test's business.
    let messages: usize = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .split(['\r', '\n'])
                .filter(|s| {
                    s.trim_start_matches('\u{feff}')
                        .trim_start()
                        .starts_with("MSH|")
                })
                .count()
        })
        .sum();
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    for e in &errors {
        let file = files.iter().find(|f| e.starts_with(f.as_str()));
        let rest = file.map(|f| &e[f.len()..]).unwrap_or_default();
        let (line, after) = rest
            .strip_prefix(':')
            .and_then(|r| r.split_once(": message "))
            .unwrap_or_else(|| panic!("not `FILE:LINE: message N: …`: {e}"));
        assert!(line.parse::<u64>().is_ok(), "{e}");
        assert!(
            after
                .split_once(": ")
                .is_some_and(|(n, _)| n.parse::<usize>().is_ok()),
            "{e}"
        );
        eprintln!("not converted: {e}");
    }
    assert_eq!(bundles.len() + errors.len(), messages, "stderr:\n{stderr}");
    assert_eq!(o.status.success(), errors.is_empty(), "stderr:\n{stderr}");
    assert!(
        bundles.len() * 10 >= messages * 9,
        "most samples convert: {stderr}"
    );
}

#[test]
fn a_bad_message_is_named_by_file_message_segment_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("two.hl7");
    // Message 1 converts; message 2 has an impossible birth date (PID-7).
    std::fs::write(
        &file,
        "MSH|^~\\&|A|B|C|D|20260101120000+0000||ADT^A01|1|P|2.5\rPID|1||42^^^H&1.2.3&ISO^MR||DOE^J||19800101\r\
         MSH|^~\\&|A|B|C|D|20260101120000+0000||ADT^A01|2|P|2.5\rPID|1||43^^^H&1.2.3&ISO^MR||DOE^K||19801399\r",
    )
    .unwrap();
    let name = file.display().to_string();
    let o = plexus(&["convert", "hl7v2-to-fhir", &name]);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", text(&o.stderr));
    let stderr = text(&o.stderr);
    assert!(
        stderr.contains(&format!("{name}:4: message 2: PID-7: ")),
        "stderr: {stderr}"
    );
    // The good message still came out.
    assert_eq!(text(&o.stdout).lines().count(), 1);
    let b: Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    assert_eq!(b["type"], "transaction");

    // Not HL7 at all, and a missing file.
    std::fs::write(&file, "hello\n").unwrap();
    let o = plexus(&["convert", "hl7v2-to-fhir", &name]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o.stderr).contains(&name), "{}", text(&o.stderr));
    let missing = tmp.path().join("missing.hl7").display().to_string();
    let o = plexus(&["convert", "hl7v2-to-fhir", &missing]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o.stderr).contains(&missing), "{}", text(&o.stderr));
}

#[test]
fn ccda_sample_to_fhir_and_back_to_a_ccd() {
    let Some(dir) = corpus("ccda/fhir-converter") else {
        return;
    };
    let sample = dir.join("170.314B2_Amb_CCD.ccda").display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("doc.json").display().to_string();
    let o = plexus(&[
        "convert",
        "ccda-to-fhir",
        &sample,
        "--out",
        &bundle,
        "--pretty",
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    assert_eq!(doc["type"], "document");
    let types = resource_types(&doc);
    assert_eq!(types[0], "Composition");
    for t in ["Patient", "AllergyIntolerance", "Condition"] {
        assert!(types.iter().any(|x| x == t), "{t} missing: {types:?}");
    }

    let o = plexus(&[
        "convert",
        "ccda-to-fhir",
        &sample,
        "--bundle",
        "transaction",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let tx: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(tx["type"], "transaction");

    let ccd = tmp.path().join("ccd.xml").display().to_string();
    let o = plexus(&[
        "convert",
        "fhir-to-ccda",
        &bundle,
        "--effective-time",
        "2026-01-02T03:04:05Z",
        "--out",
        &ccd,
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let xml = std::fs::read_to_string(&ccd).unwrap();
    assert!(
        xml.contains("<ClinicalDocument"),
        "{}",
        &xml[..xml.len().min(300)]
    );
    assert!(
        xml.contains("2.16.840.1.113883.10.20.22.1.2"),
        "no CCD templateId"
    );
    let family = doc["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .and_then(|e| e["resource"]["name"][0]["family"].as_str())
        .expect("the patient has a family name")
        .to_owned();
    assert!(xml.contains(&family), "the CCD lost the patient's name");
}

#[test]
fn bad_ccda_and_fhir_input_are_named_with_a_non_zero_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_xml = tmp.path().join("bad.xml");
    std::fs::write(
        &bad_xml,
        "<ClinicalDocument xmlns=\"urn:hl7-org:v3\">\n<id>\n</ClinicalDocument>",
    )
    .unwrap();
    let name = bad_xml.display().to_string();
    let o = plexus(&["convert", "ccda-to-fhir", &name]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = text(&o.stderr);
    assert!(
        stderr.contains(&name) && stderr.contains("line"),
        "{stderr}"
    );
    assert!(o.stdout.is_empty());

    let no_patient = tmp.path().join("empty.json");
    std::fs::write(
        &no_patient,
        r#"{"resourceType":"Bundle","type":"collection","entry":[]}"#,
    )
    .unwrap();
    let name = no_patient.display().to_string();
    let o = plexus(&["convert", "fhir-to-ccda", &name]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = text(&o.stderr);
    assert!(
        stderr.contains(&name) && stderr.contains("no Patient"),
        "{stderr}"
    );

    std::fs::write(&no_patient, "not json").unwrap();
    let o = plexus(&["convert", "fhir-to-ccda", &name]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("not JSON"), "{}", text(&o.stderr));
}
