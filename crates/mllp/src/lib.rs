//! # mllp — the MLLP transport for HL7 v2
//!
//! HL7 v2 messages travel over TCP in MLLP frames: a start byte `0x0B`, the message, and the
//! end bytes `0x1C 0x0D`. This crate is Plexus' MLLP layer, in three parts:
//!
//! - an IO-free [`Framer`] that turns pushed bytes into frames, skipping (and counting) bytes
//!   between frames, bounding frame size, and reporting cut and truncated frames; plus
//!   [`encode`] and a tokio codec, [`MllpCodec`];
//! - [`MllpServer`]: a listener that hands each message to a [`Handler`] and writes back its
//!   reply (the ACK), one message at a time per connection, with connection and in-flight
//!   limits, idle and slow-sender timeouts, TLS or mutual TLS with reloadable certificates,
//!   graceful shutdown and counters;
//! - [`MllpClient`]: a sender that waits for each response, with timeouts and reconnection
//!   with exponential backoff and jitter (at-least-once delivery).
//!
//! It does not parse HL7: payloads are bytes (see the `hl7v2` crate).
//!
//! ```
//! use bytes::Bytes;
//! use mllp::{ClientConfig, Handler, HandlerReply, MllpClient, MllpServer, PeerInfo, ServerConfig};
//!
//! /// Answers every message with the same (simplified) ACK.
//! struct Ack;
//!
//! impl Handler for Ack {
//!     async fn handle(&self, _payload: Bytes, _peer: &PeerInfo) -> HandlerReply {
//!         HandlerReply::Send(Bytes::from_static(b"MSH|^~\\&|EHR||LAB||20260101||ACK|9|P|2.5\rMSA|AA|C1\r"))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> mllp::Result<()> {
//! let server = MllpServer::bind(ServerConfig::new("127.0.0.1:0".parse().unwrap()), Ack)?;
//! let addr = server.local_addr();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(server.serve(async { stopped.await.ok(); }));
//!
//! let mut client = MllpClient::new(ClientConfig::new("127.0.0.1", addr.port()))?;
//! let ack = client.send(b"MSH|^~\\&|LAB||EHR||20260101||ORU^R01|C1|P|2.5\r").await?;
//! assert!(ack.ends_with(b"MSA|AA|C1\r"));
//!
//! client.close().await;
//! stop.send(()).ok();
//! running.await.unwrap()?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod allow;
pub mod client;
pub mod codec;
pub mod duration;
pub mod error;
pub mod frame;
pub mod server;
pub mod tls;

pub use client::{ClientConfig, MllpClient, RetryConfig};
pub use codec::MllpCodec;
pub use error::{Error, FrameError, Result};
pub use frame::{
    CARRIAGE_RETURN, DEFAULT_MAX_FRAME_BYTES, END_BLOCK, ERROR_HEAD_BYTES, Event, Framer,
    START_BLOCK, encode, encode_frame,
};
pub use server::{
    Handler, HandlerReply, MllpServer, PeerInfo, ServerConfig, ServerStats, StatsSnapshot,
};
pub use tls::{ReloadableTls, TlsClientConfig, TlsServerConfig};
