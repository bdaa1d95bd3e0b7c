//! End-to-end tests of `plexus hl7 …`: the real binary on real files.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../hl7v2/tests/fixtures")
        .join(name)
}

fn plexus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(args)
        .output()
        .expect("run plexus")
}

fn plexus_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plexus");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn get_reads_paths_from_every_message() {
    let f = fixture("many_messages.hl7");
    let out = plexus(&["hl7", "get", f.to_str().expect("path"), "MSH-10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 25);
    assert_eq!(lines[0], "PLX-MANY-0001");
    assert_eq!(lines[24], "PLX-MANY-0025");

    let f = fixture("oru_r01.hl7");
    let out = plexus(&["hl7", "get", f.to_str().expect("path"), "OBX[2]-3-1"]);
    assert!(out.status.success());
    assert!(!text(&out.stdout).trim().is_empty());

    let out = plexus(&["hl7", "get", f.to_str().expect("path"), "PID-0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("numbers in a path start at 1"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn get_decodes_latin1_and_custom_delimiters() {
    let out = plexus(&[
        "hl7",
        "get",
        fixture("latin1.hl7").to_str().expect("path"),
        "PID-5-2",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains('é') || text(&out.stdout).contains('è'),
        "{}",
        text(&out.stdout)
    );
    let out = plexus(&[
        "hl7",
        "get",
        fixture("custom_delimiters.hl7").to_str().expect("path"),
        "PID-3[2]-1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).trim().is_empty());
}

#[test]
fn parse_prints_groups_and_json() {
    let f = fixture("oru_r01.hl7");
    let out = plexus(&["hl7", "parse", f.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("[ORDER_OBSERVATION]") && s.contains("[OBSERVATION]") && s.contains("PID-5-1"),
        "{s}"
    );
    let out = plexus(&[
        "hl7",
        "parse",
        "--json",
        fixture("batch.hl7").to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let docs: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0]["segments"][0]["id"], "MSH");
}

#[test]
fn parse_reads_stdin() {
    let out = plexus_stdin(
        &["hl7", "get", "-", "PID-5-1"],
        b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPID|1||1||DOE^J\r",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "DOE\n");
}

#[test]
fn validate_exits_1_with_file_line_and_location() {
    let input = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01^ADT_A01|1|P|2.5.1\nEVN|A01|20240101\nPID|1||123||DOE||19800230|F\nPV1|1|Q\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.hl7");
    std::fs::write(&path, input).expect("write");
    let out = plexus(&["hl7", "validate", path.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let s = text(&out.stdout);
    let name = path.display().to_string();
    assert!(s.contains(&format!("{name}:3: message 1: E PID-7")), "{s}");
    assert!(s.contains(&format!("{name}:4: message 1: E PV1-2")), "{s}");
    assert!(
        s.contains("102 Data type error") && s.contains("103 Table value not found"),
        "{s}"
    );

    let ok = plexus(&[
        "hl7",
        "validate",
        fixture("adt_a01.hl7").to_str().expect("path"),
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stdout));
}

#[test]
fn unparseable_messages_are_reported_and_reading_goes_on() {
    let input = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPID|1||\xFF\rMSH|^~\\&|A|B|C|D|2024||ADT^A01|2|P|2.5\rPID|1||X||DOE\r";
    let out = plexus_stdin(&["hl7", "get", "-", "MSH-10"], input);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "2\n");
    let err = text(&out.stderr);
    assert!(
        err.contains("-:2: message 1: byte 0xFF is not valid UNICODE UTF-8 at PID-3"),
        "{err}"
    );
}

#[test]
fn ack_answers_each_message() {
    let f = fixture("many_messages.hl7");
    let out = plexus(&["hl7", "ack", f.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let acks = text(&out.stdout);
    assert_eq!(acks.matches("MSA|AA|").count(), 25);
    assert!(acks.contains("MSA|AA|PLX-MANY-0007\r"));

    let out = plexus(&[
        "hl7",
        "ack",
        fixture("enhanced_ack.hl7").to_str().expect("path"),
    ]);
    assert!(
        text(&out.stdout).contains("MSA|CA|"),
        "{}",
        text(&out.stdout)
    );

    let out = plexus(&[
        "hl7",
        "ack",
        "--code",
        "AE",
        "--text",
        "rejected by test",
        f.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("MSA|AE|PLX-MANY-0001|rejected by test\r"));

    // a message that does not parse is answered AR with an ERR segment
    let out = plexus_stdin(
        &["hl7", "ack", "--terminator", "lf", "-"],
        b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|X9|P|2.5\rpid|1\r",
    );
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(s.contains("MSA|AR|X9\n") && s.contains("\nERR|"), "{s}");
    assert!(
        s.contains("207^Application internal error^HL70357") || s.contains("^HL70357|E"),
        "{s}"
    );
}

#[test]
fn bad_files_give_clear_errors() {
    let out = plexus(&["hl7", "parse", "/no/such/file.hl7"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot open /no/such/file.hl7"));
    let out = plexus_stdin(&["hl7", "parse", "-"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no HL7 message found"),
        "{}",
        text(&out.stderr)
    );
    let out = plexus_stdin(&["hl7", "parse", "-"], b"hello\r");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("does not start with an MSH"),
        "{}",
        text(&out.stderr)
    );
}
