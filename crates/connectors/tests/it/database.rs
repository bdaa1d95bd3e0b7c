//! The PostgreSQL writer against the real server: each test has its own schema, dropped at
//! the end (also when the test fails).
//!
//! The server is `PLEXUS_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test` (trust auth; it runs in CI too).

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use connectors::database::{PgWriter, PgWriterConfig};
use connectors::{Destination, Error, Template};
use tokio_postgres::NoTls;

use crate::common::fields;

use testkit::postgres_url as url;

async fn client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Runs `test` with a fresh schema holding `lab_results`, then drops the schema.
async fn with_schema<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    static N: AtomicU32 = AtomicU32::new(0);
    let schema = format!(
        "connectors_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let admin = client().await;
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE;
             CREATE SCHEMA {schema};
             CREATE TABLE {schema}.lab_results (
                 id serial PRIMARY KEY,
                 patient_id text NOT NULL,
                 observed_at timestamptz,
                 value numeric,
                 note text,
                 message_id text UNIQUE
             );"
        ))
        .await
        .unwrap();
    let outcome = tokio::spawn(test(schema.clone())).await;
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn templates(sources: &[&str]) -> Vec<Template> {
    sources
        .iter()
        .map(|s| Template::parse(s).unwrap())
        .collect()
}

fn insert_config(schema: &str) -> PgWriterConfig {
    PgWriterConfig::new(
        url(),
        format!(
            "INSERT INTO {schema}.lab_results (patient_id, observed_at, value, note, message_id)
             VALUES ($1, $2::timestamptz, $3::numeric, $4, $5)"
        ),
        templates(&[
            "${PID-3-1}",
            "${OBX-14}",
            "${OBX-5}",
            "${NTE-3}",
            "${messageId}",
        ]),
    )
}

#[tokio::test]
async fn inserts_with_typed_casts_and_stores_injection_verbatim() {
    with_schema(|schema| async move {
        let writer = PgWriter::connect(insert_config(&schema)).await.unwrap();
        let evil = "'); DROP TABLE lab_results; --";
        let f = fields(&[
            ("PID-3-1", "12345"),
            ("OBX-14", "2026-03-04 05:06:07+00"),
            ("OBX-5", "7.25"),
            ("NTE-3", evil),
            ("messageId", "m1"),
        ]);
        let delivered = writer.send(&f).await.unwrap();
        assert_eq!(delivered.detail, "1 row affected");

        let db = client().await;
        let row = db
            .query_one(
                &format!(
                    "SELECT patient_id, extract(epoch from observed_at)::bigint, value::text, note
                     FROM {schema}.lab_results"
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "12345");
        assert_eq!(row.get::<_, i64>(1), 1_772_600_767);
        assert_eq!(row.get::<_, String>(2), "7.25");
        assert_eq!(
            row.get::<_, String>(3),
            evil,
            "stored verbatim, never executed"
        );
    })
    .await;
}

#[tokio::test]
async fn constraint_violations_and_bad_values_are_permanent() {
    with_schema(|schema| async move {
        let writer = PgWriter::connect(insert_config(&schema)).await.unwrap();
        let mut f = fields(&[
            ("PID-3-1", "1"),
            ("OBX-14", "2026-01-01T00:00:00Z"),
            ("OBX-5", "1"),
            ("messageId", "dup"),
        ]);
        writer.send(&f).await.unwrap();
        let err = writer.send(&f).await.unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        assert!(err.message().contains("duplicate key"), "{err}");
        assert!(err.message().contains("23505"), "{err}");

        f.insert("messageId".into(), "other".into());
        f.insert("OBX-14".into(), "not a date".into());
        let err = writer.send(&f).await.unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        assert!(err.message().contains("timestamp"), "{err}");

        // A missing field renders empty: '' is not a number, and patient_id is NOT NULL.
        let err = writer
            .send(&fields(&[("messageId", "x")]))
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{err}");
    })
    .await;
}

#[tokio::test]
async fn empty_values_as_null() {
    with_schema(|schema| async move {
        let writer = PgWriter::connect(PgWriterConfig {
            empty_as_null: true,
            ..insert_config(&schema)
        })
        .await
        .unwrap();
        writer
            .send(&fields(&[("PID-3-1", "9"), ("messageId", "n")]))
            .await
            .unwrap();
        let db = client().await;
        let row = db
            .query_one(
                &format!(
                    "SELECT observed_at IS NULL, value IS NULL, note IS NULL FROM {schema}.lab_results"
                ),
                &[],
            )
            .await
            .unwrap();
        assert!(row.get::<_, bool>(0) && row.get::<_, bool>(1) && row.get::<_, bool>(2));
    })
    .await;
}

#[tokio::test]
async fn statements_that_do_not_fit_are_refused_at_connect() {
    with_schema(|schema| async move {
        let sql = format!("INSERT INTO {schema}.lab_results (patient_id, note) VALUES ($1, $2)");
        let err = PgWriter::connect(PgWriterConfig::new(
            url(),
            sql.clone(),
            templates(&["${a}"]),
        ))
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
        assert!(err.to_string().contains("2 parameter"), "{err}");
        let three = templates(&["${a}", "${b}", "${c}"]);
        assert!(
            PgWriter::connect(PgWriterConfig::new(url(), sql, three))
                .await
                .is_err()
        );

        // Parameters are text: a numeric column needs a cast in the SQL.
        let uncast =
            format!("INSERT INTO {schema}.lab_results (patient_id, value) VALUES ($1, $2)");
        let err = PgWriter::connect(PgWriterConfig::new(
            url(),
            uncast,
            templates(&["${a}", "${b}"]),
        ))
        .await
        .unwrap_err();
        assert!(err.to_string().contains("$1::int"), "{err}");

        let err = PgWriter::connect(PgWriterConfig::new(url(), "INSRT nothing", vec![]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("syntax error"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn lock_waits_time_out_as_retryable_and_message_is_a_field() {
    with_schema(|schema| async move {
        let config = PgWriterConfig::new(
            url(),
            format!("INSERT INTO {schema}.lab_results (patient_id, note) VALUES ($1, $2)"),
            templates(&["${PID-3-1}", "${message}"]),
        );
        let impatient = PgWriter::connect(PgWriterConfig {
            timeout: Duration::from_millis(300),
            ..config.clone()
        })
        .await
        .unwrap();
        let mut db = client().await;
        let tx = db.transaction().await.unwrap();
        tx.batch_execute(&format!(
            "LOCK TABLE {schema}.lab_results IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .unwrap();
        let f = fields(&[("PID-3-1", "1")]);
        let dest: &dyn Destination = &impatient;
        let err = dest.send(b"MSH|locked", &f).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(err.message().contains("statement timeout"), "{err}");
        assert!(err.message().contains("57014"), "{err}");
        tx.rollback().await.unwrap();

        let writer = PgWriter::connect(config).await.unwrap();
        let dest: &dyn Destination = &writer;
        dest.send(b"MSH|free\r", &f).await.unwrap();
        let note: String = db
            .query_one(&format!("SELECT note FROM {schema}.lab_results"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(note, "MSH|free\r");
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_server_fails_to_connect() {
    let config = PgWriterConfig::new(
        "postgres://postgres@127.0.0.1:1/test?connect_timeout=2",
        "SELECT 1",
        vec![],
    );
    let err = PgWriter::connect(config).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err}");
}
