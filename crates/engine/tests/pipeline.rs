//! The pipeline offline: every declarative step, JavaScript steps and their errors, routing
//! and statuses.

use std::path::Path;

use engine::{ChannelConfig, Pipeline, Routed};
use serde_json::Map;
use store::Status;

const ADT: &str = "MSH|^~\\&|EHR|HOSP|LAB|HOSP|20240315083000||ADT^A01^ADT_A01|C1|P|2.5.1\r\
EVN|A01|20240315083000\r\
PID|1||MRN1^^^HOSP^MR~ALT9^^^ENT^PI||DOE^JANE||19800115|F\r\
PV1|1|I|4W^401^A\r\
ZPI|1|private\r";

fn pipeline(text: &str) -> Pipeline {
    pipeline_in(text, Path::new("channels"))
}

fn pipeline_in(text: &str, dir: &Path) -> Pipeline {
    let config = ChannelConfig::parse(text, &dir.join("test.toml"))
        .unwrap_or_else(|e| panic!("channel: {e}"));
    Pipeline::compile(&config).unwrap_or_else(|e| panic!("compile: {e}"))
}

async fn run(p: &Pipeline, input: &str) -> engine::Processed {
    p.process(input.as_bytes(), "ID1", Map::new(), None).await
}

fn encoded(p: &engine::Processed, n: usize) -> String {
    match &p.routed[n].2 {
        Routed::Encoded(b) => String::from_utf8(b.clone()).expect("UTF-8 output"),
        other => panic!("destination {n}: {other:?}"),
    }
}

const TWO_FILES: &str = r#"
[[destination]]
name = "a"
[destination.file]
directory = "/tmp"
name = "${messageId}"
"#;

#[tokio::test]
async fn message_type_and_field_filters() {
    let p = pipeline(&format!(
        r#"
        [[filter]]
        type = "message-type"
        accept = ["ADT^A01", "ORU"]
        [[filter]]
        type = "field"
        path = "PV1-2"
        in = ["I", "E"]
        [[filter]]
        type = "field"
        path = "PID-3[2]-1"
        starts_with = "ALT"
        [[filter]]
        type = "field"
        path = "PV1-45"
        exists = false
        [[filter]]
        type = "field"
        path = "PID-8"
        equals = "M"
        not = true
        {TWO_FILES}"#
    ));
    let ok = run(&p, ADT).await;
    assert_eq!(ok.status, Status::Queued, "{:?}", ok.error);
    assert_eq!(
        run(&p, &ADT.replace("ADT^A01", "ADT^A08")).await.status,
        Status::Filtered
    );
    assert_eq!(
        run(&p, &ADT.replace("|I|4W", "|O|4W")).await.status,
        Status::Filtered
    );
    assert_eq!(
        run(&p, &ADT.replace("~ALT9", "~OTH9")).await.status,
        Status::Filtered
    );
    assert_eq!(
        run(&p, &ADT.replace("|19800115|F", "|19800115|M"))
            .await
            .status,
        Status::Filtered
    );
}

#[tokio::test]
async fn set_copy_clear_segments_and_escaping() {
    let p = pipeline(&format!(
        r#"
        [[transformer]]
        type = "set"
        path = "MSH-5"
        value = "NEW|APP"
        [[transformer]]
        type = "copy"
        from = "PID-3[2]-1"
        to = "PID-18"
        [[transformer]]
        type = "clear"
        path = "PID-7"
        [[transformer]]
        type = "remove-segments"
        segment = "ZPI"
        [[transformer]]
        type = "add-segment"
        text = "NTE|1||from ${{PID-5-1}} ^ ${{PID-5-2}}"
        after = "PID"
        {TWO_FILES}"#
    ));
    let out = run(&p, ADT).await;
    assert_eq!(out.status, Status::Queued, "{:?}", out.error);
    let text = encoded(&out, 0);
    let segs: Vec<&str> = text.split('\r').collect();
    // a delimiter inside a value is escaped, never a new field
    assert!(segs[0].contains("|NEW\\F\\APP|HOSP|"), "{text}");
    assert_eq!(segs[2].split('|').nth(18), Some("ALT9"), "PID-18: {text}");
    assert!(segs[2].contains("||DOE^JANE|||F|"), "PID-7 cleared: {text}");
    // literal template text is HL7 (here a component separator); only values are escaped
    assert_eq!(segs[3], "NTE|1||from DOE ^ JANE");
    assert!(!text.contains("ZPI"), "{text}");
    assert_eq!(
        out.transformed.as_deref(),
        Some(text.as_bytes()),
        "the source transformer's output is kept"
    );
}

