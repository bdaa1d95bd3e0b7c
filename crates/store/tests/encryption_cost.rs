//! What encryption at rest costs: journal appends, FHIR writes and FHIR searches with it off
//! and on, on SQLite and PostgreSQL. Ignored timing runs (no assertions on time); each mode
//! runs in its own test so that the process's peak RSS (VmHWM) is that mode's:
//!
//! ```text
//! cargo nextest run -p store --release --run-ignored only -E 'test(/encryption_cost/)' --no-capture
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::too_many_lines,
    clippy::cast_precision_loss,
    reason = "a timing run: counts as rates"
)]

use std::sync::Arc;
use std::time::Instant;

use fhir::search::{Filter, Predicate, SearchRequest, StringMode, Test, TokenSystem};
use serde_json::json;
use store::{
    AnyStore, EncryptionConfig, Journal, NewMessage, PostgresConfig, Precondition, ResourceWrite,
    Resources, SqliteConfig, Store, StoreConfig, WriteOp,
};

const MESSAGES: usize = 4_000;
const PATIENTS: usize = 2_000;
const SEARCHES: usize = 2_000;
const TASKS: usize = 16;

const FAMILIES: [&str; 8] = [
    "Quetzal",
    "Smith",
    "Okafor",
    "Lindqvist",
    "Nakamura",
    "Garcia",
    "Novak",
    "Haddad",
];

fn patient(i: usize) -> serde_json::Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": format!("MRN-{i:07}")}],
        "name": [{"family": format!("{}{}", FAMILIES[i % 8], i / 8), "given": ["Zyxandra", "Ann"]}],
        "telecom": [{"system": "phone", "value": format!("+1 555 {i:07}")}],
        "gender": if i.is_multiple_of(2) { "female" } else { "male" },
        "birthDate": format!("19{:02}-0{}-1{}", i % 100, i % 9 + 1, i % 10),
        "address": [{"line": [format!("{i} Main Street")], "city": "Springfield", "postalCode": "12345"}],
    })
}

fn hl7(i: usize) -> Vec<u8> {
    format!(
        "MSH|^~\\&|REG|HOSP|EHR|HOSP|20260101120000||ADT^A01|C{i}|P|2.5.1\r\
         EVN|A01|20260101120000\r\
         PID|1||MRN-{i:07}^^^HOSP^MR||{}^ZYXANDRA^ANN||19800101|F|||{i} MAIN STREET^^SPRINGFIELD^^12345||+1 555 {i:07}\r\
         PV1|1|I|W1^101^1|||||||MED||||||||V{i}\r{}",
        FAMILIES[i % 8].to_uppercase(),
        "OBX|1|TX|NOTE||free text of a clinical note, some length to it.|\r".repeat(8)
    )
    .into_bytes()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn run(kind: &str, encrypted: bool) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let encryption = encrypted.then(|| EncryptionConfig::with_key_file("k1", &key));
    let schema = format!(
        "plexus_cost_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let url = testkit::postgres_url();
    let config = if kind == "sqlite" {
        StoreConfig::Sqlite(SqliteConfig {
            encryption,
            ..SqliteConfig::new(dir.path().join("data"))
        })
    } else {
        StoreConfig::Postgres(PostgresConfig {
            schema: schema.clone(),
            encryption,
            ..PostgresConfig::new(url.clone())
        })
    };
    let store = Arc::new(AnyStore::open(&config).await.unwrap());

    // journal appends, TASKS concurrent senders
    let t = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in (k..MESSAGES).step_by(TASKS) {
                let m = NewMessage::new("cost", hl7(i)).with_metadata("MRN", format!("MRN-{i:07}"));
                store.append(m).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let appends = MESSAGES as f64 / t.elapsed().as_secs_f64();

    // FHIR creates, one per call, TASKS concurrent writers
    let t = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in (k..PATIENTS).step_by(TASKS) {
                let body = patient(i);
                let index = fhir::index::extract(&body).unwrap();
                store
                    .write(vec![ResourceWrite {
                        op: WriteOp::Create,
                        resource_type: "Patient".into(),
                        id: format!("p{i}"),
                        resource: Some(body),
                        index,
                        precondition: Precondition::None,
                    }])
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let writes = PATIENTS as f64 / t.elapsed().as_secs_f64();

    // searches: half by name prefix, half by identifier, TASKS concurrent clients
    let t = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut hits = 0;
            for i in (k..SEARCHES).step_by(TASKS) {
                let test = if i.is_multiple_of(2) {
                    Test::String {
                        value: format!("{}{}", FAMILIES[i % 8], i % 50).to_lowercase(),
                        mode: StringMode::StartsWith,
                    }
                } else {
                    Test::Token {
                        system: TokenSystem::Any,
                        code: Some(format!("MRN-{i:07}")),
                        negate: false,
                    }
                };
                let param = if i.is_multiple_of(2) {
                    "name"
                } else {
                    "identifier"
                };
                let req = SearchRequest {
                    resource_type: Some("Patient".into()),
                    filters: vec![Filter {
                        any: vec![Predicate {
                            param: param.into(),
                            test,
                        }],
                    }],
                    count: 20,
                    ..SearchRequest::default()
                };
                hits += store.search(&req).await.unwrap().matches.len();
            }
            hits
        }));
    }
    let mut hits = 0;
    for task in tasks {
        hits += task.await.unwrap();
    }
    let searches = SEARCHES as f64 / t.elapsed().as_secs_f64();
    assert!(hits > 0);
    store.close().await.unwrap();
    if kind == "postgres" {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }
    println!(
        "encryption_cost {kind} encryption={}: appends {appends:.0}/s, FHIR creates {writes:.0}/s, \
         searches {searches:.0}/s ({hits} hits), peak RSS {} MiB",
        if encrypted { "on" } else { "off" },
        peak_rss_kib() / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "timing run; see the module doc"]
async fn encryption_cost_sqlite_off() {
    run("sqlite", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "timing run; see the module doc"]
async fn encryption_cost_sqlite_on() {
    run("sqlite", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "timing run; see the module doc"]
async fn encryption_cost_postgres_off() {
    run("postgres", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "timing run; see the module doc"]
async fn encryption_cost_postgres_on() {
    run("postgres", true).await;
}
