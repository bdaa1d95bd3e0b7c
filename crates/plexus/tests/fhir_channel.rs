//! The "ADT over MLLP → FHIR" channel end to end: `plexus serve` runs the example channel
//! `examples/channels/adt-to-fhir.toml` (a `to-fhir` transformer and a `[destination.fhir]`)
//! against its own FHIR API with authorization on, the bearer token coming from the
//! environment. Re-sending the same ADT gives one Patient and one Encounter; a message the
//! converter refuses and a token the server refuses both end in ERROR with the reason.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Serve, StoreKind, fixed_port, free_port, http, http_as, plexus_cli, wait_for};
use serde_json::Value;

const LONG: Duration = Duration::from_mins(3);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn adt(control_id: &str, mrn: &str, birth: &str) -> String {
    format!(
        "MSH|^~\\&|REG|HOSP|PLEXUS|HOSP|20240101120000+0000||ADT^A01^ADT_A01|{control_id}|P|2.5.1\r\
         EVN|A01|20240101120000+0000\r\
         PID|1||{mrn}^^^HOSP^MR||TESTPATIENT^ALPHA||{birth}|F\r\
         PV1|1|I|W1^101^A||||||||||||||||V-{mrn}^^^HOSP^VN\r"
    )
}

fn plexus_send(port: u16, file: &Path, messages: &[String]) -> Output {
    std::fs::write(file, messages.concat()).expect("write messages");
    Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(["send", "--timeout", "60", "--port", &port.to_string()])
        .arg(file)
        .output()
        .expect("plexus send")
}