#[tokio::test]
async fn code_tables_map_with_default_and_required() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("class.csv"),
        "from,to\nI,INPATIENT\nO,OUTPATIENT\n",
    )
    .unwrap();
    let channel = |extra: &str| {
        format!(
            r#"
            [[transformer]]
            type = "map"
            path = "PV1-2"
            table = "class.csv"
            {extra}
            {TWO_FILES}"#
        )
    };
    let p = pipeline_in(&channel(""), dir.path());
    assert!(encoded(&run(&p, ADT).await, 0).contains("PV1|1|INPATIENT|"));
    let unknown = ADT.replace("|I|4W", "|Z|4W");
    assert!(
        encoded(&run(&p, &unknown).await, 0).contains("PV1|1|Z|"),
        "kept as is"
    );
    let p = pipeline_in(&channel("default = \"OTHER\""), dir.path());
    assert!(encoded(&run(&p, &unknown).await, 0).contains("PV1|1|OTHER|"));
    let p = pipeline_in(&channel("required = true"), dir.path());
    let out = run(&p, &unknown).await;
    assert_eq!(out.status, Status::Error);
    let e = out.error.unwrap();
    assert!(
        e.contains("transformer step 1 (map)") && e.contains("class.csv"),
        "{e}"
    );

    // a table with a duplicate is refused when the channel is compiled
    std::fs::write(dir.path().join("class.csv"), "I,A\nI,B\n").unwrap();
    let config = ChannelConfig::parse(&channel(""), &dir.path().join("t.toml")).unwrap();
    let e = Pipeline::compile(&config).unwrap_err().to_string();
    assert!(e.contains("mapped twice") && e.contains("t.toml"), "{e}");
}

#[tokio::test]
async fn json_in_template_out_and_hl7_to_json() {
    let p = pipeline(&format!(
        r#"
        data_type = "JSON"
        [[transformer]]
        type = "template"
        template = """
        MSH|^~\\&|WEB|CLINIC|LAB|HOSP|||ORM^O01|${{id}}|P|2.5.1
        PID|1||${{patient.mrn}}||${{patient.name}}
        """
        {TWO_FILES}"#
    ));
    let out = run(
        &p,
        r#"{"id": "O1", "patient": {"mrn": "M|1", "name": "A^B"}}"#,
    )
    .await;
    assert_eq!(out.status, Status::Queued, "{:?}", out.error);
    let text = encoded(&out, 0);
    assert!(text.ends_with("PID|1||M\\F\\1||A\\S\\B\r"), "{text:?}");
    assert!(text.starts_with("MSH|^~\\&|WEB|"), "{text:?}");
    let bad = run(&p, "{not json").await;
    assert_eq!(bad.status, Status::Error);
    assert!(bad.error.unwrap().contains("not valid JSON"));

    let p = pipeline(&format!("[[transformer]]\ntype = \"to-json\"\n{TWO_FILES}"));
    let out = run(&p, ADT).await;
    let json: serde_json::Value = serde_json::from_str(&encoded(&out, 0)).unwrap();
    assert!(json.to_string().contains("DOE"), "{json}");
}

#[tokio::test]
async fn per_destination_steps_route_only_and_statuses() {
    let p = pipeline(
        r#"
        [[destination]]
        name = "adt-only"
        [destination.file]
        directory = "/tmp"
        name = "x"
        [[destination.filter]]
        type = "message-type"
        accept = ["ADT"]
        [[destination]]
        name = "rewrite"
        [destination.file]
        directory = "/tmp"
        name = "x"
        [[destination.transformer]]
        type = "set"
        path = "MSH-6"
        value = "ELSEWHERE"
        [[destination]]
        name = "broken"
        [destination.file]
        directory = "/tmp"
        name = "x"
        [[destination.transformer]]
        type = "set"
        path = "ZZZ-1"
        value = "no such segment"
        "#,
    );
    let out = run(&p, ADT).await;
    assert_eq!(out.status, Status::Error, "one destination failed");
    assert!(matches!(out.routed[0].2, Routed::Encoded(_)));
    assert!(encoded(&out, 1).contains("|LAB|ELSEWHERE|"));
    let Routed::Error(e) = &out.routed[2].2 else {
        panic!()
    };
    assert!(e.contains("\"broken\"") && e.contains("ZZZ"), "{e}");
    // the source content is untouched by a destination's transformer
    assert!(encoded(&out, 0).contains("|LAB|HOSP|"));

    let oru = ADT.replace("ADT^A01^ADT_A01", "ORU^R01^ORU_R01");
    let only = p
        .process(oru.as_bytes(), "ID2", Map::new(), Some(&[1, 2]))
        .await;
    assert_eq!(only.routed[0].2, Routed::Filtered);
    assert_eq!(only.routed[2].2, Routed::Skipped);
    assert_eq!(only.status, Status::Queued);
}

#[tokio::test]
async fn javascript_filter_transformer_and_errors_with_lines() {
    let p = pipeline(&format!(
        r#"
        [[filter]]
        type = "javascript"
        script = "return msg.get('PV1-2') !== 'O';"
        [[transformer]]
        type = "javascript"
        script = """
        msg.set('PID-5-1', msg.get('PID-5-1').toLowerCase());
        channelMap.seen = true;
        if (msg.get('MSH-10') === 'BOOM') {{
          throw new Error('refused ' + msg.get('MSH-10'));
        }}
        """
        [script]
        time_limit = "200ms"
        {TWO_FILES}"#
    ));
    let out = run(&p, ADT).await;
    assert_eq!(out.status, Status::Queued, "{:?}", out.error);
    assert!(encoded(&out, 0).contains("||doe^JANE||"));
    assert_eq!(out.channel_map["seen"], serde_json::Value::Bool(true));
    assert!(
        out.transformed
            .as_deref()
            .is_some_and(|t| t.starts_with(b"MSH"))
    );
    assert_eq!(
        run(&p, &ADT.replace("|I|4W", "|O|4W")).await.status,
        Status::Filtered
    );
    let boom = run(&p, &ADT.replace("|C1|", "|BOOM|")).await;
    assert_eq!(boom.status, Status::Error);
    let e = boom.error.unwrap();
    assert!(e.contains("refused BOOM") && e.contains("line 4"), "{e}");
}

