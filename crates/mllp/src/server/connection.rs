//! One connection: TLS handshake, then read frame → handler → reply, one message at a time.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, timeout, timeout_at};

use super::stats::Counter;
use super::{Handler, HandlerReply, PeerInfo, Shared};
use crate::error::FrameError;
use crate::frame::{Event, Framer, encode};
use crate::tls::subject_dn;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// The share of the server's receive-buffer budget one connection holds, in KiB; returned when
/// the connection ends.
struct BudgetShare<'a> {
    budget: &'a tokio::sync::Semaphore,
    held: u32,
}

impl BudgetShare<'_> {
    /// Holds exactly enough budget for `bytes`, waiting until `deadline` for more when other
    /// connections hold it. `Err(Some(()))` when the deadline passed, `Err(None)` when the
    /// server is gone.
    async fn reserve(&mut self, bytes: usize, deadline: Instant) -> Result<(), Option<()>> {
        let need = kib(bytes);
        self.shrink_to(need);
        if need <= self.held {
            return Ok(());
        }
        match timeout_at(deadline, self.budget.acquire_many(need - self.held)).await {
            Ok(Ok(permit)) => {
                permit.forget();
                self.held = need;
                Ok(())
            }
            Ok(Err(_)) => Err(None),
            Err(_) => Err(Some(())),
        }
    }

    /// Gives back what is above `kib`.
    fn shrink_to(&mut self, kib: u32) {
        if self.held > kib {
            self.budget.add_permits((self.held - kib) as usize);
            self.held = kib;
        }
    }
}

impl Drop for BudgetShare<'_> {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// Longest wait for a clean close (TLS close_notify, FIN) after deciding to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) async fn serve_connection<H: Handler>(
    shared: Arc<Shared<H>>,
    tcp: TcpStream,
    mut peer: PeerInfo,
    mut stop: watch::Receiver<bool>,
) {
    let _open = shared.stats.open_connection();
    // ACKs are small and awaited by the sender: send them at once.
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &shared.tls else {
        tracing::debug!("connection opened");
        run(&shared, tcp, &peer, &mut stop).await;
        return;
    };
    let handshake_timeout = tls.settings().handshake_timeout;
    match timeout(handshake_timeout, tls.acceptor().accept(tcp)).await {
        Ok(Ok(stream)) => {
            peer.tls_subject = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|cert| subject_dn(cert));
            tracing::debug!(
                tls_subject = peer.tls_subject.as_deref(),
                "TLS connection opened"
            );
            run(&shared, stream, &peer, &mut stop).await;
        }
        Ok(Err(e)) => {
            shared.stats.bump(Counter::TlsFailures);
            tracing::warn!(error = %e, "TLS handshake failed");
        }
        Err(_) => {
            shared.stats.bump(Counter::TlsFailures);
            tracing::warn!(timeout = ?handshake_timeout, "TLS handshake timed out");
        }
    }
}

/// Why a connection ends (for the closing log line).
#[derive(Debug, Clone, Copy)]
enum Close {
    PeerClosed,
    Handler,
    Shutdown,
    IdleTimeout,
    ReadTimeout,
    FrameError,
    WriteFailed,
    ReadFailed,
}

async fn run<S, H>(
    shared: &Shared<H>,
    mut stream: S,
    peer: &PeerInfo,
    stop: &mut watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    let close = read_loop(shared, &mut stream, peer, stop).await;
    tracing::debug!(reason = ?close, "closing connection");
    let _ = timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
}

