//! How FHIR searches scale: writes 100,000 Patients (`PLEXUS_FHIR_SCALE_N` to change it)
//! with about ten index rows each, then times a few searches. Prints timings; asserts only
//! that the searches find what they should.
//!
//! ```text
//! cargo nextest run -p store --run-ignored only --no-capture fhir_search_scale
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::too_many_lines
)]

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use common::Backend;
use fhir::defs::ParamType;
use fhir::index::{IndexEntry, IndexValue};
use fhir::search::{
    Filter, Predicate, Prefix, SearchRequest, SortKey, StringMode, Test, TokenSystem, TotalMode,
};
use store::{Precondition, ResourceWrite, Resources, Store, WriteOp};

const SYLLABLES: [&str; 20] = [
    "smi", "jon", "bro", "wil", "tay", "and", "tho", "whi", "har", "mar", "cla", "lew", "rob",
    "wal", "you", "all", "kin", "wri", "sco", "gre",
];

fn count() -> usize {
    std::env::var("PLEXUS_FHIR_SCALE_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}

fn family(i: usize) -> String {
    format!(
        "{}{}{}",
        SYLLABLES[i % 20],
        SYLLABLES[(i / 20) % 20],
        SYLLABLES[(i / 400) % 20]
    )
}

/// A row of `param` (a HumanName or Address) converted from its `part`, as extraction
/// gives it: `family=…` and `address-city=…` are answered from these.
fn part_of(param: &str, part: &'static str, text: &str) -> IndexEntry {
    IndexEntry {
        param: param.into(),
        value: IndexValue::String {
            normalized: text.to_lowercase(),
            exact: text.into(),
            part: Some(part),
        },
    }
}

fn token(param: &str, system: Option<&str>, code: &str) -> IndexEntry {
    IndexEntry {
        param: param.into(),
        value: IndexValue::Token {
            system: system.map(Into::into),
            code: Some(code.into()),
            display: None,
            type_system: None,
            type_code: None,
        },
    }
}

fn patient(i: usize) -> ResourceWrite {
    let fam = family(i);
    let given = SYLLABLES[(i / 7) % 20].to_owned() + "a";
    let day = 86_400_000_i64 * i64::try_from(i % 20_000).unwrap();
    let index = vec![
        part_of("name", "family", &fam),
        part_of("name", "given", &given),
        part_of("address", "city", SYLLABLES[(i / 3) % 20]),
        token("identifier", Some("urn:mrn"), &format!("MRN{i}")),
        token(
            "gender",
            Some("http://hl7.org/fhir/administrative-gender"),
            ["male", "female"][i % 2],
        ),
        token("_tag", Some("urn:tag"), "scale"),
        IndexEntry {
            param: "birthdate".into(),
            value: IndexValue::Date {
                low: day,
                high: day + 86_399_999,
            },
        },
        IndexEntry {
            param: "organization".into(),
            value: IndexValue::Reference {
                target_type: Some("Organization".into()),
                target_id: Some(format!("org{}", i % 50)),
                url: None,
                identifier_system: None,
                identifier_value: None,
            },
        },
    ];
    ResourceWrite {
        op: WriteOp::Create,
        resource_type: "Patient".into(),
        id: format!("p{i}"),
        resource: Some(serde_json::json!({
            "resourceType": "Patient",
            "name": [{"family": fam, "given": [given]}],
            "gender": (["male", "female"][i % 2]),
        })),
        index,
        precondition: Precondition::None,
    }
}

fn search(filters: Vec<Predicate>, sort: Vec<SortKey>) -> SearchRequest {
    SearchRequest {
        resource_type: Some("Patient".into()),
        filters: filters
            .into_iter()
            .map(|p| Filter { any: vec![p] })
            .collect(),
        sort,
        count: 20,
        total: TotalMode::Accurate,
        ..SearchRequest::default()
    }
}

async fn time<S: Resources>(store: &S, label: &str, req: &SearchRequest) -> u64 {
    let mut best = f64::MAX;
    let mut total = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let page = store.search(req).await.unwrap();
        best = best.min(start.elapsed().as_secs_f64());
        total = page.total.unwrap_or(0);
    }
    println!("  {label:<48} {:>9.2} ms  (total {total})", best * 1000.0);
    total
}

async fn load<S: Resources>(store: &S, name: &str) {
    let n = count();
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let writes = chunk.iter().map(|i| patient(*i)).collect();
        store.write(writes).await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name}: wrote {n} patients (~10 index rows each) in {secs:.1} s ({:.0}/s)",
        n as f64 / secs
    );
}

