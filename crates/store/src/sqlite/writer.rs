//! The one writer thread of a SQLite store, and its group commit.
//!
//! Callers send write requests over a channel, each with a oneshot for its reply. The writer
//! takes everything pending (up to `max_batch` requests), runs them in one transaction, commits
//! once and has every caller answered once the commit is durable. One fsync then carries a
//! whole batch: under load the batch grows by itself, because requests pile up while the
//! previous batch runs.
//!
//! In WAL mode the writer connection does not sync its commits itself (`synchronous=NORMAL`):
//! a sync thread fsyncs the WAL after each commit and only then answers that commit's callers,
//! while the writer already runs the next batch. A commit's fsync (a large part of its time
//! under load, and none of it CPU the writer could use) so overlaps the next batch's work, and
//! one fsync covers every commit made while the previous one ran. Nothing is answered before
//! it is durable: the frames of a commit are in the WAL file when `COMMIT` returns, and the
//! fsync that answers them starts after that. A commit is visible to readers from `COMMIT`
//! on, slightly before its callers are answered; a crash in between can lose a write that was
//! seen but never acknowledged (its sender, unanswered, sends it again). If an fsync fails (or
//! a checkpoint fails with an I/O error, see `checkpoint`), the writes in flight and every
//! later one are answered with [`StoreError::Halted`] and checkpoints stop: after a failed
//! write-back the kernel may have dropped the unsynced pages, so no later sync could vouch for
//! what follows. The WAL is synced through one descriptor kept from the start, which Linux
//! tells of every write-back failure since it was opened.
//!
//! Requests almost never fail, so the batch runs without per-request savepoints (they cost a
//! sub-journal copy of every page touched). When one does fail, the batch is rolled back and
//! every request of it is run again in a transaction of its own, so a failing request is
//! answered with its own error and the others still commit. Requests are therefore re-runnable
//! closures (`FnMut`) whose effects live only in the database.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
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
    /// Answers the caller: its own result if the batch committed and was synced (or if it
    /// failed by itself), else the error `failure` says.
    fn finish(self: Box<Self>, failure: Option<&Failure>);
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

    fn finish(self: Box<Self>, failure: Option<&Failure>) {
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
            (_, Some(Failure::Batch(detail))) => Err(StoreError::BatchFailed {
                op,
                subject: Subject::None,
                detail: detail.clone(),
            }),
            (_, Some(Failure::Halted(detail))) => Err(StoreError::Halted {
                op,
                detail: detail.clone(),
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

/// Who makes a commit durable before its callers are answered.
pub(super) enum Durability {
    /// The connection syncs every commit itself (`synchronous=FULL`, or a database without a
    /// WAL).
    Commit,
    /// The connection does not sync its commits (`synchronous=NORMAL` in WAL mode): the sync
    /// thread fsyncs the WAL file `wal` after each commit, then answers its callers; once
    /// `halt` is set (by a failed sync, or a checkpoint's I/O error) no request runs any more.
    SyncWal {
        /// The WAL file.
        wal: PathBuf,
        /// Shared with the checkpoints.
        halt: Halt,
    },
}

/// Set once the store must take no more writes, with why (see [`StoreError::Halted`]);
/// shared by the writer, its sync thread and the checkpoints.
pub(super) type Halt = Arc<OnceLock<String>>;

/// Why a request is answered with an error although it may have run.
pub(super) enum Failure {
    /// Its batch was rolled back: nothing of it was stored.
    Batch(String),
    /// The store stopped taking writes: the request may or may not be stored.
    Halted(String),
}

/// A request run, and the failure to answer it with (`None`: committed).
type Finished = (Box<dyn Job>, Option<Failure>);

/// Committed batches waiting for the sync thread, at most: beyond them the writer waits (the
/// sync thread takes all waiting batches at once, so it only lags behind a slow disk).
const SYNC_QUEUE: usize = 8;

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
        nice: i32,
        counters: Arc<Counters>,
        durability: Durability,
    ) -> Result<Self> {
        let max_batch = max_batch.max(1);
        let (tx, rx) = mpsc::channel(max_batch.saturating_mul(4));
        let answers = Answers::start(durability)?;
        let thread = std::thread::Builder::new()
            .name("plexus-store-writer".to_owned())
            .spawn(move || {
                set_nice(nice);
                run(&conn, rx, max_batch, &counters, answers);
            })
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

/// Where the writer sends what it ran, to be answered.
enum Answers {
    /// Answered at once, on the writer thread.
    Now,
    /// Answered by the sync thread after an fsync of the WAL.
    AfterSync {
        queue: SyncSender<Vec<Finished>>,
        thread: JoinHandle<()>,
        halt: Halt,
    },
}

impl Answers {
    fn start(durability: Durability) -> Result<Self> {
        let Durability::SyncWal { wal, halt } = durability else {
            return Ok(Self::Now);
        };
        // Opened once and kept: Linux reports a failed writeback to each open file once, so a
        // file opened after the failure (or synced through another descriptor first) could be
        // told all is well. This one sees every failure from the store's start on.
        let file = std::fs::File::open(&wal).map_err(|source| StoreError::Io {
            op: "open",
            path: wal.clone(),
            source,
        })?;
        let (queue, committed) = sync_channel(SYNC_QUEUE);
        let thread_halt = Arc::clone(&halt);
        let thread = std::thread::Builder::new()
            .name("plexus-store-sync".to_owned())
            .spawn(move || sync_and_answer(&wal, &file, &committed, &thread_halt))
            .map_err(|e| StoreError::Task {
                op: "open",
                detail: format!("cannot start the sync thread: {e}"),
            })?;
        Ok(Self::AfterSync {
            queue,
            thread,
            halt,
        })
    }

    /// Why no batch may run any more, if so.
    fn refusal(&self) -> Option<String> {
        match self {
            Self::Now => None,
            Self::AfterSync { halt, .. } => halt.get().cloned(),
        }
    }

    /// Answers `finished` now, or once the WAL holding them is synced.
    fn send(&self, finished: Vec<Finished>) {
        match self {
            Self::Now => answer(finished, None),
            Self::AfterSync { queue, halt, .. } => {
                if let Err(e) = queue.send(finished) {
                    // the sync thread is gone (it panicked): nothing is synced any more
                    let _ = halt.set("the store's sync thread stopped".to_owned());
                    let why = halt.get().cloned().unwrap_or_default();
                    answer(e.0, Some(&Failure::Halted(why)));
                }
            }
        }
    }

    /// Waits until everything sent has been answered.
    fn finish(self) {
        if let Self::AfterSync { queue, thread, .. } = self {
            drop(queue);
            if thread.join().is_err() {
                tracing::error!("the store's sync thread panicked");
            }
        }
    }
}

/// Answers each request with `failure` if given, else with its batch's own outcome.
fn answer(finished: Vec<Finished>, failure: Option<&Failure>) {
    for (job, own) in finished {
        job.finish(failure.or(own.as_ref()));
    }
}

/// The sync thread: takes every committed batch waiting, fsyncs the WAL once, answers them.
fn sync_and_answer(
    wal: &std::path::Path,
    file: &std::fs::File,
    committed: &Receiver<Vec<Finished>>,
    halt: &OnceLock<String>,
) {
    while let Ok(first) = committed.recv() {
        let mut finished = first;
        while let Ok(more) = committed.try_recv() {
            finished.extend(more);
        }
        if halt.get().is_none()
            && let Err(e) = file.sync_data()
        {
            tracing::error!(wal = %wal.display(), error = %e, "cannot sync the store's write-ahead log; the store takes no more writes");
            let _ = halt.set(format!(
                "the write-ahead log {} could not be synced ({e}); what was written since the \
                 last good sync may or may not be stored",
                wal.display()
            ));
        }
        let failure = halt.get().map(|why| Failure::Halted(why.clone()));
        answer(finished, failure.as_ref());
    }
}

/// Raises the calling thread's priority to nice value `nice` (on Linux a thread has its own,
/// inherited from the thread that started it). A thread already at `nice` or higher priority
/// (a lower nice value, as under a unit started with `Nice=-10`) is left as it is: the writer
/// is never given less CPU than the threads around it.
fn set_nice(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let me = Some(rustix::thread::gettid());
        match rustix::process::getpriority_process(me) {
            Ok(now) if now <= nice => {}
            _ => match rustix::process::setpriority_process(me, nice) {
                Ok(()) => tracing::debug!(nice, "SQLite writer thread priority set"),
                Err(e) => tracing::info!(
                    nice,
                    error = %e,
                    "the SQLite writer thread keeps the process's priority (a nice value below \
                     the process's needs CAP_SYS_NICE or RLIMIT_NICE)"
                ),
            },
        }
    }
}

/// The writer thread: batch, commit, answer, until closed or every handle is dropped.
fn run(
    conn: &Connection,
    mut rx: mpsc::Receiver<Request>,
    max_batch: usize,
    counters: &Counters,
    answers: Answers,
) {
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
        if jobs.is_empty() {
            continue;
        }
        match answers.refusal() {
            Some(why) => {
                let halted = Failure::Halted(why);
                answer(jobs.into_iter().map(|j| (j, None)).collect(), Some(&halted));
            }
            None => answers.send(commit_batch(conn, jobs, counters)),
        }
    }
    let halted = answers.refusal().is_some();
    answers.finish();
    if halted {
        // nothing more may reach the database file: no checkpoint when the connection closes
        if let Err(e) = conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        ) {
            tracing::debug!(error = %e, "cannot turn off the checkpoint at close");
        }
    } else {
        // what follows is not answered to anyone: let SQLite sync it
        if let Err(e) = conn.pragma_update(None, "synchronous", "FULL") {
            tracing::debug!(error = %e, "cannot restore synchronous=FULL at close");
        }
        // Keeps the query planner's statistics fresh (cheap; SQLite's advice at close).
        if let Err(e) = conn.execute_batch("PRAGMA optimize") {
            tracing::debug!(error = %e, "PRAGMA optimize failed");
        }
    }
    tracing::debug!("store writer stopped");
    for reply in closers {
        let _ = reply.send(());
    }
}

