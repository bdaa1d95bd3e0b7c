//! The MLLP listener: accepts connections (optionally TLS), reads frames one at a time per
//! connection, passes each payload to a [`Handler`] and writes its reply.

mod config;
mod connection;
mod stats;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

pub use config::ServerConfig;
pub use stats::{ServerStats, StatsSnapshot};

use crate::error::{Error, FrameError, Result};
use crate::tls::ReloadableTls;
use stats::Counter;

/// Who sent a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The remote address of the connection.
    pub addr: SocketAddr,
    /// The subject of the client's certificate as an RFC 4514 string (e.g.
    /// `CN=lab-system,O=Hospital`), when the connection uses TLS with a client certificate.
    pub tls_subject: Option<String>,
    /// A number unique to this connection within one server, for logs.
    pub connection_id: u64,
}

/// What the server does after the handler has dealt with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerReply {
    /// Frame these bytes (usually an ACK), send them, and read the next message.
    Send(Bytes),
    /// Frame and send these bytes, then close the connection.
    SendAndClose(Bytes),
    /// Send nothing and read the next message (e.g. the message asked for no
    /// acknowledgment: MSH-15/MSH-16 `NE`).
    NoReply,
    /// Close the connection without replying.
    Close,
}

/// Processes the messages a server receives.
///
/// `handle` is called once per frame, in order, never twice at once for one connection: the
/// next frame is not read before the reply to this one is written, so a slow handler slows its
/// senders down rather than filling memory. The reply should be sent only once the message is
/// safe (e.g. durably stored).
pub trait Handler: Send + Sync + 'static {
    /// Handles one message payload (the frame without its framing bytes).
    fn handle(&self, payload: Bytes, peer: &PeerInfo) -> impl Future<Output = HandlerReply> + Send;

    /// Called on a framing error, with the first bytes of the failed frame's payload (up to
    /// [`ERROR_HEAD_BYTES`](crate::ERROR_HEAD_BYTES), e.g. to build a reject ACK from its MSH).
    /// Bytes returned are framed and sent (best effort) before the server acts on the error:
    /// an oversized frame closes the connection; after a cut frame the server goes on with the
    /// frame that cut it (a reply here is then an extra reply the sender may not expect); a
    /// truncated frame means the sender has closed. The default sends nothing.
    fn on_frame_error(&self, error: &FrameError, head: &[u8], peer: &PeerInfo) -> Option<Bytes> {
        let _ = (error, head, peer);
        None
    }
}

impl<H: Handler> Handler for Arc<H> {
    fn handle(&self, payload: Bytes, peer: &PeerInfo) -> impl Future<Output = HandlerReply> + Send {
        H::handle(self, payload, peer)
    }

    fn on_frame_error(&self, error: &FrameError, head: &[u8], peer: &PeerInfo) -> Option<Bytes> {
        H::on_frame_error(self, error, head, peer)
    }
}

/// An MLLP server bound to its address, ready to [`serve`](Self::serve).
///
/// ```no_run
/// use bytes::Bytes;
/// use mllp::{Handler, HandlerReply, MllpServer, PeerInfo, ServerConfig};
///
/// struct Ack;
///
/// impl Handler for Ack {
///     async fn handle(&self, _payload: Bytes, _peer: &PeerInfo) -> HandlerReply {
///         HandlerReply::Send(Bytes::from_static(b"MSH|^~\\&|||||||ACK|1|P|2.5\rMSA|AA|1\r"))
///     }
/// }
///
/// # async fn run() -> mllp::Result<()> {
/// let server = MllpServer::bind(ServerConfig::default(), Ack)?;
/// println!("listening on {}", server.local_addr());
/// server.serve(async { tokio::signal::ctrl_c().await.ok(); }).await
/// # }
/// ```
pub struct MllpServer<H> {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: ServerConfig,
    handler: Arc<H>,
    tls: Option<ReloadableTls>,
    stats: Arc<ServerStats>,
}