#[tokio::test]
async fn runaway_scripts_are_stopped_and_the_pipeline_keeps_working() {
    let p = pipeline(&format!(
        r#"
        [[transformer]]
        type = "javascript"
        script = """
        var id = msg.get('MSH-10');
        if (id === 'LOOP') {{ while (true) {{}} }}
        if (id === 'OOM') {{ var a = []; while (true) a.push(new Array(100000).fill(1)); }}
        msg.set('PID-5-1', 'OK');
        """
        [script]
        time_limit = "200ms"
        memory_mb = 16
        {TWO_FILES}"#
    ));
    let looped = run(&p, &ADT.replace("|C1|", "|LOOP|")).await;
    assert_eq!(looped.status, Status::Error);
    let oom = run(&p, &ADT.replace("|C1|", "|OOM|")).await;
    assert_eq!(oom.status, Status::Error);
    let (l, o) = (looped.error.unwrap(), oom.error.unwrap());
    assert!(l.to_lowercase().contains("time"), "{l}");
    assert!(o.to_lowercase().contains("memory"), "{o}");
    let fine = run(&p, ADT).await;
    assert_eq!(fine.status, Status::Queued, "{:?}", fine.error);
    assert!(encoded(&fine, 0).contains("||OK^JANE||"));
}

#[tokio::test]
async fn bad_input_and_bad_steps_are_clear_errors() {
    let p = pipeline(TWO_FILES);
    let out = run(&p, "this is not HL7").await;
    assert_eq!(out.status, Status::Error);
    assert!(out.error.unwrap().contains("not valid HL7V2"));

    let compile = |text: &str| {
        let c = ChannelConfig::parse(text, Path::new("c/x.toml")).map_err(|e| e.to_string())?;
        Pipeline::compile(&c).map(|_| ()).map_err(|e| e.to_string())
    };
    let e = compile("[[filter]]\ntype = \"set\"\npath = \"A-1\"\nvalue = \"x\"\n").unwrap_err();
    assert!(
        e.contains("filter step 1 (set)") && e.contains("transformer step"),
        "{e}"
    );
    let e = compile("[[transformer]]\ntype = \"javascript\"\nscript = \"var = ;\"\n").unwrap_err();
    assert!(e.contains("line 1"), "{e}");
    let e = compile("[[transformer]]\ntype = \"javascript\"\n").unwrap_err();
    assert!(e.contains("either script or file"), "{e}");
    let e = compile("[[filter]]\ntype = \"field\"\npath = \"PID-3\"\n").unwrap_err();
    assert!(e.contains("exactly one of"), "{e}");
    let e = compile("[[transformer]]\ntype = \"set\"\npath = \"PID-3\"\nvalue = \"${oops\"\n")
        .unwrap_err();
    assert!(e.contains("transformer step 1 (set)"), "{e}");
}

#[tokio::test]
async fn response_transformers_see_the_response() {
    let p = pipeline(
        r#"
        [[destination]]
        name = "lab"
        [destination.file]
        directory = "/tmp"
        name = "x"
        [[destination.response_transformer]]
        type = "set"
        path = "MSA-3"
        value = "seen ${MSA-2}"
        [[destination]]
        name = "plain"
        [destination.file]
        directory = "/tmp"
        name = "x"
        [[destination]]
        name = "strict"
        [destination.file]
        directory = "/tmp"
        name = "x"
        [[destination.response_transformer]]
        type = "javascript"
        script = "if (msg.get('MSA-1') !== 'AA') { throw new Error('receiver said ' + msg.get('MSA-1')); }"
        "#,
    );
    let ack = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ACK|A1|P|2.5.1\rMSA|AA|C1\r";
    let out = p.transform_response(1, "ID1", ack).await.unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .ends_with("MSA|AA|C1|seen C1\r")
    );
    assert_eq!(
        p.transform_response(2, "ID1", ack).await.unwrap(),
        ack.to_vec()
    );
    assert!(p.transform_response(3, "ID1", ack).await.is_ok());
    let ae = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ACK|A1|P|2.5.1\rMSA|AE|C1\r";
    let e = p
        .transform_response(3, "ID1", ae)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("response transformer step 1") && e.contains("receiver said AE"),
        "{e}"
    );
    // a response that is not HL7 is handed over as text
    assert_eq!(
        p.transform_response(2, "ID1", b"OK").await.unwrap(),
        b"OK".to_vec()
    );
}
