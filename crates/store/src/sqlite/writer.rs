//! The one writer thread of a SQLite store, and its group commit.
//!
//! Callers send write requests over a channel, each with a oneshot for its reply. The writer
//! takes everything pending (up to `max_batch` requests), runs them in one transaction, commits
//! once and then answers every caller. One fsync then carries a whole batch: under load the
//! batch grows by itself, because requests pile up while the previous commit is syncing.
//!
//! Requests almost never fail, so the batch runs without per-request savepoints (they cost a
//! sub-journal copy of every page touched). When one does fail, the batch is rolled back and
//! every request of it is run again in a transaction of its own, so a failing request is
//! answered with its own error and the others still commit. Requests are therefore re-runnable
//! closures (`FnMut`) whose effects live only in the database.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::counters::Counters;
use crate::error::{Result, StoreError, Subject};

/// A write request, type-erased so requests with different results share one channel.
trait Job: Send {
    /// Runs the request on the connection (inside the batch transaction); `true` if it
    /// succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Messages the request appends when it commits.
    fn messages(&self) -> u64;
    /// Answers the caller: its own result if the batch committed (or if it failed by
    /// itself), else `BatchFailed` with `failure`.
    fn finish(self: Box<Self>, failure: Option<&str>);
}

struct TypedJob<T, F> {
    op: &'static str,
    messages: u64,
    work: F,
    outcome: Option<Result<T>>,
    /// The result, and the request itself: what it captured (a resource's JSON, a message's
    /// bytes) is freed by the caller, not on the writer thread, which every write waits for.
    reply: oneshot::Sender<(Result<T>, F)>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send + 'static,
    F: FnMut(&Connection) -> Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let work = &mut self.work;
        let outcome = catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or_else(|_| {
            Err(StoreError::Task {
                op: self.op,
                detail: "the write request panicked".to_owned(),
            })
        });
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn messages(&self) -> u64 {
        self.messages
    }

    fn finish(self: Box<Self>, failure: Option<&str>) {
        let Self {
            op,
            work,
            outcome,
            reply,
            ..
        } = *self;
        let result = match (outcome, failure) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), None) => Ok(value),
            (_, Some(detail)) => Err(StoreError::BatchFailed {
                op,
                subject: Subject::None,
                detail: detail.to_owned(),
            }),
            (None, None) => Err(StoreError::Task {
                op,
                detail: "the write request was never run".to_owned(),
            }),
        };
        // The caller may have gone away (its future dropped); the write stands regardless.
        let _ = reply.send((result, work));
    }
}

enum Request {
    Job(Box<dyn Job>),
    Close(oneshot::Sender<()>),
}

/// Handle to the writer thread.
pub(super) struct Writer {
    tx: mpsc::Sender<Request>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(super) fn start(
        conn: Connection,
        max_batch: usize,
        counters: Arc<Counters>,
    ) -> Result<Self> {
        let max_batch = max_batch.max(1);
        let (tx, rx) = mpsc::channel(max_batch.saturating_mul(4));
        let thread = std::thread::Builder::new()
            .name("plexus-store-writer".to_owned())
            .spawn(move || run(&conn, rx, max_batch, &counters))
            .map_err(|e| StoreError::Task {
                op: "open",
                detail: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Self {
            tx,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs `work` in the writer's next transaction and returns its result once committed.
    pub(super) async fn submit<T, F>(&self, op: &'static str, messages: u64, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = TypedJob {
            op,
            messages,
            work,
            outcome: None,
            reply,
        };
        self.tx
            .send(Request::Job(Box::new(job)))
            .await
            .map_err(|_| StoreError::Closed { op })?;
        let (result, work) = answer.await.map_err(|_| StoreError::Closed { op })?;
        drop(work);
        result
    }

    /// Commits what is pending, stops the thread and waits for it.
    pub(super) async fn close(&self) -> Result<()> {
        let (reply, done) = oneshot::channel();
        if self.tx.send(Request::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|e| StoreError::Task {
                    op: "close",
                    detail: e.to_string(),
                })?
                .map_err(|_| StoreError::Task {
                    op: "close",
                    detail: "the writer thread panicked".to_owned(),
                })?;
        }
        Ok(())
    }
}

/// The writer thread: batch, commit, answer, until closed or every handle is dropped.
fn run(conn: &Connection, mut rx: mpsc::Receiver<Request>, max_batch: usize, counters: &Counters) {
    let mut closers = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = Vec::new();
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Job(job) => jobs.push(job),
                Request::Close(reply) => {
                    closers.push(reply);
                    // Refuse new requests; those already queued are still committed.
                    rx.close();
                }
            }
            if jobs.len() < max_batch {
                next = rx.try_recv().ok();
            }
        }
        if !jobs.is_empty() {
            commit_batch(conn, jobs, counters);
        }
    }
    // Keeps the query planner's statistics fresh (cheap; SQLite's advice at close).
    if let Err(e) = conn.execute_batch("PRAGMA optimize") {
        tracing::debug!(error = %e, "PRAGMA optimize failed");
    }
    tracing::debug!("store writer stopped");
    for reply in closers {
        let _ = reply.send(());
    }
}

