//! An independent SMART client (tests/peers/smart_client.py: requests + PyJWT +
//! cryptography) against this server: the standalone launch, the EHR launch, and backend
//! services with an RS384 and an ES384 key. Skipped with a message when the repository's
//! `.venv` is absent, unless `CI` is set (then it fails).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use auth::{ClientKind, ClientRegistration};
use common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python, if it has the peer's packages.
fn python() -> Option<PathBuf> {
    let python = repo().join(".venv/bin/python");
    let usable = python.exists()
        && Command::new(&python)
            .args(["-c", "import jwt, cryptography, requests"])
            .status()
            .is_ok_and(|s| s.success());
    if usable {
        return Some(python);
    }
    let why = "the Python SMART peer needs .venv with tests/peers/requirements.txt \
               (python3 -m venv .venv && .venv/bin/pip install -r tests/peers/requirements.txt)";
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipped: {why}");
    None
}

async fn run(python: &Path, args: Vec<String>) -> String {
    let python = python.to_owned();
    let script = repo().join("tests/peers/smart_client.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "peer failed:\n{stdout}\n{stderr}");
    stdout
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smart_client_runs_every_flow() {
    let Some(python) = python() else { return };
    let h = Harness::start(Db::Sqlite).await;
    let setup = h.setup().await;
    let keys = h.dir.path().join("peer-keys");
    let out = run(&python, s(&["keygen", "--out-dir", keys.to_str().unwrap()])).await;
    assert!(out.contains("OK keygen"));
    let jwks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(keys.join("jwks.json")).unwrap()).unwrap();
    h.server
        .register_client(ClientRegistration {
            client_id: "py-backend".into(),
            name: None,
            kind: ClientKind::ConfidentialAsymmetric,
            redirect_uris: vec![],
            scopes: "system/*.rs".into(),
            jwks: Some(jwks),
            jwks_uri: None,
        })
        .await
        .unwrap();
    let introspector = format!("{CONFIDENTIAL_APP}:{}", setup.secret);
    let base = ["--fhir-base", h.issuer.as_str()];
    let common = [
        "--client-id",
        PUBLIC_APP,
        "--redirect-uri",
        REDIRECT,
        "--username",
        "alice",
        "--password",
        PASSWORD,
        "--introspect-client",
        introspector.as_str(),
    ];
    let mut args = s(&base);
    args.push("standalone".into());
    args.extend(s(&common));
    args.extend(s(&["--patient-query", "testpatient"]));
    let out = run(&python, args).await;
    assert!(out.contains("picked patient pat-1"), "{out}");
    assert!(out.contains("refresh replay refused"), "{out}");
    assert!(out.contains("OK standalone"), "{out}");

    let mut args = s(&base);
    args.push("ehr".into());
    args.extend(s(&common));
    args.extend(s(&[
        "--api-token",
        &setup.admin_token,
        "--patient",
        "pat-2",
        "--encounter",
        "enc-1",
    ]));
    let out = run(&python, args).await;
    assert!(out.contains("patient: pat-2"), "{out}");
    assert!(out.contains("OK ehr"), "{out}");

    for (alg, file, kid) in [
        ("RS384", "rs384.pem", "py-rs384"),
        ("ES384", "es384.pem", "py-es384"),
    ] {
        let key = keys.join(file);
        let mut args = s(&base);
        args.extend(s(&[
            "backend",
            "--client-id",
            "py-backend",
            "--key",
            key.to_str().unwrap(),
            "--alg",
            alg,
            "--kid",
            kid,
            "--scope",
            "system/Patient.rs",
        ]));
        let out = run(&python, args).await;
        assert!(out.contains("replayed assertion refused"), "{out}");
        assert!(out.contains("OK backend"), "{out}");
    }
    h.finish();
}
