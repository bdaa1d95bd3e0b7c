//! What only the PostgreSQL backend checks.

use super::*;
use common::Postgres;
use store::{PgStore, PostgresConfig};

#[tokio::test]
async fn bad_settings_are_refused() {
    let backend = Postgres::create().await;
    for config in [
        PostgresConfig {
            schema: "Bad-Name".into(),
            ..backend.config()
        },
        PostgresConfig {
            pool_size: 0,
            ..backend.config()
        },
        PostgresConfig {
            url: "not a url at all=".into(),
            ..backend.config()
        },
    ] {
        let err = PgStore::open(&config).await.unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{err}");
    }
}

#[tokio::test]
async fn unreachable_server_is_an_error() {
    let config = PostgresConfig {
        url: "postgres://postgres@127.0.0.1:1/test?connect_timeout=2".into(),
        ..PostgresConfig::new("")
    };
    let err = PgStore::open(&config).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
}