#[allow(
    clippy::too_many_lines,
    reason = "one connection's read state machine reads best in one place"
)]
async fn read_loop<S, H>(
    shared: &Shared<H>,
    stream: &mut S,
    peer: &PeerInfo,
    stop: &mut watch::Receiver<bool>,
) -> Close
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    let config = &shared.config;
    let stats = &shared.stats;
    let mut framer = Framer::with_max_frame_bytes(config.max_frame_bytes);
    let mut read_buf = BytesMut::new();
    let mut share = BudgetShare {
        budget: &shared.buffer_budget,
        held: 0,
    };
    let mut idle_deadline = Instant::now() + config.idle_timeout;
    // When the frame being received must be complete.
    let mut frame_deadline: Option<Instant> = None;
    loop {
        while let Some(event) = framer.next_event() {
            match event {
                Event::Skipped(n) => {
                    stats.add_skipped(n);
                    tracing::debug!(bytes = n, "skipped bytes outside MLLP frames");
                }
                Event::Frame(payload) => {
                    frame_deadline = None;
                    if let Some(close) = handle_frame(shared, stream, peer, payload).await {
                        return close;
                    }
                    if *stop.borrow() {
                        return Close::Shutdown;
                    }
                    idle_deadline = Instant::now() + config.idle_timeout;
                }
                Event::Error { error, head } => {
                    // A frame cut by a new start byte does not restart the read timeout: a
                    // sender repeating start bytes must not keep the connection forever.
                    frame_error(shared, stream, peer, &error, &head).await;
                    if matches!(error, FrameError::TooLarge { .. }) {
                        return Close::FrameError;
                    }
                }
            }
        }
        if framer.in_frame() {
            frame_deadline.get_or_insert_with(|| Instant::now() + config.read_timeout);
        } else {
            frame_deadline = None;
        }
        if *stop.borrow() {
            return Close::Shutdown;
        }

        // hold budget for what is buffered plus the next read; wait (within the deadline) when
        // other connections hold it all
        let deadline = frame_deadline.unwrap_or(idle_deadline);
        match share
            .reserve(framer.buffered_len() + READ_CHUNK, deadline)
            .await
        {
            Ok(()) => {}
            Err(None) => return Close::Shutdown,
            Err(Some(())) => {
                stats.bump(Counter::Timeouts);
                tracing::warn!(
                    budget = config.max_buffered_bytes,
                    "receive-buffer budget of the server exhausted for the whole read timeout; closing"
                );
                return if frame_deadline.is_some() {
                    Close::ReadTimeout
                } else {
                    Close::IdleTimeout
                };
            }
        }
        read_buf.reserve(READ_CHUNK);
        let read = tokio::select! {
            read = timeout_at(deadline, stream.read_buf(&mut read_buf)) => read,
            // Woken by shutdown: the loop above notices it. An error means the server is
            // gone altogether.
            changed = stop.changed() => {
                if changed.is_err() {
                    return Close::Shutdown;
                }
                continue;
            }
        };
        match read {
            Ok(Ok(0)) => {
                if let Some(event) = framer.finish() {
                    match event {
                        Event::Error { error, head } => {
                            frame_error(shared, stream, peer, &error, &head).await;
                        }
                        Event::Skipped(n) => stats.add_skipped(n),
                        Event::Frame(_) => {}
                    }
                }
                return Close::PeerClosed;
            }
            Ok(Ok(_)) => framer.push_buf(read_buf.split()),
            Ok(Err(e)) => {
                stats.bump(Counter::IoErrors);
                tracing::info!(error = %e, "reading from the connection failed");
                return Close::ReadFailed;
            }
            Err(_) => {
                stats.bump(Counter::Timeouts);
                return if frame_deadline.is_some() {
                    tracing::warn!(
                        timeout = ?config.read_timeout,
                        received = framer.buffered_len(),
                        "frame not complete within the read timeout; closing"
                    );
                    Close::ReadTimeout
                } else {
                    tracing::info!(timeout = ?config.idle_timeout, "idle connection; closing");
                    Close::IdleTimeout
                };
            }
        }
    }
}

/// Passes one message to the handler and writes its reply; `Some` if the connection must
/// close.
async fn handle_frame<S, H>(
    shared: &Shared<H>,
    stream: &mut S,
    peer: &PeerInfo,
    payload: Bytes,
) -> Option<Close>
where
    S: AsyncWrite + Unpin + Send,
    H: Handler,
{
    shared.stats.bump(Counter::Messages);
    let reply = {
        let _permit = shared.in_flight.acquire().await.ok();
        shared.handler.handle(payload, peer).await
    };
    let (bytes, then_close) = match reply {
        HandlerReply::Send(bytes) => (bytes, false),
        HandlerReply::SendAndClose(bytes) => (bytes, true),
        HandlerReply::NoReply => return None,
        HandlerReply::Close => return Some(Close::Handler),
    };
    if !write_reply(shared, stream, &bytes).await {
        return Some(Close::WriteFailed);
    }
    shared.stats.bump(Counter::Replies);
    then_close.then_some(Close::Handler)
}

/// Counts and logs a framing error and sends what the handler's hook returns.
async fn frame_error<S, H>(
    shared: &Shared<H>,
    stream: &mut S,
    peer: &PeerInfo,
    error: &FrameError,
    head: &[u8],
) where
    S: AsyncWrite + Unpin + Send,
    H: Handler,
{
    shared.stats.bump(Counter::FrameErrors);
    tracing::warn!(%error, "MLLP framing error");
    if let Some(bytes) = shared.handler.on_frame_error(error, head, peer)
        && write_reply(shared, stream, &bytes).await
    {
        shared.stats.bump(Counter::Replies);
    }
}

/// Frames and writes a reply; false if the connection must close.
async fn write_reply<S, H>(shared: &Shared<H>, stream: &mut S, payload: &Bytes) -> bool
where
    S: AsyncWrite + Unpin + Send,
    H: Handler,
{
    let frame = match encode(payload) {
        Ok(frame) => frame,
        Err(error) => {
            tracing::error!(%error, "the handler's reply cannot be framed; closing");
            return false;
        }
    };
    let limit = shared.config.write_timeout;
    let written = timeout(limit, async {
        stream.write_all(&frame).await?;
        stream.flush().await
    })
    .await;
    match written {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            shared.stats.bump(Counter::IoErrors);
            tracing::info!(error = %e, "writing the reply failed");
            false
        }
        Err(_) => {
            shared.stats.bump(Counter::Timeouts);
            tracing::warn!(timeout = ?limit, "writing the reply timed out; closing");
            false
        }
    }
}
