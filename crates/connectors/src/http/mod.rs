//! HTTP/1.1: an [`HttpListener`] source (each POST body is a message) and an [`HttpSender`]
//! destination, both with TLS (rustls, ring) and optional client certificates.
//!
//! The listener serves connections with hyper directly (through `hyper-util`) and routes
//! with axum, so that the TLS handshake, its timeout and the client certificate's subject are
//! handled the same way as by the MLLP server, with no second TLS integration. The sender is
//! hyper-util's pooled client with `hyper-rustls`, sharing the tree's one rustls.

pub(crate) mod client_tls;
mod listener;
mod sender;
pub mod server;

pub use client_tls::HttpClientTls;
pub use listener::{HttpListener, HttpListenerConfig};
pub use mllp::TlsServerConfig;
pub use sender::{HttpSender, HttpSenderConfig, StatusMatch};
pub use server::{PeerConn, ServeOptions, serve};
