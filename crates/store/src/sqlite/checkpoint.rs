//! WAL checkpoints off the writer thread.
//!
//! SQLite's automatic checkpoint runs inside the `COMMIT` that crosses its threshold, on the
//! writer thread: every caller of that batch waits while up to a thousand pages are copied
//! into the database file and it is synced. Under load that is many times a second, and it
//! shows as the writer's CPU and as the tail of ACK latency.
//!
//! Here the writer only counts: its WAL hook (which replaces the automatic checkpoint) wakes
//! a checkpoint thread with its own connection each time the WAL has grown by
//! [`Limits::soft`] frames, and that thread runs `PASSIVE` checkpoints, which never block the
//! writer. A passive checkpoint cannot let the WAL start over while the writer keeps
//! appending, so when the WAL reaches [`Limits::hard`] frames the writer waits for the
//! thread's checkpoint in progress, if any, and checkpoints the (by then small) rest itself;
//! the next transaction then rewinds the WAL to its start. The WAL therefore never holds much
//! more than [`Limits::hard`] frames (`[store] wal_max_mb`). Durability is unchanged: a
//! commit is synced to the WAL before it is answered, whoever copies it into the database
//! later.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use super::writer::Halt;
use crate::error::{Result, StoreError};

/// When checkpoints run, in WAL frames.
///
/// `soft`: frames appended after which the checkpoint thread is woken. A checkpoint copies
/// each page once however often the frames since the last one changed it (the tail pages of
/// an index's frequent values are rewritten by every commit), so fewer, larger checkpoints
/// copy less. Measured on the FHIR import (1,000 patients): waking the thread at every commit
/// past 1,000 frames cost it 45–48 µs of CPU per resource and 66 KB written per resource;
/// once per 2,000 frames 20 µs and 47 KB; once per 4,000 frames 12 µs and 43 KB.
///
/// `hard`: frames after which the writer checkpoints the rest itself (what the thread has not
/// copied yet, at most about `soft` frames), so the WAL can rewind. Every write waits while
/// it does, so a limit the writes reach often stalls them: at 1.1M FHIR resources, where each
/// resource dirties a few random index pages, a limit of 11,500 frames (47 MB) was reached
/// every few commits (import 15,300–15,900 resources/s), 46,000 frames 19,000–19,800/s,
/// 92,000 frames 20,800/s, and the CRUD mix's p99 fell from 21 to 9 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    /// Frames appended after which the checkpoint thread is woken.
    pub soft: i32,
    /// Frames after which the writer checkpoints the rest itself.
    pub hard: i32,
}

impl Limits {
    /// The limits for a WAL of at most about `max_bytes` with pages of `page_size` bytes: the
    /// hard limit there, the thread woken every quarter of it.
    pub(super) fn for_size(max_bytes: u64, page_size: u64) -> Self {
        let frame = page_size.max(512) + 24;
        let hard = i32::try_from(max_bytes / frame).unwrap_or(i32::MAX).max(64);
        Self {
            soft: (hard / 4).max(16),
            hard,
        }
    }
}

/// Installs the WAL hook on the writer connection and starts the checkpoint thread. The thread
/// is not joined: it ends by itself when the writer connection is closed (the hook, and with
/// it the sender, is dropped).
///
/// `halt` stops every checkpoint once set, and is set by a checkpoint that fails with an I/O
/// error: after a failed write or sync of the database file, a later checkpoint that seemed to
/// succeed could let the WAL start over on top of frames whose copy in the database was lost.
/// The frames then stay in the WAL, which SQLite reads at the next start.
pub(super) fn start(
    writer: &mut Connection,
    file: &Path,
    busy: Duration,
    halt: &Halt,
    limits: Limits,
) -> Result<()> {
    const OP: &str = "open";
    let conn = Connection::open(file).map_err(StoreError::sqlite(OP))?;
    conn.busy_timeout(busy).map_err(StoreError::sqlite(OP))?;
    // the checkpoint syncs the database file before it lets the WAL be reused
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(StoreError::sqlite(OP))?;
    let (wake, woken) = sync_channel::<()>(1);
    // held by whoever checkpoints, so the writer can wait for the thread at the hard limit
    let turn = Arc::new(Mutex::new(()));
    let thread_turn = Arc::clone(&turn);
    let mut woke_at = 0;
    let (hook_halt, thread_halt) = (Arc::clone(halt), Arc::clone(halt));
    writer
        .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
            if hook_halt.get().is_none() {
                on_commit(wal, pages, limits, &mut woke_at, &wake, &turn, &hook_halt);
            }
            Ok(())
        }))
        .map_err(StoreError::sqlite(OP))?;
    std::thread::Builder::new()
        .name("plexus-store-checkpoint".to_owned())
        .spawn(move || run(&conn, &woken, &thread_turn, &thread_halt))
        .map(drop)
        .map_err(|e| StoreError::Task {
            op: OP,
            detail: format!("cannot start the checkpoint thread: {e}"),
        })
}

/// The writer's side, after each commit: `pages` is the number of frames in the WAL,
/// `woke_at` the WAL's frames when the checkpoint thread was last woken.
fn on_commit(
    wal: &mut rusqlite::hooks::Wal,
    pages: i32,
    limits: Limits,
    woke_at: &mut i32,
    wake: &SyncSender<()>,
    turn: &Mutex<()>,
    halt: &Halt,
) {
    if pages >= limits.hard {
        let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = wal.checkpoint_v2(CheckpointMode::PASSIVE) {
            tracing::debug!(error = %e, pages, "writer checkpoint skipped");
            halt_on_io_error(&e, halt);
        }
        *woke_at = pages;
    } else if wake_due(pages, limits.soft, woke_at) {
        match wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::debug!("checkpoint thread gone; the writer checkpoints at the hard limit");
            }
        }
    }
}

