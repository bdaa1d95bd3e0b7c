//! What the store-backed test suites of several crates (store, engine, fhir-server) share:
//! where the test PostgreSQL server is, and the dropping of a test's own schema when the test
//! ends — also while a failing test unwinds. Only ever a dev-dependency.
//!
//! PostgreSQL is reached at `PLEXUS_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test` (trust auth; the server runs in CI too).

#![forbid(unsafe_code)]

/// The PostgreSQL server the tests use.
pub fn postgres_url() -> String {
    std::env::var("PLEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Drops `schema` (with everything in it) on the server at `url`, on a thread of its own so
/// that it can be called from `Drop` (which cannot await), inside or outside a runtime. A
/// failure is printed, not raised: a drop must not panic while a test unwinds.
pub fn drop_schema(url: &str, schema: &str) {
    let (url, owned) = (url.to_owned(), schema.to_owned());
    let dropped = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {owned} CASCADE"))
                .await
                .map_err(|e| e.to_string())
        })
    })
    .join();
    if !matches!(dropped, Ok(Ok(()))) {
        eprintln!("could not drop test schema {schema}: {dropped:?}");
    }
}
