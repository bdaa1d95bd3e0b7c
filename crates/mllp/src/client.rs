//! The MLLP sender: one connection, one message at a time, reconnecting with exponential
//! backoff and jitter.

use std::hash::{BuildHasher as _, RandomState};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt as _, SinkExt, StreamExt as _};
use rustls_pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Framed;
use tokio_util::either::Either;

use crate::codec::MllpCodec;
use crate::error::{Error, FrameError, Result};
use crate::frame::{DEFAULT_MAX_FRAME_BYTES, encode};
use crate::tls::TlsClientConfig;

/// Where and how an [`MllpClient`] sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Host name or IP address of the receiver.
    pub host: String,
    /// TCP port of the receiver. Default: 2575.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Longest wait for the TCP connection (and, separately, the TLS handshake).
    /// Default: 10 s.
    #[serde(default = "default_connect_timeout", with = "crate::duration")]
    pub connect_timeout: Duration,
    /// Longest wait for the response frame (the ACK) after sending a message. A timeout
    /// closes the connection and is not retried. Default: 30 s.
    #[serde(default = "default_ack_timeout", with = "crate::duration")]
    pub ack_timeout: Duration,
    /// Largest response payload accepted, in bytes. Default: 16 MiB.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// TLS settings; `None` (the default) sends in plain TCP.
    #[serde(default)]
    pub tls: Option<TlsClientConfig>,
    /// How failed connections are retried.
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_port() -> u16 {
    2575
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_ack_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_max_frame_bytes() -> usize {
    DEFAULT_MAX_FRAME_BYTES
}

impl ClientConfig {
    /// The default configuration for sending to `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            connect_timeout: default_connect_timeout(),
            ack_timeout: default_ack_timeout(),
            max_frame_bytes: default_max_frame_bytes(),
            tls: None,
            retry: RetryConfig::default(),
        }
    }

    /// Checks that timeouts and the retry policy are usable.
    pub fn validate(&self) -> Result<()> {
        if self.host.is_empty() {
            return Err(Error::Config("host must not be empty".into()));
        }
        if self.connect_timeout.is_zero() || self.ack_timeout.is_zero() {
            return Err(Error::Config("timeouts must be longer than zero".into()));
        }
        if self.max_frame_bytes == 0 {
            return Err(Error::Config("max_frame_bytes must be at least 1".into()));
        }
        self.retry.validate()
    }
}

/// Exponential backoff with jitter between connection attempts.
///
/// Before retry `n` (1 for the first) the client waits
/// `min(max_delay, initial_delay × multiplier^(n-1))`, shortened by a random fraction of up to
/// `jitter`, so that many senders cut off at once do not reconnect in lockstep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per message, the first included; 1 disables retries. Default: 5.
    pub max_attempts: u32,
    /// Wait before the first retry. Default: 200 ms.
    #[serde(with = "crate::duration")]
    pub initial_delay: Duration,
    /// Longest wait between attempts. Default: 30 s.
    #[serde(with = "crate::duration")]
    pub max_delay: Duration,
    /// Factor by which the wait grows per attempt (at least 1). Default: 2.
    pub multiplier: f64,
    /// Largest fraction (0 to 1) by which a wait is randomly shortened. Default: 0.5.
    pub jitter: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }
}

