//! Shared helpers: a recording handler, a running server, raw socket helpers, certificates.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mllp::{
    Event, FrameError, Framer, Handler, HandlerReply, MllpServer, PeerInfo, ReloadableTls,
    ServerConfig, ServerStats,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound for anything a test waits for; far above what the timeouts under test need.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// A handler that records what it sees and answers `MSA|AA|<payload>`.
#[derive(Default)]
pub struct Recorder {
    pub messages: Mutex<Vec<(Bytes, PeerInfo)>>,
    pub frame_errors: Mutex<Vec<FrameError>>,
    /// How long each call takes.
    pub delay: Duration,
    /// Reply to framing errors with `MSA|AR`.
    pub reject_frame_errors: bool,
    /// Payload that makes the handler close the connection without replying.
    pub close_on: Option<&'static [u8]>,
    /// Payload that makes the handler reply, then close the connection.
    pub close_after: Option<&'static [u8]>,
    /// Payload that the handler answers with nothing.
    pub silent_on: Option<&'static [u8]>,
    /// When set, each call waits for a permit that the test adds.
    pub gate: Option<tokio::sync::Semaphore>,
    /// Handler calls running now, and the most seen at once.
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
}

impl Recorder {
    pub fn payloads(&self) -> Vec<Bytes> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }
}

pub fn ack_for(payload: &[u8]) -> Bytes {
    [b"MSA|AA|".as_slice(), payload].concat().into()
}

impl Handler for Recorder {
    async fn handle(&self, payload: Bytes, peer: &PeerInfo) -> HandlerReply {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        self.messages
            .lock()
            .unwrap()
            .push((payload.clone(), peer.clone()));
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        if self.close_on == Some(&payload[..]) {
            return HandlerReply::Close;
        }
        if self.silent_on == Some(&payload[..]) {
            return HandlerReply::NoReply;
        }
        if self.close_after == Some(&payload[..]) {
            return HandlerReply::SendAndClose(ack_for(&payload));
        }
        HandlerReply::Send(ack_for(&payload))
    }

    fn on_frame_error(&self, error: &FrameError, _head: &[u8], _peer: &PeerInfo) -> Option<Bytes> {
        self.frame_errors.lock().unwrap().push(error.clone());
        self.reject_frame_errors
            .then(|| Bytes::from_static(b"MSA|AR"))
    }
}

/// A configuration on an ephemeral port with short timeouts.
pub fn test_config() -> ServerConfig {
    ServerConfig {
        idle_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(10),
        write_timeout: Duration::from_secs(5),
        ..ServerConfig::new("127.0.0.1:0".parse().unwrap())
    }
}

/// A server running in the background.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub stats: Arc<ServerStats>,
    pub tls: Option<ReloadableTls>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<mllp::Result<()>>,
}

pub fn start<H: Handler>(config: ServerConfig, handler: H) -> Running {
    let server = MllpServer::bind(config, handler).unwrap();
    let (stop, stopped) = oneshot::channel();
    Running {
        addr: server.local_addr(),
        stats: server.stats(),
        tls: server.tls(),
        stop: Some(stop),
        task: tokio::spawn(server.serve(async {
            stopped.await.ok();
        })),
    }
}

impl Running {
    /// Signals shutdown without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits for `serve` to return.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("server did not stop")
            .unwrap()
            .unwrap();
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    pub async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }
}

/// Waits until `condition` holds (checked every 10 ms), failing after [`PATIENCE`].
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn write_frame<S: AsyncWrite + Unpin>(stream: &mut S, payload: &[u8]) {
    stream
        .write_all(&mllp::encode(payload).unwrap())
        .await
        .unwrap();
}

/// Reads one frame, or `None` if the connection closes (or resets) first.
pub async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Bytes> {
    let mut framer = Framer::new();
    let mut buf = BytesMut::with_capacity(4096);
    tokio::time::timeout(PATIENCE, async {
        loop {
            while let Some(event) = framer.next_event() {
                if let Event::Frame(payload) = event {
                    return Some(payload);
                }
            }
            buf.clear();
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => framer.push(&buf),
            }
        }
    })
    .await
    .expect("no frame and no close within the test's patience")
}

/// Sends one frame and returns the reply.
pub async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    payload: &[u8],
) -> Bytes {
    write_frame(stream, payload).await;
    read_frame(stream)
        .await
        .expect("connection closed instead of replying")
}

/// Waits until the server closes the connection (EOF or reset), discarding what it sends.
pub async fn expect_closed<S: AsyncRead + Unpin>(stream: &mut S) {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server did not close the connection");
}

#[path = "../../../../tests/support/pki.rs"]
mod pki;
pub use pki::Pki;