impl<H> std::fmt::Debug for MllpServer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MllpServer")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What every connection task shares.
struct Shared<H> {
    handler: Arc<H>,
    config: ServerConfig,
    tls: Option<ReloadableTls>,
    stats: Arc<ServerStats>,
    in_flight: Semaphore,
    /// Receive-buffer budget shared by all connections, in KiB (see
    /// [`ServerConfig::max_buffered_bytes`]).
    buffer_budget: Semaphore,
}

impl<H: Handler> MllpServer<H> {
    /// Validates the configuration, loads the TLS files and binds the listening socket. Must be
    /// called inside a tokio runtime.
    pub fn bind(config: ServerConfig, handler: H) -> Result<Self> {
        config.validate()?;
        let tls = config.tls.clone().map(ReloadableTls::new).transpose()?;
        let bind_error = |e| Error::io(format!("binding {}", config.bind), e);
        let socket = if config.bind.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(bind_error)?;
        socket.set_reuseaddr(true).map_err(bind_error)?;
        socket.bind(config.bind).map_err(bind_error)?;
        let listener = socket.listen(config.backlog).map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            local_addr,
            config,
            handler: Arc::new(handler),
            tls,
            stats: Arc::new(ServerStats::default()),
        })
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's counters; the handle stays valid after `serve` returns.
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }

    /// A handle to reload the TLS certificate, key and CA files (e.g. on SIGHUP), when TLS is
    /// configured.
    pub fn tls(&self) -> Option<ReloadableTls> {
        self.tls.clone()
    }

    /// Accepts and serves connections until `shutdown` completes; then stops accepting, closes
    /// connections that are not inside a handler call, lets the handler calls in progress
    /// finish and their replies be written, and returns.
    ///
    /// Dropping the returned future (e.g. under a `tokio::time::timeout` for a bounded
    /// shutdown) aborts all connections at once.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Self {
            listener,
            local_addr,
            config,
            handler,
            tls,
            stats,
        } = self;
        let connection_limit = Arc::new(Semaphore::new(config.max_connections));
        let shared = Arc::new(Shared {
            handler,
            in_flight: Semaphore::new(config.max_in_flight),
            buffer_budget: Semaphore::new(
                (config.max_buffered_bytes >> 10).min(Semaphore::MAX_PERMITS),
            ),
            config,
            tls,
            stats,
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut next_id: u64 = 0;
        tracing::info!(addr = %local_addr, tls = shared.tls.is_some(), "MLLP server listening");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, addr)) => {
                        next_id += 1;
                        if !shared.config.allow.allows(addr.ip()) {
                            shared.stats.bump(Counter::ConnectionsRejected);
                            tracing::warn!(peer = %addr, "address not in the listener's allowlist; closing the connection");
                            drop(tcp);
                            continue;
                        }
                        let Ok(permit) = Arc::clone(&connection_limit).try_acquire_owned() else {
                            shared.stats.bump(Counter::ConnectionsRejected);
                            tracing::warn!(
                                peer = %addr,
                                limit = shared.config.max_connections,
                                "connection limit reached; closing the new connection"
                            );
                            drop(tcp);
                            continue;
                        };
                        shared.stats.bump(Counter::ConnectionsAccepted);
                        let span = tracing::info_span!("mllp_connection", id = next_id, peer = %addr);
                        let task = connection::serve_connection(
                            Arc::clone(&shared),
                            tcp,
                            PeerInfo { addr, tls_subject: None, connection_id: next_id },
                            stop_rx.clone(),
                        );
                        tasks.spawn(async move {
                            task.await;
                            drop(permit);
                        }.instrument(span));
                    }
                    Err(e) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => log_join(joined),
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        tracing::info!(
            open = tasks.len(),
            "MLLP server stopped accepting; finishing messages in progress"
        );
        while let Some(joined) = tasks.join_next().await {
            log_join(joined);
        }
        tracing::info!(addr = %local_addr, "MLLP server stopped");
        Ok(())
    }
}

fn log_join(joined: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined
        && e.is_panic()
    {
        tracing::error!("an MLLP connection task panicked (a bug in the handler?)");
    }
}