impl RetryConfig {
    /// Checks the policy's numbers.
    pub fn validate(&self) -> Result<()> {
        if self.max_attempts == 0 {
            return Err(Error::Config(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return Err(Error::Config("retry.multiplier must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::Config("retry.jitter must be between 0 and 1".into()));
        }
        Ok(())
    }

    /// The wait before retry `retry` (1-based) without jitter.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial_delay.as_secs_f64() * self.multiplier.powi(exponent);
        Duration::try_from_secs_f64(secs)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// The wait before retry `retry`, shortened by `random` (in `[0, 1)`) times the jitter.
    pub fn delay(&self, retry: u32, random: f64) -> Duration {
        self.base_delay(retry)
            .mul_f64(1.0 - self.jitter * random.clamp(0.0, 1.0))
    }
}

type Connection = Framed<Either<TcpStream, TlsStream<TcpStream>>, MllpCodec>;

/// An MLLP sender over one connection, opened on first use and reopened after a failure.
///
/// Delivery is **at least once**: when a connection breaks after a message was written and
/// before its response arrived, the client cannot know whether the receiver stored it, and
/// the retry may deliver the message twice. Receivers deduplicate by message control id
/// (MSH-10). A response timeout is not retried (the receiver may still be working on it); the
/// caller decides.
///
/// ```no_run
/// # async fn run() -> mllp::Result<()> {
/// use mllp::{ClientConfig, MllpClient};
///
/// let mut client = MllpClient::new(ClientConfig::new("lab.example", 2575))?;
/// let ack = client.send(b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101||ORU^R01|C1|P|2.5\r").await?;
/// println!("{}", String::from_utf8_lossy(&ack));
/// # Ok(()) }
/// ```
pub struct MllpClient {
    config: ClientConfig,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connection: Option<Connection>,
    rng: u64,
}

impl std::fmt::Debug for MllpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MllpClient")
            .field("config", &self.config)
            .field("connected", &self.connection.is_some())
            .finish_non_exhaustive()
    }
}

/// The outcome of one failed attempt.
enum Failure {
    /// The connection failed; another attempt may succeed.
    Retry(Error),
    /// Retrying would not help (or could do harm).
    Fail(Error),
}

impl MllpClient {
    /// Validates the configuration and loads the TLS files; connects on first [`send`].
    ///
    /// [`send`]: Self::send
    pub fn new(config: ClientConfig) -> Result<Self> {
        config.validate()?;
        let tls = match &config.tls {
            Some(settings) => {
                let name = settings.server_name_for(&config.host)?;
                Some((TlsConnector::from(Arc::new(settings.load()?)), name))
            }
            None => None,
        };
        // Seed for the backoff jitter; it needs to differ between senders, not to be secret.
        let rng = RandomState::new().hash_one(std::time::SystemTime::now()) | 1;
        Ok(Self {
            config,
            tls,
            connection: None,
            rng,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Whether a connection is open (it may still turn out to be broken on the next send).
    pub fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// Opens the connection now (one attempt, no retries) if it is not open.
    pub async fn connect(&mut self) -> Result<()> {
        if self.connection.is_none() {
            let connection = self.open().await.map_err(Failure::into_error)?;
            self.connection = Some(connection);
        }
        Ok(())
    }

    /// Closes the connection, if open.
    pub async fn close(&mut self) {
        if let Some(mut connection) = self.connection.take() {
            let _ = timeout(
                Duration::from_secs(1),
                SinkExt::<&[u8]>::close(&mut connection),
            )
            .await;
        }
    }

    /// Sends one message and returns the payload of the response frame (usually an ACK).
    ///
    /// Connects if needed. If the connection fails (refused, reset, closed before the
    /// response), reconnects and sends again per the [`RetryConfig`]; see the type's doc on
    /// duplicates. Fails at once if the payload holds 0x0B or 0x1C.
    pub async fn send(&mut self, payload: impl AsRef<[u8]>) -> Result<Bytes> {
        let payload = payload.as_ref();
        // Refuse an unframeable payload before touching the network.
        encode(payload)?;
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(payload).await {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            self.connection = None;
            let error = match failure {
                Failure::Fail(error) => return Err(error),
                Failure::Retry(error) if attempt >= self.config.retry.max_attempts => {
                    return Err(Error::RetriesExhausted {
                        attempts: attempt,
                        last: Box::new(error),
                    });
                }
                Failure::Retry(error) => error,
            };
            let random = self.random();
            let delay = self.config.retry.delay(attempt, random);
            tracing::warn!(
                attempt,
                max_attempts = self.config.retry.max_attempts,
                ?delay,
                %error,
                "MLLP send failed; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Sends one message and waits for no response: for messages whose MSH-15 is `NE`, which
    /// a receiver honouring enhanced mode never acknowledges. Connects if needed; a failure is
    /// returned as is (no retry: without an acknowledgment, a resend could not be told from a
    /// first delivery).
    pub async fn send_no_reply(&mut self, payload: impl AsRef<[u8]>) -> Result<()> {
        let payload = payload.as_ref();
        encode(payload)?;
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => match self.open().await {
                Ok(c) => self.connection.insert(c),
                Err(Failure::Fail(e) | Failure::Retry(e)) => return Err(e),
            },
        };
        let peer = format!("{}:{}", self.config.host, self.config.port);
        let sent = timeout(self.config.ack_timeout, connection.send(payload)).await;
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.connection = None;
                Err(match classify(e, &peer) {
                    Failure::Fail(e) | Failure::Retry(e) => e,
                })
            }
            Err(_) => {
                self.connection = None;
                Err(Error::Timeout {
                    what: "sending the message",
                    after: self.config.ack_timeout,
                })
            }
        }
    }

    async fn attempt(&mut self, payload: &[u8]) -> Result<Bytes, Failure> {
        // A kept connection that the receiver has closed meanwhile (e.g. its idle timeout), or
        // that holds an unsolicited frame, is replaced before sending rather than after.
        if let Some(connection) = &mut self.connection
            && let Some(state) = connection.next().now_or_never()
        {
            tracing::debug!(
                closed = state.is_none(),
                "replacing a connection that is no longer usable"
            );
            self.connection = None;
        }
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => self.connection.insert(self.open().await?),
        };
        let peer = format!("{}:{}", self.config.host, self.config.port);
        let ack_timeout = self.config.ack_timeout;
        let exchange = async {
            connection
                .send(payload)
                .await
                .map_err(|e| classify(e, &peer))?;
            match connection.next().await {
                Some(Ok(response)) => Ok(response),
                Some(Err(e)) => Err(classify(e, &peer)),
                None => Err(Failure::Retry(Error::ConnectionClosed {
                    peer: peer.clone(),
                })),
            }
        };
        match timeout(ack_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Fail(Error::Timeout {
                what: "waiting for the response",
                after: ack_timeout,
            })),
        }
    }

    async fn open(&self) -> Result<Connection, Failure> {
        let ClientConfig {
            host,
            port,
            connect_timeout,
            ..
        } = &self.config;
        let tcp = match timeout(*connect_timeout, TcpStream::connect((host.as_str(), *port))).await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                return Err(Failure::Retry(Error::io(
                    format!("connecting to {host}:{port}"),
                    e,
                )));
            }
            Err(_) => {
                return Err(Failure::Retry(Error::Timeout {
                    what: "connecting",
                    after: *connect_timeout,
                }));
            }
        };
        let _ = tcp.set_nodelay(true);
        let stream = match &self.tls {
            None => Either::Left(tcp),
            Some((connector, name)) => {
                match timeout(*connect_timeout, connector.connect(name.clone(), tcp)).await {
                    Ok(Ok(stream)) => Either::Right(stream),
                    // A certificate problem does not go away by retrying.
                    Ok(Err(e)) => {
                        return Err(Failure::Fail(Error::io(
                            format!("TLS handshake with {host}:{port}"),
                            e,
                        )));
                    }
                    Err(_) => {
                        return Err(Failure::Retry(Error::Timeout {
                            what: "TLS handshake",
                            after: *connect_timeout,
                        }));
                    }
                }
            }
        };
        Ok(Framed::new(
            stream,
            MllpCodec::with_max_frame_bytes(self.config.max_frame_bytes),
        ))
    }

    /// A pseudo-random number in `[0, 1)` (xorshift64*), for jitter only.
    fn random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let bits = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        // 53 random bits over 2^53: exact in an f64.
        #[allow(clippy::cast_precision_loss)]
        let value = bits as f64 / (1u64 << 53) as f64;
        value
    }
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Self::Retry(e) | Self::Fail(e) => e,
        }
    }
}

