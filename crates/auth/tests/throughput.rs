//! Figures, not assertions: how many bearer tokens per second `verify_bearer` checks
//! (signature, claims, and the token's record read from the store), and how many backend
//! tokens per second the token endpoint issues over HTTP. Run with
//! `cargo test --release -p auth --test throughput -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run explicitly"]
async fn verify_and_issue_rates() {
    for db in [Db::Sqlite, Db::Postgres] {
        let h = Harness::start(db).await;
        let setup = h.setup().await;
        let response = tokens(&h, "launch/patient patient/*.rs").await;
        let access: Arc<str> = response["access_token"].as_str().unwrap().into();
        let calls: i32 = 4000;
        let start = Instant::now();
        for _ in 0..calls {
            h.server.verify_bearer(&access).await.unwrap();
        }
        let one = f64::from(calls) / start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (server, access) = (Arc::clone(&h.server), Arc::clone(&access));
            tasks.push(tokio::spawn(async move {
                for _ in 0..calls / 8 {
                    server.verify_bearer(&access).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let eight = f64::from(calls) / start.elapsed().as_secs_f64();
        let start = Instant::now();
        for _ in 0..calls {
            h.server.verify_bearer(&setup.admin_token).await.unwrap();
        }
        let api = f64::from(calls) / start.elapsed().as_secs_f64();
        let issued = 300;
        let start = Instant::now();
        for _ in 0..issued {
            let signed = assertion(&h, &setup.backend_key, "backend-key-1", json!({}));
            let answer = backend_token(&h, &signed, "system/Patient.rs").await;
            assert_eq!(answer.status, 200);
        }
        let issue = f64::from(issued) / start.elapsed().as_secs_f64();
        println!(
            "{db:?}: verify_bearer SMART token {one:.0}/s (1 task), {eight:.0}/s (8 tasks); \
             API token {api:.0}/s; client_credentials over HTTP {issue:.0} tokens/s (1 client)"
        );
        h.finish();
    }
}