/// Whether the checkpoint thread is due: the WAL has grown by `soft` frames since it was last
/// woken (or since the WAL started over). Records the wake in `woke_at`.
fn wake_due(pages: i32, soft: i32, woke_at: &mut i32) -> bool {
    if pages < *woke_at {
        // the WAL started over
        *woke_at = 0;
    }
    let due = pages >= woke_at.saturating_add(soft);
    if due {
        *woke_at = pages;
    }
    due
}

fn run(conn: &Connection, woken: &Receiver<()>, turn: &Mutex<()>, halt: &Halt) {
    while woken.recv().is_ok() {
        let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
        if halt.get().is_some() {
            continue;
        }
        if let Err(e) = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            tracing::debug!(error = %e, "background checkpoint failed; retrying on the next commit");
            halt_on_io_error(&e, halt);
        }
    }
    tracing::debug!("checkpoint thread stopped");
}

/// Stops the store's writes (and every later checkpoint) if `e` is an I/O error; a busy
/// database or a full disk leaves nothing half-written and is tried again later.
fn halt_on_io_error(e: &rusqlite::Error, halt: &Halt) {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::SystemIoFailure) {
        tracing::error!(error = %e, "a WAL checkpoint failed with an I/O error; the store takes no more writes");
        let _ = halt.set(format!("a WAL checkpoint failed with an I/O error ({e})"));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rusqlite::Connection;

    use super::{Limits, start, wake_due};

    /// The limits of a WAL of about 47 MB (the tests' own, smaller than the default).
    const LIMITS: Limits = Limits {
        soft: 3_000,
        hard: 11_500,
    };
    const SOFT_PAGES: i32 = LIMITS.soft;
    const HARD_PAGES: i32 = LIMITS.hard;

    /// A WAL size becomes frames of the database's page size (each with its 24-byte header),
    /// the thread woken every quarter of them; tiny or absurd sizes stay usable.
    #[test]
    fn limits_follow_the_size_and_page_size() {
        let mb = 1 << 20;
        assert_eq!(
            Limits::for_size(360 * mb, 4096),
            Limits {
                soft: 22_905,
                hard: 91_623
            }
        );
        assert_eq!(Limits::for_size(360 * mb, 8192).hard, 45_945);
        assert_eq!(Limits::for_size(0, 4096), Limits { soft: 16, hard: 64 });
        assert_eq!(Limits::for_size(u64::MAX, 4096).hard, i32::MAX);
    }

    /// The thread is woken once per [`SOFT_PAGES`] frames appended, not at every commit past
    /// the threshold, and counting starts over with the WAL.
    #[test]
    fn the_thread_is_woken_once_per_window() {
        let mut woke_at = 0;
        let wakes: Vec<i32> = (1..=3 * SOFT_PAGES / 100)
            .map(|n| n * 100)
            .filter(|&pages| wake_due(pages, SOFT_PAGES, &mut woke_at))
            .collect();
        assert_eq!(wakes, vec![SOFT_PAGES, 2 * SOFT_PAGES, 3 * SOFT_PAGES]);
        // a commit of many frames crosses the line once
        assert!(!wake_due(3 * SOFT_PAGES + 10, SOFT_PAGES, &mut woke_at));
        assert!(wake_due(4 * SOFT_PAGES + 350, SOFT_PAGES, &mut woke_at));
        assert!(!wake_due(5 * SOFT_PAGES + 349, SOFT_PAGES, &mut woke_at));
        // the WAL started over: the next window counts from its start
        assert!(!wake_due(120, SOFT_PAGES, &mut woke_at));
        assert!(!wake_due(SOFT_PAGES - 1, SOFT_PAGES, &mut woke_at));
        assert!(wake_due(SOFT_PAGES, SOFT_PAGES, &mut woke_at));
    }

    fn wal_bytes(dir: &std::path::Path) -> u64 {
        std::fs::metadata(dir.join("db-wal")).map_or(0, |m| m.len())
    }

    /// Under a steady stream of commits the WAL is copied back by the checkpoint thread and
    /// rewinds at the hard limit, so it stays bounded; without checkpoints this run leaves a
    /// WAL of about 250 MB.
    #[test]
    fn the_wal_stays_bounded_under_sustained_writes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db");
        let busy = Duration::from_secs(5);
        let (mut writer, _) = super::super::open_writer(&file, busy).unwrap();
        // fsyncs are not what this test is about
        writer.pragma_update(None, "synchronous", "OFF").unwrap();
        writer
            .execute_batch("CREATE TABLE t (x BLOB NOT NULL)")
            .unwrap();
        start(&mut writer, &file, busy, &super::Halt::default(), LIMITS).unwrap();
        let mut largest = 0;
        for _ in 0..20_000 {
            writer
                .execute("INSERT INTO t VALUES (randomblob(3000))", [])
                .unwrap();
            largest = largest.max(wal_bytes(dir.path()));
        }
        // the hard limit, and the frames of the commit that crossed it
        let bound = u64::try_from(HARD_PAGES + 100).unwrap() * (4_096 + 24);
        assert!(
            largest < bound,
            "WAL grew to {largest} bytes (bound {bound})"
        );
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 20_000);
        // and everything is readable from a fresh connection after the writer is gone
        drop(writer);
        let reader = Connection::open(&file).unwrap();
        let rows: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 20_000);
    }
}