/// Runs `jobs` in one transaction; if one fails, runs each alone. Returns each with the
/// failure to answer it with (`None`: committed).
fn commit_batch(
    conn: &Connection,
    mut jobs: Vec<Box<dyn Job>>,
    counters: &Counters,
) -> Vec<Finished> {
    match run_batch(conn, &mut jobs) {
        Ok(()) => {
            let messages = jobs.iter().map(|j| j.messages()).sum();
            counters.add(1, jobs.len() as u64, messages);
            tracing::trace!(requests = jobs.len(), "store batch committed");
            jobs.into_iter().map(|j| (j, None)).collect()
        }
        // alone already: a request that failed by itself has its own error to answer with
        Err(detail) if jobs.len() == 1 => jobs
            .into_iter()
            .map(|j| (j, Some(Failure::Batch(detail.clone()))))
            .collect(),
        Err(detail) => {
            tracing::debug!(error = %detail, requests = jobs.len(), "store batch rolled back; running its requests one by one");
            jobs.into_iter()
                .map(|mut job| {
                    let failure = run_batch(conn, std::slice::from_mut(&mut job))
                        .err()
                        .map(Failure::Batch);
                    if failure.is_none() {
                        counters.add(1, 1, job.messages());
                    }
                    (job, failure)
                })
                .collect()
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
/// for every batch (or every read transaction).
pub(super) fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
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
        let writer = Writer::start(
            conn,
            8,
            0,
            Arc::new(Counters::default()),
            super::Durability::Commit,
        )
        .unwrap();
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

    /// The writer thread runs at the nice value it was given when that is a higher priority
    /// than the one it inherited, and the OS allows it; it never gets a lower one; other
    /// threads keep theirs.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_writer_thread_only_ever_gains_priority() {
        let nice_of_this_thread =
            || rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let before = nice_of_this_thread();
        // whether this process may raise a thread's priority (root, CAP_SYS_NICE, RLIMIT_NICE)
        let may_raise = std::thread::spawn(move || {
            rustix::process::setpriority_process(Some(rustix::thread::gettid()), before - 1).is_ok()
        })
        .join()
        .unwrap();
        let writer_at = |nice: i32| async move {
            let writer = Writer::start(
                Connection::open_in_memory().unwrap(),
                8,
                nice,
                Arc::new(Counters::default()),
                super::Durability::Commit,
            )
            .unwrap();
            let on_writer = writer
                .submit("test", 0, move |_: &Connection| Ok(nice_of_this_thread()))
                .await
                .unwrap();
            writer.close().await.unwrap();
            on_writer
        };
        // a lower priority than the inherited one is not taken
        assert_eq!(writer_at((before + 3).min(19)).await, before);
        // a higher one is, where allowed
        let higher = (before - 1).max(-20);
        let expected = if may_raise { higher } else { before };
        assert_eq!(writer_at(higher).await, expected, "may raise: {may_raise}");
        assert_eq!(nice_of_this_thread(), before);
    }

    /// With the WAL synced by the sync thread, a caller is answered only once that sync
    /// succeeded. A sync that fails answers its callers with `Halted`, and the store runs no
    /// later request: nothing after a failed fsync could be vouched for. A WAL that cannot be
    /// opened stops the writer from starting.
    #[tokio::test]
    async fn a_failed_sync_fails_its_callers_and_every_later_write() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let table = || {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
            conn
        };
        let ran = Arc::new(AtomicUsize::new(0));
        let insert = |ran: &Arc<AtomicUsize>| {
            let ran = Arc::clone(ran);
            move |conn: &Connection| {
                ran.fetch_add(1, Ordering::SeqCst);
                conn.execute("INSERT INTO t VALUES (1)", [])
                    .map(drop)
                    .map_err(crate::error::StoreError::sqlite("test"))
            }
        };
        let start = |conn, wal| {
            Writer::start(
                conn,
                8,
                0,
                Arc::new(Counters::default()),
                super::Durability::SyncWal {
                    wal,
                    halt: super::Halt::default(),
                },
            )
        };

        // a WAL that can be synced: answered with the request's own result
        let wal = dir.path().join("db-wal");
        std::fs::write(&wal, b"").unwrap();
        let good = start(table(), wal).unwrap();
        good.submit("test", 0, insert(&ran)).await.unwrap();
        good.close().await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1);

        // a WAL that is not there: the writer does not start
        let missing = dir.path().join("missing").join("db-wal");
        let Err(refused) = start(table(), missing) else {
            panic!("a writer started without its WAL");
        };
        assert!(refused.to_string().contains("missing"), "{refused}");

        // a "WAL" whose sync fails (Linux: fdatasync on /dev/null is EINVAL)
        let bad = start(table(), "/dev/null".into()).unwrap();
        let first = bad.submit("test", 0, insert(&ran)).await.unwrap_err();
        assert!(
            matches!(&first, crate::error::StoreError::Halted { .. })
                && first.to_string().contains("could not be synced"),
            "{first}"
        );
        assert!(
            !first.is_transient(),
            "a halted store is not worth retrying"
        );
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        let later = bad.submit("test", 0, insert(&ran)).await.unwrap_err();
        assert!(
            later.to_string().contains("takes no more writes"),
            "{later}"
        );
        assert_eq!(
            ran.load(Ordering::SeqCst),
            2,
            "a request ran after the failed sync"
        );
        bad.close().await.unwrap();
    }
}
