//! The server's configuration.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::tls::TlsServerConfig;

/// How an [`MllpServer`](crate::MllpServer) listens and how long it waits. Every field has a
/// default, so `ServerConfig::default()` (or an empty TOML table) is a working plain-TCP
/// listener on `127.0.0.1:2575`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on. Default: `127.0.0.1:2575` (2575 is HL7's registered
    /// port); use `0.0.0.0:2575` to accept senders on other hosts, and port 0 to let the
    /// system choose (see [`MllpServer::local_addr`](crate::MllpServer::local_addr)).
    pub bind: SocketAddr,
    /// Most connections open at once; a connection beyond it is closed as soon as it is
    /// accepted, with a log line. Default: 1000.
    pub max_connections: usize,
    /// Most handler calls running at once across all connections; a frame that arrives while
    /// the limit is reached waits (and so does its sender). Default: 256.
    pub max_in_flight: usize,
    /// A connection on which no frame starts for this long is closed. Counted from the
    /// connection's start or the last reply. Default: 300 s.
    #[serde(with = "crate::duration")]
    pub idle_timeout: Duration,
    /// A frame must be complete this long after its start byte arrived, or the connection is
    /// closed (this drops clients that trickle bytes). Default: 30 s.
    #[serde(with = "crate::duration")]
    pub read_timeout: Duration,
    /// Writing one reply must finish within this long, or the connection is closed (a client
    /// that does not read its ACKs). Default: 30 s.
    #[serde(with = "crate::duration")]
    pub write_timeout: Duration,
    /// Largest payload accepted, in bytes; a larger frame closes the connection.
    /// Default: 16 MiB.
    pub max_frame_bytes: usize,
    /// Most bytes of incomplete frames buffered across all connections at once, so that many
    /// senders of large messages cannot exhaust memory together (the worst case would
    /// otherwise be `max_connections × max_frame_bytes`). A connection that would go over it
    /// waits before reading more — within its read timeout. At least `max_frame_bytes` plus
    /// 64 KiB. Default: 256 MiB.
    pub max_buffered_bytes: usize,
    /// Length of the listen queue of connections not yet accepted. Default: 1024.
    pub backlog: u32,
    /// TLS settings; `None` (the default) listens in plain TCP.
    pub tls: Option<TlsServerConfig>,
    /// Peer addresses and networks allowed to connect (`["10.0.0.0/8", "127.0.0.1"]`);
    /// others are closed at once. Default: empty, everyone.
    pub allow: crate::allow::IpAllowList,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 2575)),
            max_connections: 1000,
            max_in_flight: 256,
            idle_timeout: Duration::from_mins(5),
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_buffered_bytes: 256 << 20,
            backlog: 1024,
            tls: None,
            allow: crate::allow::IpAllowList::default(),
        }
    }
}

impl ServerConfig {
    /// The default configuration listening on `bind`.
    pub fn new(bind: SocketAddr) -> Self {
        Self {
            bind,
            ..Self::default()
        }
    }

    /// Checks that limits and timeouts are usable.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("max_connections", self.max_connections),
            ("max_in_flight", self.max_in_flight),
            ("max_frame_bytes", self.max_frame_bytes),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(Error::Config(format!("{name} must be at least 1")));
            }
        }
        let timeouts = [
            ("idle_timeout", self.idle_timeout),
            ("read_timeout", self.read_timeout),
            ("write_timeout", self.write_timeout),
        ];
        for (name, value) in timeouts {
            if value.is_zero() {
                return Err(Error::Config(format!("{name} must be longer than zero")));
            }
        }
        if self.max_buffered_bytes < self.max_frame_bytes.saturating_add(64 << 10) {
            return Err(Error::Config(
                "max_buffered_bytes must be at least max_frame_bytes plus 64 KiB".into(),
            ));
        }
        if self.max_in_flight > tokio::sync::Semaphore::MAX_PERMITS
            || self.max_connections > tokio::sync::Semaphore::MAX_PERMITS
        {
            return Err(Error::Config("connection limits are too large".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_default() {
        let config: ServerConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, ServerConfig::default());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn durations_and_tls_deserialize() {
        let config: ServerConfig = serde_json::from_str(
            r#"{"bind": "0.0.0.0:6661", "idle_timeout": "5m", "read_timeout": 10,
                "tls": {"cert": "c.pem", "key": "k.pem", "client_ca": "ca.pem"}}"#,
        )
        .unwrap();
        assert_eq!(config.bind.port(), 6661);
        assert_eq!(config.idle_timeout, Duration::from_mins(5));
        assert_eq!(config.read_timeout, Duration::from_secs(10));
        let tls = config.tls.unwrap();
        assert!(!tls.client_cert_optional);
        assert_eq!(tls.handshake_timeout, Duration::from_secs(10));
    }

    #[test]
    fn unknown_fields_and_zero_limits_are_rejected() {
        assert!(serde_json::from_str::<ServerConfig>(r#"{"max_conections": 5}"#).is_err());
        let config = ServerConfig {
            max_connections: 0,
            ..ServerConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
