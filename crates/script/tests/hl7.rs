//! `msg` on HL7 v2 data: paths, repetitions, escapes, segments, errors.

mod common;

use common::{adt, segment, text, transform, transform_ok};
use script::{Data, DataType, ScriptErrorKind};
use serde_json::json;

#[test]
fn get_reads_fields_components_and_repetitions() {
    let cx = transform_ok(
        r#"
        channelMap.family = msg.get("PID-5-1");
        channelMap.name = msg.get("PID-5");
        channelMap.ssn = msg.get("PID-3[2]-1");
        channelMap.ids = msg.getAll("PID-3[*]-1");
        channelMap.authorities = msg.getAll("PID-3[*]-4");
        channelMap.observations = msg.getAll("OBX[*]-5");
        channelMap.units = msg.getAll("OBX[*]-6-1");
        channelMap.second = msg.get("OBX[2]-3-2");
        channelMap.missingSegment = msg.get("ZPI-1");
        channelMap.missingField = msg.get("PID-40");
        channelMap.empty = msg.get("PID-2");
        channelMap.type = msg.type;
        channelMap.event = msg.get("MSH-9-2");
        channelMap.delims = msg.get("MSH-2");
        "#,
        adt(),
    );
    let m = &cx.channel_map;
    assert_eq!(m["family"], "TESTPATIENT");
    assert_eq!(m["name"], "TESTPATIENT^ALPHA^QUINN^JR^^^L");
    assert_eq!(m["ssn"], "PLXE5550001");
    assert_eq!(m["ids"], json!(["PLX0000001", "PLXE5550001"]));
    assert_eq!(m["authorities"], json!(["PLEXUS-HOSP", "PLEXUS-ENT"]));
    assert_eq!(m["observations"], json!(["170", "70.5"]));
    assert_eq!(m["units"], json!(["cm", "kg"]));
    assert_eq!(m["second"], "Body weight");
    assert_eq!(m["missingSegment"], json!(null));
    assert_eq!(m["missingField"], json!(null));
    assert_eq!(m["empty"], "");
    assert_eq!(m["type"], "HL7V2");
    assert_eq!(m["event"], "A01");
    assert_eq!(m["delims"], "^~\\&");
}

#[test]
fn set_and_clear_change_the_message() {
    let cx = transform_ok(
        r#"
        msg.set("PID-5-1", "DOE");
        msg.set("PID-5-2", "JOHN");
        msg.set("PID-3[2]-1", "999");
        msg.set("PID-3[3]-1", "NEW");
        msg.set("PV1-44", 20260101);
        msg.clear("PV1-3");
        msg.clear("ZZZ-1");
        msg.set("PID-8", null);
        "#,
        adt(),
    );
    let pid = segment(&cx.data, "PID");
    assert!(
        pid.contains("|PLX0000001^^^PLEXUS-HOSP^MR~999^^^PLEXUS-ENT^PI~NEW|"),
        "{pid}"
    );
    assert!(pid.contains("|DOE^JOHN^QUINN^JR^^^L|"), "{pid}");
    assert!(pid.contains("|19800115||"), "PID-8 cleared: {pid}");
    let pv1 = segment(&cx.data, "PV1");
    assert!(pv1.starts_with("PV1|1|I||E|"), "{pv1}");
    assert!(pv1.contains("|20260101"), "{pv1}");
    // everything else is byte for byte the same
    assert_eq!(segment(&cx.data, "GT1"), segment(&adt(), "GT1"));
}