/// Total of a FHIR search, with the token.
fn fhir_total(port: u16, token: &str, query: &str) -> u64 {
    let (status, body) = http_as(
        port,
        "GET",
        &format!("/fhir/{query}&_summary=count"),
        None,
        Some(token),
    )
    .expect("the FHIR API answers");
    assert_eq!(status, 200, "{query}: {body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    v["total"].as_u64().expect("total")
}

/// The message record of `control_id` once it has a final status.
fn wait_final(admin: u16, token: &str, channel: &str, control_id: &str, serve: &Serve) -> Value {
    let get = |path: &str| -> Value {
        let (status, body) = http_as(admin, "GET", path, None, Some(token)).expect("admin API");
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    };
    wait_for(
        &format!("a final status for {control_id}"),
        LONG,
        || {
            let v = get(&format!(
                "/api/messages?channel={channel}&control_id={control_id}&limit=1"
            ));
            let id = v["messages"][0]["id"].as_str()?;
            let m = get(&format!("/api/messages/{id}"));
            let s = m["summary"]["status"].as_str().unwrap_or("");
            (s != "RECEIVED" && s != "QUEUED").then_some(m)
        },
        || serve.log_text(),
    )
}

#[allow(clippy::too_many_lines)] // one scenario, step by step
fn adt_to_fhir_end_to_end(store: &StoreKind) {
    let tmp = tempfile::tempdir().expect("test setup");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("channels")).expect("test setup");
    let (admin, fhir, mllp, mllp_bad) = (fixed_port(), free_port(), free_port(), free_port());
    let store_toml = match store {
        StoreKind::Sqlite => format!(
            "[store]\nkind = \"sqlite\"\npath = {:?}\n",
            dir.join("data").display().to_string()
        ),
        StoreKind::Postgres(schema) => format!(
            "[store]\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/test\"\nschema = \"{schema}\"\n"
        ),
    };
    let config = dir.join("plexus.toml");
    std::fs::write(
        &config,
        format!(
            "node = \"test-node\"\nchannels = \"channels\"\n\n{store_toml}\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\n[fhir]\nbind = \"127.0.0.1:{fhir}\"\n"
        ),
    )
    .expect("test setup");
    // The example channel as shipped, with this test's ports.
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/channels/adt-to-fhir.toml"),
    )
    .expect("test setup");
    assert!(example.contains("127.0.0.1:6681") && example.contains("127.0.0.1:8081/fhir"));
    let channel = example
        .replace("127.0.0.1:6681", &format!("127.0.0.1:{mllp}"))
        .replace("127.0.0.1:8081/fhir", &format!("127.0.0.1:{fhir}/fhir"));
    std::fs::write(dir.join("channels/adt-to-fhir.toml"), &channel).expect("test setup");
    // The same with a token the server does not know, and no retries.
    let bad = channel
        .replace(
            &format!("127.0.0.1:{mllp}"),
            &format!("127.0.0.1:{mllp_bad}"),
        )
        .replace("PLEXUS_FHIR_TOKEN", "PLEXUS_FHIR_BAD_TOKEN");
    std::fs::write(dir.join("channels/adt-to-fhir-bad-token.toml"), bad).expect("test setup");

    plexus_cli(&config, &["user", "add", "tester", "--role", "admin"]);
    let token = plexus_cli(
        &config,
        &[
            "token",
            "create",
            "--user",
            "tester",
            "--scope",
            "system/*.cruds",
        ],
    )
    .trim()
    .to_owned();
    let serve = Serve::spawn(
        dir,
        &config,
        &[
            ("PLEXUS_FHIR_TOKEN", &token),
            ("PLEXUS_FHIR_BAD_TOKEN", "not-a-token"),
        ],
    );
    wait_for(
        "plexus serve to get ready",
        LONG,
        || matches!(http(admin, "GET", "/readyz", None), Some((200, _))).then_some(()),
        || serve.log_text(),
    );

    // The same ADT twice (and once more in a second connection), and one that cannot convert.
    let file = dir.join("adt.hl7");
    let first = adt("FHIR-1", "MRN-77", "19800101");
    let out = plexus_send(
        mllp,
        &file,
        &[first.clone(), first.replace("FHIR-1", "FHIR-2")],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = plexus_send(mllp, &file, &[first.replace("FHIR-1", "FHIR-3")]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = plexus_send(mllp, &file, &[adt("FHIR-BAD", "MRN-78", "19801399")]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    for id in ["FHIR-1", "FHIR-2", "FHIR-3"] {
        let m = wait_final(admin, &token, "adt-to-fhir", id, &serve);
        assert_eq!(m["summary"]["status"], "SENT", "{id}: {m}");
    }
    assert_eq!(
        fhir_total(fhir, &token, "Patient?identifier=HOSP%7CMRN-77"),
        1
    );
    assert_eq!(fhir_total(fhir, &token, "Patient?"), 1);
    assert_eq!(
        fhir_total(fhir, &token, "Encounter?identifier=HOSP%7CV-MRN-77"),
        1
    );
    assert_eq!(fhir_total(fhir, &token, "Encounter?"), 1);
    let (status, body) = http_as(
        fhir,
        "GET",
        "/fhir/Patient?identifier=HOSP%7CMRN-77",
        None,
        Some(&token),
    )
    .expect("test setup");
    assert_eq!(status, 200);
    let bundle: Value = serde_json::from_str(&body).expect("test setup");
    let patient = &bundle["entry"][0]["resource"];
    assert_eq!(patient["birthDate"], "1980-01-01", "{patient}");
    assert_eq!(patient["name"][0]["family"], "TESTPATIENT");

    let m = wait_final(admin, &token, "adt-to-fhir", "FHIR-BAD", &serve);
    assert_eq!(m["summary"]["status"], "ERROR", "{m}");
    assert!(
        m.to_string().contains("PID-7"),
        "the error does not name PID-7: {m}"
    );
    assert_eq!(
        fhir_total(fhir, &token, "Patient?identifier=HOSP%7CMRN-78"),
        0
    );

    // A 401 from the server is permanent: ERROR with the OperationOutcome's diagnostics.
    let out = plexus_send(mllp_bad, &file, &[adt("FHIR-401", "MRN-79", "19800101")]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let m = wait_final(admin, &token, "adt-to-fhir-bad-token", "FHIR-401", &serve);
    assert_eq!(m["summary"]["status"], "ERROR", "{m}");
    let record = m.to_string();
    assert!(record.contains("401"), "{record}");
    assert!(
        record.contains("error login") || record.contains("token"),
        "no diagnostics: {record}"
    );
    assert_eq!(
        fhir_total(fhir, &token, "Patient?identifier=HOSP%7CMRN-79"),
        0
    );
    let log = serve.log_text();
    assert!(!log.contains("TESTPATIENT"), "PHI in the log:\n{log}");
}

mod adt_to_fhir {
    #[test]
    fn sqlite() {
        super::adt_to_fhir_end_to_end(&crate::common::StoreKind::Sqlite);
    }

    #[test]
    fn postgres() {
        crate::common::with_postgres("adt_to_fhir", |store| super::adt_to_fhir_end_to_end(&store));
    }
}