/// Runs `jobs` in one transaction and answers them; if one fails, runs each alone.
fn commit_batch(conn: &Connection, mut jobs: Vec<Box<dyn Job>>, counters: &Counters) {
    match run_batch(conn, &mut jobs) {
        Ok(()) => {
            let messages = jobs.iter().map(|j| j.messages()).sum();
            counters.add(1, jobs.len() as u64, messages);
            tracing::trace!(requests = jobs.len(), "store batch committed");
            for job in jobs {
                job.finish(None);
            }
        }
        Err(detail) if jobs.len() == 1 => {
            // alone already: a request that failed by itself has its own error to answer with
            for job in jobs {
                job.finish(Some(&detail));
            }
        }
        Err(detail) => {
            tracing::debug!(error = %detail, requests = jobs.len(), "store batch rolled back; running its requests one by one");
            for mut job in jobs {
                let failure = run_batch(conn, std::slice::from_mut(&mut job)).err();
                if failure.is_none() {
                    counters.add(1, 1, job.messages());
                }
                job.finish(failure.as_deref());
            }
        }
    }
}

/// Runs jobs in one transaction: committed if every one succeeds, else rolled back with why.
fn run_batch(conn: &Connection, jobs: &mut [Box<dyn Job>]) -> Result<(), String> {
    control(conn, "BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    for job in jobs.iter_mut() {
        let ok = job.run(conn);
        if !ok || conn.is_autocommit() {
            // autocommit: SQLite itself rolled the transaction back (disk full, I/O error)
            if !conn.is_autocommit() {
                let _ = control(conn, "ROLLBACK");
            }
            return Err(if ok {
                "the transaction was rolled back by SQLite".to_owned()
            } else {
                "a request of the batch failed".to_owned()
            });
        }
    }
    control(conn, "COMMIT").map_err(|e| {
        let _ = control(conn, "ROLLBACK");
        e.to_string()
    })
}

/// Runs a transaction control statement from the statement cache rather than parsing it anew
/// for every batch.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use rusqlite::Connection;

    use super::Writer;
    use crate::counters::Counters;

    /// Records the name of the thread it is dropped on.
    struct DropSpy(Arc<Mutex<Option<String>>>);

    impl Drop for DropSpy {
        fn drop(&mut self) {
            let name = std::thread::current().name().map(str::to_owned);
            *self.0.lock().unwrap() = Some(name.unwrap_or_default());
        }
    }

    /// What a write request captured is freed by its caller once answered, not on the writer
    /// thread that every other write waits for.
    #[tokio::test]
    async fn requests_are_freed_by_their_callers() {
        let conn = Connection::open_in_memory().unwrap();
        let writer = Writer::start(conn, 8, Arc::new(Counters::default())).unwrap();
        let dropped_on = Arc::new(Mutex::new(None));
        let spy = DropSpy(Arc::clone(&dropped_on));
        let answer = writer
            .submit("test", 0, move |conn: &Connection| {
                let _keep = &spy;
                conn.query_row("SELECT 41 + 1", [], |r| r.get::<_, i64>(0))
                    .map_err(crate::error::StoreError::sqlite("test"))
            })
            .await
            .unwrap();
        assert_eq!(answer, 42);
        let name = dropped_on.lock().unwrap().clone().expect("dropped");
        assert_ne!(name, "plexus-store-writer");
        writer.close().await.unwrap();
    }
}
