//! End-to-end tests of `plexus audit …`: records appended through the store API, then the
//! real binary verifies, searches and shows them; on PostgreSQL a record changed behind the
//! triggers' back (as superuser, with psql) makes `verify` fail naming its seq.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{PG_URL, StoreKind, with_postgres};
use store::audit::NewAuditRecord;
use store::{AnyStore, Audit as _, Store as _, Timestamp};

fn toml(kind: &StoreKind, dir: &Path) -> String {
    match kind {
        StoreKind::Sqlite => format!(
            "[store]\nkind = \"sqlite\"\npath = {:?}\n",
            dir.join("data").display().to_string()
        ),
        StoreKind::Postgres(schema) => {
            format!("[store]\nkind = \"postgres\"\nurl = \"{PG_URL}\"\nschema = \"{schema}\"\n")
        }
    }
}

fn rec(i: usize) -> NewAuditRecord {
    NewAuditRecord {
        recorded: Timestamp::from_micros(1_767_268_800_000_000 + i64::try_from(i).unwrap()),
        action: "R".into(),
        outcome: if i % 5 == 4 { "4" } else { "0" }.into(),
        type_code: "rest".into(),
        subtype: Some("read".into()),
        agent: if i.is_multiple_of(2) { "alice" } else { "bob" }.into(),
        client_id: None,
        source_addr: Some("10.0.0.9".into()),
        patient: Some(format!("Patient/{}", i % 3)),
        entity: Some(format!("Observation/{i}")),
        detail: (i % 5 == 4).then(|| "insufficient scope".to_owned()),
        event: serde_json::json!({"resourceType": "AuditEvent", "action": "R", "n": i}),
    }
}

/// Writes plexus.toml for `kind` in `dir` and appends `n` records through the store API.
fn prepare(kind: &StoreKind, dir: &Path, n: usize) {
    std::fs::write(dir.join("plexus.toml"), toml(kind, dir)).unwrap();
    let config = kind.config(dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = AnyStore::open(&config).await.unwrap();
        for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
            store
                .audit_append(chunk.iter().map(|i| rec(*i)).collect())
                .await
                .unwrap();
        }
        store.close().await.unwrap();
    });
}

fn plexus(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plexus"))
        .arg("--config")
        .arg(dir.join("plexus.toml"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run plexus")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// verify, search (table and JSON, with filters) and show, on the binary.
fn verify_search_and_show(kind: &StoreKind, dir: &Path) {
    prepare(kind, dir, 25);
    let out = plexus(dir, &["audit", "verify"]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("audit chain intact: 25 records, last seq 25\n"),
        "{text}"
    );
    let head = text
        .lines()
        .nth(1)
        .and_then(|l| l.strip_prefix("head "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert!(
        plexus(dir, &["audit", "verify", "--anchor", &head])
            .status
            .success()
    );

    let out = plexus(
        dir,
        &[
            "audit",
            "search",
            "--agent",
            "bob",
            "--patient",
            "1",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let seqs: Vec<i64> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    // record i has seq i + 1: bob is odd i, Patient/1 is i % 3 == 1
    let expected: Vec<i64> = (0..25_i64)
        .rev()
        .filter(|i| i % 2 == 1 && i % 3 == 1)
        .map(|i| i + 1)
        .collect();
    assert_eq!(seqs, expected);
    assert_eq!(found[0]["event"]["resourceType"], "AuditEvent");

    let out = plexus(dir, &["audit", "search", "--outcome", "4", "--limit", "2"]);
    let text = stdout(&out);
    assert!(out.status.success());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].trim_start().starts_with("25 "), "{text}");
    assert!(lines[1].contains("insufficient scope"), "{text}");
    assert!(lines[2].trim_start().starts_with("20 "), "{text}");

    let out = plexus(dir, &["audit", "show", "7"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["seq"], 7);
    assert_eq!(shown["event"]["n"], 6);
    assert!(!plexus(dir, &["audit", "show", "99"]).status.success());
    assert!(
        !plexus(dir, &["audit", "search", "--since", "yesterday"])
            .status
            .success()
    );
}

#[test]
fn audit_cli_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    verify_search_and_show(&StoreKind::Sqlite, dir.path());
}

fn psql(schema: &str, sql: &str) -> bool {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
        ])
        .arg(format!("SET search_path TO {schema}; {sql}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn audit_cli_on_postgres_finds_a_changed_record() {
    if Command::new("psql").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "psql is needed");
        eprintln!("skipped: psql is not installed");
        return;
    }
    with_postgres("audit_cli", |kind| {
        let dir = tempfile::tempdir().unwrap();
        verify_search_and_show(&kind, dir.path());
        let StoreKind::Postgres(schema) = &kind else {
            unreachable!()
        };
        // the triggers refuse the change ...
        assert!(!psql(
            schema,
            "UPDATE audit_event SET agent = 'mallory' WHERE seq = 12"
        ));
        assert!(plexus(dir.path(), &["audit", "verify"]).status.success());
        // ... unless a superuser switches them off; verify then names the record
        assert!(psql(
            schema,
            "ALTER TABLE audit_event DISABLE TRIGGER USER; \
             UPDATE audit_event SET agent = 'mallory' WHERE seq = 12;"
        ));
        let out = plexus(dir.path(), &["audit", "verify"]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.starts_with("audit chain BROKEN at seq 12:"), "{text}");
        let out = plexus(dir.path(), &["audit", "verify", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["intact"], false);
        assert_eq!(report["first_break"]["seq"], 12);
    });
}
