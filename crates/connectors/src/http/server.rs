//! Serving an axum [`Router`] over HTTP/1.1, plain or with TLS (and client certificates),
//! with a connection limit, a header read timeout, an IP allowlist and graceful shutdown.
//! The HTTP listener source, the FHIR API and the admin API all serve through it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use mllp::ReloadableTls;
use mllp::allow::IpAllowList;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;
use tracing::Instrument as _;

/// How [`serve`] runs.
#[derive(Clone)]
pub struct ServeOptions {
    /// TLS (with client certificates when its settings name a CA); `None`: plain HTTP.
    pub tls: Option<ReloadableTls>,
    /// Longest time to receive a request's headers.
    pub read_timeout: Duration,
    /// Most connections open at once; further ones are closed at once.
    pub max_connections: usize,
    /// Peers allowed to connect; others are closed at once.
    pub allow: IpAllowList,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("tls", &self.tls.is_some())
            .field("read_timeout", &self.read_timeout)
            .field("max_connections", &self.max_connections)
            .field("allow", &self.allow)
            .finish()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            tls: None,
            read_timeout: Duration::from_secs(30),
            max_connections: 1024,
            allow: IpAllowList::default(),
        }
    }
}

/// The connection a request came on, in every request's extensions (as
/// `Extension<Arc<PeerConn>>`; the address is also there as axum's
/// `ConnectInfo<SocketAddr>`).
#[derive(Debug, Clone)]
pub struct PeerConn {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The subject of the client certificate (mutual TLS).
    pub tls_subject: Option<String>,
}

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets
/// requests in progress finish, closes idle connections and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let connection_limit = Arc::new(Semaphore::new(options.max_connections));
    let shared = Arc::new(Shared { router, options });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, addr)) => {
                    if !shared.options.allow.allows(addr.ip()) {
                        tracing::warn!(peer = %addr, "address not in the listener's allowlist; closing the connection");
                        continue;
                    }
                    let Ok(permit) = Arc::clone(&connection_limit).try_acquire_owned() else {
                        tracing::warn!(peer = %addr, limit = shared.options.max_connections, "connection limit reached; closing the new connection");
                        continue;
                    };
                    let span = tracing::info_span!("http_connection", peer = %addr);
                    let task = serve_connection(Arc::clone(&shared), tcp, addr, stop_rx.clone());
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
    while let Some(joined) = tasks.join_next().await {
        log_join(joined);
    }
}

/// What every connection task shares.
struct Shared {
    router: Router,
    options: ServeOptions,
}

fn log_join(joined: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined
        && e.is_panic()
    {
        tracing::error!("an HTTP connection task panicked (a bug in a handler?)");
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    addr: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &shared.options.tls else {
        let info = PeerConn {
            addr,
            tls_subject: None,
        };
        serve_http(&shared, tcp, info, stop).await;
        return;
    };
    let handshake_timeout = tls.settings().handshake_timeout;
    match tokio::time::timeout(handshake_timeout, tls.acceptor().accept(tcp)).await {
        Ok(Ok(stream)) => {
            let tls_subject = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|cert| mllp::tls::subject_dn(cert));
            tracing::debug!(
                tls_subject = tls_subject.as_deref(),
                "TLS connection opened"
            );
            serve_http(&shared, stream, PeerConn { addr, tls_subject }, stop).await;
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "TLS handshake failed"),
        Err(_) => tracing::warn!(timeout = ?handshake_timeout, "TLS handshake timed out"),
    }
}

async fn serve_http<S>(shared: &Shared, stream: S, info: PeerConn, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let addr = info.addr;
    let info = Arc::new(info);
    let router = shared.router.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(Arc::clone(&info));
        request.extensions_mut().insert(ConnectInfo(addr));
        router.clone().oneshot(request.map(Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.options.read_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = async { let _ = stop.wait_for(|stopping| *stopping).await; } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}
