//! JSON, XML and RAW data, and changing the data type in a transformer.

mod common;

use common::{adt, segment, text, transform, transform_ok};
use script::{Data, DataType, ScriptErrorKind};
use serde_json::json;

fn json_data() -> Data {
    Data::Json(json!({
        "patient": {"id": "123", "names": [{"family": "Doe", "given": ["Jane"]}]},
        "visits": 2
    }))
}

#[test]
fn json_get_set_clear_on_dotted_paths() {
    let cx = transform_ok(
        r#"
        channelMap.family = msg.get("patient.names.0.family");
        channelMap.given = msg.get("patient.names.0.given");
        channelMap.visits = msg.get("visits");
        channelMap.missing = msg.get("patient.names.3.family");
        channelMap.type = msg.type;
        msg.set("patient.names.0.family", "DOE");
        msg.set("patient.mrn", {system: "HOSP", value: 42});
        msg.set("visits", msg.get("visits") + 1);
        msg.set("flags.vip", true);
        msg.clear("patient.id");
        "#,
        json_data(),
    );
    let m = &cx.channel_map;
    assert_eq!(m["family"], "Doe");
    assert_eq!(m["given"], json!(["Jane"]));
    assert_eq!(m["visits"], 2);
    assert_eq!(m["missing"], json!(null));
    assert_eq!(m["type"], "JSON");
    assert_eq!(
        cx.data,
        Data::Json(json!({
            "patient": {"names": [{"family": "DOE", "given": ["Jane"]}],
                        "mrn": {"system": "HOSP", "value": 42}},
            "visits": 3,
            "flags": {"vip": true}
        }))
    );
}

#[test]
fn json_whole_document_is_a_copy_until_set_json() {
    let cx = transform_ok(
        r#"
        var o = msg.json();
        o.visits = 100;
        channelMap.before = msg.get("visits");
        o.extra = [1, 2.5, "x"];
        msg.setJson(o);
        channelMap.after = msg.get("visits");
        channelMap.text = msg.toString();
        "#,
        json_data(),
    );
    assert_eq!(cx.channel_map["before"], 2);
    assert_eq!(cx.channel_map["after"], 100);
    assert_eq!(cx.data.as_json().unwrap()["extra"], json!([1, 2.5, "x"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(cx.channel_map["text"].as_str().unwrap())
            .unwrap()["visits"],
        100
    );
}

#[test]
fn hl7_to_json() {
    let cx = transform_ok(
        r#"
        msg.replace({
            mrn: msg.get("PID-3-1"),
            family: msg.get("PID-5-1"),
            observations: msg.getAll("OBX[*]-5").map(Number)
        }, "JSON");
        channelMap.type = msg.type;
        channelMap.family = msg.get("family");
        "#,
        adt(),
    );
    assert_eq!(cx.data.data_type(), DataType::Json);
    assert_eq!(
        cx.data,
        Data::Json(
            json!({"mrn": "PLX0000001", "family": "TESTPATIENT", "observations": [170, 70.5]})
        )
    );
    assert_eq!(cx.channel_map["type"], "JSON");
    assert_eq!(cx.channel_map["family"], "TESTPATIENT");
    // a string is parsed as JSON text
    let cx = transform_ok(r#"msg.replace('{"a": [1]}', "json");"#, adt());
    assert_eq!(cx.data, Data::Json(json!({"a": [1]})));
}

#[test]
fn json_to_hl7() {
    let cx = transform_ok(
        r#"
        var p = msg.json().patient;
        msg.replace("MSH|^~\\&|PLEXUS|HOSP|EHR|HOSP|20260101||ADT^A08|1|P|2.5.1\rPID|1", "HL7V2");
        msg.set("PID-3-1", p.id);
        msg.set("PID-5-1", p.names[0].family);
        msg.set("PID-5-2", p.names[0].given[0]);
        channelMap.type = msg.type;
        "#,
        json_data(),
    );
    assert_eq!(cx.data.data_type(), DataType::Hl7v2);
    assert_eq!(cx.channel_map["type"], "HL7V2");
    assert_eq!(segment(&cx.data, "PID"), "PID|1||123||Doe^Jane");
    assert!(text(&cx.data).starts_with("MSH|^~\\&|PLEXUS|HOSP|EHR|HOSP|20260101||ADT^A08|"));
}

#[test]
fn invalid_json_or_hl7_given_to_replace_is_an_api_error() {
    let (_, r) = transform("msg.replace('{not json', 'JSON');", adt());
    let e = r.unwrap_err();
    assert_eq!((e.kind, e.line), (ScriptErrorKind::Api, Some(1)));
    assert!(e.message.contains("not valid JSON"), "{e}");
    let (_, r) = transform("msg.replace({a: 1}, 'HL7V2');", adt());
    assert!(r.unwrap_err().message.contains("must be a string"));
    let (_, r) = transform("msg.replace({f: function () {}}.f, 'JSON');", adt());
    assert!(
        r.unwrap_err()
            .message
            .contains("cannot be represented as JSON")
    );
}

#[test]
fn xml_and_raw_text() {
    let cx = transform_ok(
        r#"
        channelMap.before = msg.toString();
        channelMap.type = msg.type;
        msg.setText(msg.toString().replace("Doe", "DOE"));
        "#,
        Data::Xml("<patient><name>Doe</name></patient>".into()),
    );
    assert_eq!(
        cx.channel_map["before"],
        "<patient><name>Doe</name></patient>"
    );
    assert_eq!(cx.channel_map["type"], "XML");
    assert_eq!(
        cx.data,
        Data::Xml("<patient><name>DOE</name></patient>".into())
    );

    let cx = transform_ok(
        r#"msg.replace(msg.toString().split(",").join("|"), "RAW");"#,
        Data::Raw("a,b,c".into()),
    );
    assert_eq!(cx.data, Data::Raw("a|b|c".into()));

    let (_, r) = transform("msg.get('a');", Data::Raw("x".into()));
    let e = r.unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Api);
    assert!(
        e.message
            .contains("msg.get: works on HL7V2 and JSON data only; this message is RAW"),
        "{e}"
    );
}

#[test]
fn set_text_keeps_the_type_and_checks_it() {
    let cx = transform_ok(r#"msg.setText('{"b": 2}');"#, json_data());
    assert_eq!(cx.data, Data::Json(json!({"b": 2})));
    let (_, r) = transform("msg.setText('PID|1');", adt());
    assert!(
        r.unwrap_err()
            .message
            .contains("not a valid HL7 v2 message")
    );
}