async fn measure<S: Store>(store: S) {
    let n = count();
    let prefix = |v: &str| Predicate {
        param: "name".into(),
        test: Test::String {
            value: v.into(),
            mode: StringMode::StartsWith,
        },
    };
    let expected = n.div_ceil(20) as u64;
    let found = time(
        &store,
        "name=smi (1/20 match)",
        &search(vec![prefix("smi")], vec![]),
    )
    .await;
    assert!(found >= expected.min(1));
    time(
        &store,
        "name=smijon (1/400 match)",
        &search(vec![prefix("smijon")], vec![]),
    )
    .await;
    time(
        &store,
        "name=smijonbro (1/8000 match)",
        &search(vec![prefix("smijonbro")], vec![]),
    )
    .await;
    time(
        &store,
        "family:contains=jonb",
        &search(
            vec![Predicate {
                param: "family".into(),
                test: Test::String {
                    value: "jonb".into(),
                    mode: StringMode::Contains,
                },
            }],
            vec![],
        ),
    )
    .await;
    let sort_family = SortKey {
        param: "family".into(),
        descending: false,
        kind: ParamType::String,
    };
    time(
        &store,
        "name=smi&_sort=family",
        &search(vec![prefix("smi")], vec![sort_family.clone()]),
    )
    .await;
    time(
        &store,
        "identifier=urn:mrn|MRN4242",
        &search(
            vec![Predicate {
                param: "identifier".into(),
                test: Test::Token {
                    system: TokenSystem::Is("urn:mrn".into()),
                    code: Some("MRN4242".into()),
                    negate: false,
                },
            }],
            vec![],
        ),
    )
    .await;
    time(
        &store,
        "name=smi&gender=female&birthdate=ge1980",
        &search(
            vec![
                prefix("smi"),
                Predicate {
                    param: "gender".into(),
                    test: Test::Token {
                        system: TokenSystem::Any,
                        code: Some("female".into()),
                        negate: false,
                    },
                },
                Predicate {
                    param: "birthdate".into(),
                    test: Test::Date {
                        prefix: Prefix::Ge,
                        low: 315_532_800_000,
                        high: 347_155_199_999,
                    },
                },
            ],
            vec![],
        ),
    )
    .await;
    time(
        &store,
        "organization=Organization/org7",
        &search(
            vec![Predicate {
                param: "organization".into(),
                test: Test::Reference {
                    target_type: Some("Organization".into()),
                    id: "org7".into(),
                },
            }],
            vec![],
        ),
    )
    .await;
    time(
        &store,
        "_sort=family (all)",
        &search(vec![], vec![sort_family]),
    )
    .await;
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes 100k resources; run by hand"]
async fn fhir_search_scale_sqlite() {
    let backend = common::Sqlite::create().await;
    let store = backend.open().await.unwrap();
    load(&store, "sqlite").await;
    measure(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes 100k resources; run by hand"]
async fn fhir_search_scale_postgres() {
    let backend = common::Postgres::create().await;
    let store = backend.open().await.unwrap();
    load(&store, "postgres").await;
    // what autovacuum does after a bulk load (the test server runs without it): without
    // statistics the planner takes every index table for one row and nests loops
    let (client, conn) = tokio_postgres::connect(&backend.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let start = Instant::now();
    client
        .batch_execute(&format!("SET search_path TO {}; ANALYZE", backend.schema))
        .await
        .unwrap();
    println!("  ANALYZE: {:.1} s", start.elapsed().as_secs_f64());
    measure(store).await;
}
