//! Every message of the shared corpus and of our fixtures parses, round-trips byte for byte,
//! validates, acknowledges and converts to JSON without a panic.

mod common;

use std::io::BufReader;

use hl7v2::ack::{AckCode, AckOptions, build_ack};
use hl7v2::{Message, MessageBuf, MessageReader};

fn check_file(path: &std::path::Path) -> usize {
    let bytes = std::fs::read(path).expect("read file");
    let mut reader = MessageReader::new(BufReader::new(&bytes[..]));
    let mut joined = Vec::new();
    let mut count = 0;
    while let Some(m) = reader.next_message() {
        let m = m.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let msg = Message::parse(m.bytes)
            .unwrap_or_else(|e| panic!("{} message {}: {e}", path.display(), m.number));
        let encoded = MessageBuf::from(&msg).encode();
        assert!(
            encoded == m.bytes,
            "{} message {} does not round-trip:\n{}",
            path.display(),
            m.number,
            String::from_utf8_lossy(&encoded)
        );
        joined.extend_from_slice(m.bytes);
        assert!(msg.control_id().is_some(), "{}: no MSH-10", path.display());
        let _ = hl7v2::validate::validate(&msg);
        hl7v2::json::to_json(&msg).unwrap_or_else(|e| panic!("{}: json: {e}", path.display()));
        let opts = AckOptions {
            code: AckCode::ApplicationAccept,
            text: None,
            errors: vec![],
            control_id: "T",
            timestamp: "20240101",
        };
        let ack = build_ack(&msg, &opts).expect("ack").encode();
        let ack = Message::parse(&ack).expect("ack parses");
        assert_eq!(
            ack.value("MSA-2").expect("path").as_deref(),
            msg.control_id().as_deref()
        );
        count += 1;
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    if reader.envelope().batches == 0 && reader.envelope().file_header.is_none() {
        assert!(
            joined == body,
            "{}: the messages do not add up to the file",
            path.display()
        );
    }
    count
}

#[test]
fn corpus_parses_and_round_trips() {
    let Some(files) = common::corpus_files() else {
        return;
    };
    let total: usize = files.iter().map(|f| check_file(f)).sum();
    assert!(total >= files.len());
}

#[test]
fn fixtures_parse_and_round_trip() {
    let files = common::fixture_files();
    assert!(files.len() >= 8, "fixtures missing");
    for f in files {
        check_file(&f);
    }
}

#[test]
fn conforming_fixtures_validate_without_findings() {
    for f in common::fixture_files() {
        let bytes = std::fs::read(&f).expect("read");
        for m in MessageReader::new(BufReader::new(&bytes[..])) {
            let m = m.expect("message");
            let msg = Message::parse(&m.bytes).expect("parse");
            let issues = hl7v2::validate::validate(&msg);
            let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
            assert!(
                issues.is_empty(),
                "{} message {}: {text:#?}",
                f.display(),
                m.number
            );
        }
    }
}
