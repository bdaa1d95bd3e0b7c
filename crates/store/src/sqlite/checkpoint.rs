//! WAL checkpoints off the writer thread.
//!
//! SQLite's automatic checkpoint runs inside the `COMMIT` that crosses its threshold, on the
//! writer thread: every caller of that batch waits while up to a thousand pages are copied
//! into the database file and it is synced. Under load that is many times a second, and it
//! shows as the writer's CPU and as the tail of ACK latency.
//!
//! Here the writer only counts: its WAL hook (which replaces the automatic checkpoint) wakes
//! a checkpoint thread with its own connection once the WAL holds [`SOFT_PAGES`] frames, and
//! that thread runs `PASSIVE` checkpoints, which never block the writer. A passive checkpoint
//! cannot let the WAL start over while the writer keeps appending, so when the WAL reaches
//! [`HARD_PAGES`] the writer waits for the thread's checkpoint in progress, if any, and
//! checkpoints the (by then small) rest itself; the next transaction then rewinds the WAL to
//! its start. The WAL therefore never holds much more than [`HARD_PAGES`] frames. Durability is unchanged: a commit is synced to the WAL
//! before it is answered, whoever copies it into the database later.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use crate::error::{Result, StoreError};

/// WAL frames after which the checkpoint thread is woken (SQLite's own default threshold).
pub(super) const SOFT_PAGES: i32 = 1_000;
/// WAL frames after which the writer checkpoints the rest itself, so the WAL can rewind.
pub(super) const HARD_PAGES: i32 = 4_000;

/// Installs the WAL hook on the writer connection and starts the checkpoint thread. The thread
/// is not joined: it ends by itself when the writer connection is closed (the hook, and with
/// it the sender, is dropped).
pub(super) fn start(writer: &mut Connection, file: &Path, busy: Duration) -> Result<()> {
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
    writer
        .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
            on_commit(wal, pages, &wake, &turn);
            Ok(())
        }))
        .map_err(StoreError::sqlite(OP))?;
    std::thread::Builder::new()
        .name("plexus-store-checkpoint".to_owned())
        .spawn(move || run(&conn, &woken, &thread_turn))
        .map(drop)
        .map_err(|e| StoreError::Task {
            op: OP,
            detail: format!("cannot start the checkpoint thread: {e}"),
        })
}

/// The writer's side, after each commit: `pages` is the number of frames in the WAL.
fn on_commit(wal: &mut rusqlite::hooks::Wal, pages: i32, wake: &SyncSender<()>, turn: &Mutex<()>) {
    if pages >= HARD_PAGES {
        let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = wal.checkpoint_v2(CheckpointMode::PASSIVE) {
            tracing::debug!(error = %e, pages, "writer checkpoint skipped");
        }
    } else if pages >= SOFT_PAGES {
        match wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::debug!("checkpoint thread gone; the writer checkpoints at the hard limit");
            }
        }
    }
}

fn run(conn: &Connection, woken: &Receiver<()>, turn: &Mutex<()>) {
    while woken.recv().is_ok() {
        let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            tracing::debug!(error = %e, "background checkpoint failed; retrying on the next commit");
        }
    }
    tracing::debug!("checkpoint thread stopped");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rusqlite::Connection;

    use super::{HARD_PAGES, start};

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
        let mut writer = super::super::open_writer(&file, busy).unwrap();
        // fsyncs are not what this test is about
        writer.pragma_update(None, "synchronous", "OFF").unwrap();
        writer
            .execute_batch("CREATE TABLE t (x BLOB NOT NULL)")
            .unwrap();
        start(&mut writer, &file, busy).unwrap();
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
