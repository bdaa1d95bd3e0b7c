//! Counters of a running server.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of an [`MllpServer`](crate::MllpServer), updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct ServerStats {
    connections_accepted: AtomicU64,
    connections_rejected: AtomicU64,
    connections_open: AtomicU64,
    messages: AtomicU64,
    replies: AtomicU64,
    frame_errors: AtomicU64,
    timeouts: AtomicU64,
    tls_failures: AtomicU64,
    io_errors: AtomicU64,
    skipped_bytes: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Connections accepted and served.
    pub connections_accepted: u64,
    /// Connections closed at once because `max_connections` were open.
    pub connections_rejected: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// Frames received and passed to the handler.
    pub messages: u64,
    /// Replies written.
    pub replies: u64,
    /// Oversized, cut and truncated frames.
    pub frame_errors: u64,
    /// Connections closed by the idle, read or write timeout.
    pub timeouts: u64,
    /// Failed or timed-out TLS handshakes.
    pub tls_failures: u64,
    /// Connections ended by a socket error.
    pub io_errors: u64,
    /// Bytes skipped outside frames.
    pub skipped_bytes: u64,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    ConnectionsAccepted,
    ConnectionsRejected,
    Messages,
    Replies,
    FrameErrors,
    Timeouts,
    TlsFailures,
    IoErrors,
}

impl ServerStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections_accepted: get(&self.connections_accepted),
            connections_rejected: get(&self.connections_rejected),
            connections_open: get(&self.connections_open),
            messages: get(&self.messages),
            replies: get(&self.replies),
            frame_errors: get(&self.frame_errors),
            timeouts: get(&self.timeouts),
            tls_failures: get(&self.tls_failures),
            io_errors: get(&self.io_errors),
            skipped_bytes: get(&self.skipped_bytes),
        }
    }

    pub(crate) fn bump(&self, counter: Counter) {
        let c = match counter {
            Counter::ConnectionsAccepted => &self.connections_accepted,
            Counter::ConnectionsRejected => &self.connections_rejected,
            Counter::Messages => &self.messages,
            Counter::Replies => &self.replies,
            Counter::FrameErrors => &self.frame_errors,
            Counter::Timeouts => &self.timeouts,
            Counter::TlsFailures => &self.tls_failures,
            Counter::IoErrors => &self.io_errors,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_skipped(&self, n: usize) {
        self.skipped_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts a connection as open until the guard is dropped.
    pub(crate) fn open_connection(&self) -> OpenGuard<'_> {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(&self.connections_open)
    }
}

/// Decrements the open-connection gauge when dropped.
pub(crate) struct OpenGuard<'a>(&'a AtomicU64);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
