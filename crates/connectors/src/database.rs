//! The PostgreSQL writer destination: runs one parameterised statement per message.
//!
//! The statement is prepared with every parameter typed `text`; values are rendered from
//! templates and sent as bound parameters, never spliced into the SQL. Columns of other types
//! take a cast in the SQL: `$3::timestamptz`, `$4::int`.

use std::fmt;
use std::str::FromStr as _;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Statement};

use crate::error::{Error, Result};
use crate::{Delivered, Destination, Fields, SendError, Template};

/// Settings of a [`PgWriter`] (`type = "database"` under `[[destination]]`).
///
/// ```toml
/// url = "postgres://plexus@db.example:5432/clinical"
/// sql = """
/// INSERT INTO lab.results (patient_id, observed_at, code, value, message_id)
/// VALUES ($1, $2::timestamptz, $3, $4::numeric, $5)
/// """
/// params = ["${PID-3-1}", "${OBX-14}", "${OBX-3-1}", "${OBX-5}", "${messageId}"]
/// pool_size = 4
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgWriterConfig {
    /// Connection URL (`postgres://user:password@host:port/db?options`) or libpq key=value
    /// string. Plain TCP or Unix socket; TLS to the database is not supported yet.
    pub url: String,
    /// One SQL statement with `$1`..`$n` placeholders, `n` being the number of `params`.
    pub sql: String,
    /// One template per placeholder, in order; each value is bound as `text`.
    #[serde(default)]
    pub params: Vec<Template>,
    /// Bind a value that renders empty (a missing field) as SQL NULL instead of `''`.
    /// Default: false.
    #[serde(default)]
    pub empty_as_null: bool,
    /// Most connections open at once. Default: 4.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Longest wait for a connection, and longest run of the statement: it is the sessions'
    /// `statement_timeout`, so the server itself stops a statement that runs too long (a
    /// lock wait, say) before the message is retried. Default: 30 s.
    #[serde(default = "default_timeout", with = "mllp::duration")]
    pub timeout: Duration,
}

/// How long past `timeout` to wait for a statement's answer before giving up on the server.
const BACKSTOP: Duration = Duration::from_secs(5);

fn default_pool_size() -> usize {
    4
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl PgWriterConfig {
    /// Settings for `url` and `sql` with `params`, everything else default.
    pub fn new(url: impl Into<String>, sql: impl Into<String>, params: Vec<Template>) -> Self {
        Self {
            url: url.into(),
            sql: sql.into(),
            params,
            empty_as_null: false,
            pool_size: default_pool_size(),
            timeout: default_timeout(),
        }
    }
}

impl fmt::Debug for PgWriterConfig {
    /// Leaves out the URL, which may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgWriterConfig")
            .field("url", &"<redacted>")
            .field("sql", &self.sql)
            .field("params", &self.params)
            .field("empty_as_null", &self.empty_as_null)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Runs the configured statement once per message, on a connection pool.
#[derive(Clone)]
pub struct PgWriter {
    pool: Pool,
    config: PgWriterConfig,
    types: Vec<Type>,
}

impl fmt::Debug for PgWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgWriter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PgWriter {
    /// Connects, prepares the statement and checks that it has exactly one placeholder per
    /// template in `params` and that it is valid with every parameter typed `text`.
    pub async fn connect(config: PgWriterConfig) -> Result<Self> {
        if config.pool_size == 0 {
            return Err(Error::Config(
                "database pool_size must be at least 1".into(),
            ));
        }
        if config.timeout.is_zero() {
            return Err(Error::Config("database timeout must be above 0".into()));
        }
        let mut pg = tokio_postgres::Config::from_str(&config.url)
            .map_err(|e| Error::Config(format!("invalid PostgreSQL URL: {e}")))?;
        if pg.get_application_name().is_none() {
            pg.application_name("plexus-connector");
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(10));
        }
        // The server, not a client-side timer, ends a statement that runs too long: a
        // cancel sent from here could arrive before the statement starts and be ignored, and
        // the statement would then write its row after the message was retried.
        let statement_timeout =
            format!("-c statement_timeout={}", config.timeout.as_millis().max(1));
        let options = match pg.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {statement_timeout}"),
            _ => statement_timeout,
        };
        pg.options(&options);
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(15)))
            .wait_timeout(Some(config.timeout))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the PostgreSQL pool: {e}")))?;
        let client = pool
            .get()
            .await
            .map_err(|e| Error::Database(format!("connecting: {}", pool_error(&e))))?;
        let untyped = client
            .prepare(&config.sql)
            .await
            .map_err(|e| Error::Database(format!("preparing the statement: {}", pg_error(&e))))?;
        let expected = untyped.params().len();
        if expected != config.params.len() {
            return Err(Error::Config(format!(
                "the SQL statement has {expected} parameter(s) ($1..${expected}) but {} template(s) are given in params",
                config.params.len()
            )));
        }
        let types = vec![Type::TEXT; expected];
        client
            .prepare_typed_cached(&config.sql, &types)
            .await
            .map_err(|e| {
                Error::Database(format!(
                    "preparing the statement with text parameters (cast them in the SQL, e.g. $1::int): {}",
                    pg_error(&e)
                ))
            })?;
        drop(client);
        tracing::info!(params = expected, "PostgreSQL writer ready");
        Ok(Self {
            pool,
            config,
            types,
        })
    }

    /// The settings.
    pub fn config(&self) -> &PgWriterConfig {
        &self.config
    }

    /// Renders the parameters from `fields` and runs the statement.
    ///
    /// Connection failures, timeouts, deadlocks and serialization failures are
    /// [`SendError::Retryable`]; what the server refuses (constraint violations, bad values)
    /// is [`SendError::Permanent`] with the server's message.
    pub async fn send(&self, fields: &dyn Fields) -> Result<Delivered, SendError> {
        let now = SystemTime::now();
        let values: Vec<Option<String>> = self
            .config
            .params
            .iter()
            .map(|t| {
                let value = t.render(fields, now);
                (!(self.config.empty_as_null && value.is_empty())).then_some(value)
            })
            .collect();
        self.execute(&values).await
    }

    async fn execute(&self, values: &[Option<String>]) -> Result<Delivered, SendError> {
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let late =
            |what: &str| SendError::Retryable(format!("{what} within {:?}", self.config.timeout));
        let client = tokio::time::timeout_at(deadline, self.pool.get())
            .await
            .map_err(|_| late("no PostgreSQL connection"))?
            .map_err(|e| SendError::Retryable(format!("connecting: {}", pool_error(&e))))?;
        let statement: Statement = tokio::time::timeout_at(
            deadline,
            client.prepare_typed_cached(&self.config.sql, &self.types),
        )
        .await
        .map_err(|_| late("the statement was not prepared"))?
        .map_err(|e| classify("preparing the statement", &e))?;
        let params: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        // statement_timeout ends the statement on the server; this only guards against a
        // server or network that stopped answering altogether.
        let backstop = tokio::time::Instant::now() + self.config.timeout + BACKSTOP;
        let cancel = client.cancel_token();
        let Ok(executed) =
            tokio::time::timeout_at(backstop, client.execute(&statement, &params)).await
        else {
            let _ = cancel.cancel_query(NoTls).await;
            return Err(SendError::Retryable(format!(
                "no answer from PostgreSQL within {:?}",
                self.config.timeout + BACKSTOP
            )));
        };
        let rows = executed.map_err(|e| classify("running the statement", &e))?;
        Ok(Delivered {
            response: None,
            content_type: None,
            detail: format!("{rows} row{} affected", if rows == 1 { "" } else { "s" }),
        })
    }
}