#[test]
fn values_with_delimiters_are_escaped_and_read_back_decoded() {
    let cx = transform_ok(
        r#"
        msg.set("PID-5-1", "O'NEIL|SMITH^JR & CO~X\\Y");
        channelMap.back = msg.get("PID-5-1");
        channelMap.raw = msg.getRaw("PID-5-1");
        msg.set("NK1-2-1", "line1\nline2");
        "#,
        adt(),
    );
    assert_eq!(cx.channel_map["back"], "O'NEIL|SMITH^JR & CO~X\\Y");
    assert_eq!(cx.channel_map["raw"], r"O'NEIL\F\SMITH\S\JR \T\ CO\R\X\E\Y");
    let pid = segment(&cx.data, "PID");
    assert!(
        pid.contains(r"|O'NEIL\F\SMITH\S\JR \T\ CO\R\X\E\Y^ALPHA^"),
        "{pid}"
    );
    assert!(segment(&cx.data, "NK1").contains(r"line1\.br\line2"));
    // the escaped message parses back to the same values
    let again = Data::parse(DataType::Hl7v2, &cx.data.encode()).unwrap();
    let cx = transform_ok(r#"channelMap.v = msg.get("PID-5-1");"#, again);
    assert_eq!(cx.channel_map["v"], "O'NEIL|SMITH^JR & CO~X\\Y");
}

#[test]
fn set_raw_copies_composites() {
    let cx = transform_ok(
        r#"
        msg.setRaw("NK1-2", msg.getRaw("PID-5"));
        channelMap.copied = msg.get("NK1-2-2");
        "#,
        adt(),
    );
    assert_eq!(cx.channel_map["copied"], "ALPHA");
    assert!(segment(&cx.data, "NK1").starts_with("NK1|1|TESTPATIENT^ALPHA^QUINN^JR^^^L|"));
    let (_, r) = transform(r#"msg.setRaw("PID-5-1", "A^B");"#, adt());
    let e = r.unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Api);
    assert!(e.message.contains("component separator"), "{e}");
}

#[test]
fn segments_are_listed_added_and_removed() {
    let cx = transform_ok(
        r#"
        channelMap.obx = msg.segments("OBX");
        channelMap.none = msg.segments("ZPI");
        var pid = msg.segments("PID")[0];
        channelMap.added = msg.addSegment("ZPI|1|" + msg.get("PID-3-1") + "|A^B", pid);
        channelMap.appended = msg.addSegment("ZZ1|end");
        channelMap.zpi = msg.get("ZPI-3-2");
        channelMap.removed = msg.removeSegments("OBX");
        msg.removeSegment(msg.segments("AL1")[0]);
        channelMap.ids = msg.segmentIds();
        "#,
        adt(),
    );
    let m = &cx.channel_map;
    assert_eq!(m["obx"], json!([7, 8]));
    assert_eq!(m["none"], json!([]));
    assert_eq!(m["added"], 3);
    assert_eq!(m["appended"], 15);
    assert_eq!(m["zpi"], "B");
    assert_eq!(m["removed"], 2);
    assert_eq!(
        m["ids"],
        json!([
            "MSH", "EVN", "PID", "ZPI", "PD1", "NK1", "PV1", "PV2", "DG1", "PR1", "GT1", "IN1",
            "ZZ1"
        ])
    );
    let t = text(&cx.data);
    assert!(t.contains("\rZPI|1|PLX0000001|A^B\rPD1|"), "{t}");
    assert!(t.ends_with("\rZZ1|end\r"), "{t}");
}

#[test]
fn to_string_and_json_view() {
    let cx = transform_ok(
        r#"
        channelMap.text = msg.toString();
        channelMap.concat = "" + msg === msg.toString();
        var j = msg.json();
        channelMap.first = j.segments[2].fields[4][0];
        channelMap.viaStringify = JSON.parse(JSON.stringify(msg)).segments[0].id;
        "#,
        adt(),
    );
    assert_eq!(cx.channel_map["text"], text(&adt()));
    assert_eq!(cx.channel_map["concat"], true);
    assert_eq!(cx.channel_map["first"], "TESTPATIENT");
    assert_eq!(cx.channel_map["viaStringify"], "MSH");
}

#[test]
fn api_errors_are_clear_and_located() {
    let cases = [
        (
            "// line 1\nvar x = 1;\nmsg.replace(\"not hl7 at all\", \"HL7V2\");\n",
            "msg.replace: not a valid HL7 v2 message",
        ),
        (
            "\n\nmsg.addSegment(\"bad segment\");",
            "msg.addSegment: \"bad segment\" is not a segment",
        ),
        ("\n\nmsg.get(\"PID\");", "msg.get: bad path \"PID\""),
        ("\n\nmsg.set(\"ZPI-1\", \"x\");", "add it first"),
        (
            "\n\nmsg.set(\"PID-5\", {a: 1});",
            "must be a string or a number",
        ),
        ("\n\nmsg.removeSegment(0);", "no removable segment"),
        ("\n\nmsg.setJson({});", "works on JSON data only"),
        ("\n\nmsg.replace(\"x\", \"PDF\");", "unknown data type"),
    ];
    for (source, expected) in cases {
        let (cx, r) = transform(source, adt());
        let e = r.expect_err(source);
        assert_eq!(e.kind, ScriptErrorKind::Api, "{e}");
        assert_eq!(e.line, Some(3), "{e}");
        assert!(
            e.message.contains(expected),
            "{e} should contain {expected}"
        );
        assert!(
            e.to_string().starts_with("script 'test' line 3: msg."),
            "{e}"
        );
        // the message is still there, unchanged
        assert_eq!(cx.data, adt());
    }
}

#[test]
fn a_caught_api_error_lets_the_script_go_on() {
    let cx = transform_ok(
        r#"
        try { msg.addSegment("MSH|^~\\&|X"); } catch (e) { channelMap.err = e.name + ": " + e.message; }
        msg.set("PID-5-1", "AFTER");
        "#,
        adt(),
    );
    assert!(
        cx.channel_map["err"]
            .as_str()
            .unwrap()
            .starts_with("PlexusError: msg.addSegment:")
    );
    assert!(segment(&cx.data, "PID").contains("|AFTER^ALPHA^"));
}

#[test]
fn msg_cannot_be_tampered_with() {
    let (_, r) = transform("msg.get = function () { return 'x'; };", adt());
    let e = r.unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Exception);
    assert!(e.message.starts_with("TypeError"), "{e}");
}

#[test]
fn corpus_messages_round_trip_through_a_transformer() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/hl7v2/fhir-converter");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: no corpus at {}", dir.display());
        return;
    };
    let (mut sb, id) = common::sandbox(
        r#"
        var ids = msg.getAll("PID-3[*]-1");
        msg.set("MSH-3", "PLEXUS");
        return ids.length;
        "#,
        script::ScriptKind::Filter,
    );
    let mut n = 0;
    for entry in entries.flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        let Ok(data) = Data::parse(DataType::Hl7v2, &bytes) else {
            continue;
        };
        let mut cx = script::Context::new(data);
        sb.run(id, &mut cx)
            .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
        let out = Data::parse(DataType::Hl7v2, &cx.data.encode()).unwrap();
        assert_eq!(out, cx.data);
        n += 1;
    }
    assert!(n > 10, "only {n} corpus messages ran");
}