/// Whether an error on an open connection is worth a new connection.
fn classify(error: Error, peer: &str) -> Failure {
    match error {
        // The connection ended inside the response: it broke.
        Error::Frame(FrameError::Truncated { .. }) => Failure::Retry(error),
        Error::Frame(_) => Failure::Fail(error),
        // InvalidData is how rustls reports a TLS alert (e.g. our certificate was refused).
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidData => {
            Failure::Fail(Error::io(format!("TLS with {peer}"), source))
        }
        Error::Io { source, .. } => Failure::Retry(Error::io(format!("talking to {peer}"), source)),
        other => Failure::Fail(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let retry = RetryConfig {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryConfig::default()
        };
        assert_eq!(retry.base_delay(1), Duration::from_millis(100));
        assert_eq!(retry.base_delay(2), Duration::from_millis(200));
        assert_eq!(retry.base_delay(4), Duration::from_millis(800));
        assert_eq!(retry.base_delay(5), Duration::from_secs(1));
        assert_eq!(retry.base_delay(u32::MAX), Duration::from_secs(1));
        assert_eq!(retry.delay(2, 0.0), Duration::from_millis(200));
        let shortest = retry.delay(2, 0.999_999);
        assert!(shortest >= Duration::from_millis(100) && shortest < Duration::from_millis(101));
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut client = MllpClient::new(ClientConfig::new("localhost", 1)).unwrap();
        for _ in 0..1000 {
            let r = client.random();
            assert!((0.0..1.0).contains(&r));
        }
    }

    #[test]
    fn config_defaults_and_validation() {
        let config: ClientConfig =
            serde_json::from_str(r#"{"host": "lab", "retry": {"max_attempts": 2}}"#).unwrap();
        assert_eq!(config.port, 2575);
        assert_eq!(config.retry.max_attempts, 2);
        assert_eq!(config.retry.initial_delay, Duration::from_millis(200));
        assert!(config.validate().is_ok());
        let bad = RetryConfig {
            jitter: 2.0,
            ..RetryConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