impl Destination for PgWriter {
    /// The statement's parameters come from `fields`; the field `message` (if `fields` has
    /// none) is the message itself, as UTF-8 text with invalid bytes replaced.
    fn send<'a>(
        &'a self,
        bytes: &'a [u8],
        fields: &'a dyn Fields,
    ) -> BoxFuture<'a, Result<Delivered, SendError>> {
        Box::pin(async move {
            let with_message = WithMessage { bytes, fields };
            PgWriter::send(self, &with_message).await
        })
    }
}

/// `fields`, plus `message` as the message text.
struct WithMessage<'a> {
    bytes: &'a [u8],
    fields: &'a dyn Fields,
}

impl Fields for WithMessage<'_> {
    fn field(&self, name: &str) -> Option<String> {
        self.fields.field(name).or_else(|| {
            (name == "message").then(|| String::from_utf8_lossy(self.bytes).into_owned())
        })
    }
}

/// Server errors that go away by themselves: retry. The rest of what the server says is
/// about this message or the SQL: permanent, with the server's words.
fn classify(doing: &str, error: &tokio_postgres::Error) -> SendError {
    let message = format!("{doing}: {}", pg_error(error));
    let Some(code) = error.code() else {
        // No SQLSTATE: the connection failed or closed.
        return SendError::Retryable(message);
    };
    let transient = code.code().starts_with("08") // connection exception
        || code.code().starts_with("53") // insufficient resources
        || code.code().starts_with("57P") // shutdown, cannot connect now
        || [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
        ]
        .contains(code);
    if transient {
        SendError::Retryable(message)
    } else {
        SendError::Permanent(message)
    }
}

/// The server's message with its SQLSTATE, or the client error with its cause. The server's
/// DETAIL is left out: it quotes the values (`Key (id)=(12345) already exists`), which may be
/// patient data, and errors end up in logs.
fn pg_error(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

fn pool_error(error: &PoolError) -> String {
    match error {
        PoolError::Backend(e) => pg_error(e),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_toml_hides_password() {
        let c: PgWriterConfig = toml::from_str(
            r#"
            url = "postgres://u:hunter2@h/db"
            sql = "INSERT INTO t VALUES ($1)"
            params = ["${PID-3-1}"]
            "#,
        )
        .unwrap();
        assert_eq!(c.pool_size, 4);
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(
            toml::from_str::<PgWriterConfig>("url = \"x\"\nsql = \"y\"\nquery = \"z\"").is_err()
        );
    }
}
