//! [`ScriptPool`]: sandboxes on worker threads, for async code.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::context::{Context, Outcome};
use crate::data::Data;
use crate::error::{ScriptError, ScriptErrorKind};
use crate::sandbox::{Limits, Sandbox, ScriptId, ScriptSource};

/// Runs queued per worker thread before `run` waits for room.
const QUEUE_PER_THREAD: usize = 16;
/// Stack of a worker thread: QuickJS uses at most 512 KiB of it, Rust the rest.
const WORKER_STACK: usize = 4 << 20;

type Reply = (Context, Result<Outcome, ScriptError>);

struct Job {
    id: ScriptId,
    cx: Context,
    reply: oneshot::Sender<Reply>,
}

/// A `Send + Sync` handle to worker threads that each own a [`Sandbox`] with every script
/// compiled. Runs go through one bounded queue to whichever worker is free; dropping the
/// pool stops the threads (after the runs in progress finish, at most one time limit).
#[derive(Debug)]
pub struct ScriptPool {
    sender: Option<mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    names: Vec<String>,
    stop: Arc<AtomicBool>,
}

impl ScriptPool {
    /// Starts `threads` workers (at least one) and compiles `scripts` in each; the script at
    /// position `i` gets `ScriptId` `i` (see [`ScriptPool::script_id`]). Compile errors are
    /// reported here, naming the script and line.
    pub fn new(
        threads: usize,
        limits: Limits,
        scripts: Vec<ScriptSource>,
    ) -> Result<Self, ScriptError> {
        let threads = threads.max(1);
        let (sender, receiver) = mpsc::channel::<Job>(threads * QUEUE_PER_THREAD);
        let receiver = Arc::new(Mutex::new(receiver));
        let stop = Arc::new(AtomicBool::new(false));
        let names = scripts.iter().map(|s| s.name.clone()).collect();
        let scripts = Arc::new(scripts);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut pool = Self {
            sender: Some(sender),
            workers: Vec::with_capacity(threads),
            names,
            stop: stop.clone(),
        };
        for i in 0..threads {
            let (receiver, stop, scripts, ready) = (
                receiver.clone(),
                stop.clone(),
                scripts.clone(),
                ready_tx.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("plexus-script-{i}"))
                .stack_size(WORKER_STACK)
                .spawn(move || worker(&receiver, &stop, limits, &scripts, &ready));
            match spawned {
                Ok(handle) => pool.workers.push(handle),
                Err(e) => {
                    return Err(ScriptError::new(
                        ScriptErrorKind::Api,
                        "(pool)",
                        format!("cannot start a script worker thread: {e}"),
                    ));
                }
            }
        }
        drop(ready_tx);
        for _ in 0..threads {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(ScriptError::new(
                        ScriptErrorKind::Api,
                        "(pool)",
                        "a script worker thread stopped while starting",
                    ));
                }
            }
        }
        Ok(pool)
    }

    /// The id of the first script with this name.
    pub fn script_id(&self, name: &str) -> Option<ScriptId> {
        self.names.iter().position(|n| n == name).map(ScriptId)
    }

    /// The ids of all scripts, in the order they were given.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = ScriptId> + '_ {
        (0..self.names.len()).map(ScriptId)
    }

    /// The name of a script.
    pub fn name(&self, id: ScriptId) -> Option<&str> {
        self.names.get(id.0).map(String::as_str)
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Runs a script on a worker and gives the context back with the result. Waits for room
    /// when the queue is full. Cancelling the future after the run was queued drops its result.
    pub async fn run(&self, id: ScriptId, cx: Context) -> Reply {
        let stopped = |why: &str| ScriptError::new(ScriptErrorKind::Api, "(pool)", why);
        let Some(name) = self.name(id) else {
            return (cx, Err(stopped(&format!("no script with id {}", id.0))));
        };
        let Some(sender) = &self.sender else {
            return (cx, Err(stopped("the script pool is stopped")));
        };
        let (reply, answer) = oneshot::channel();
        if let Err(e) = sender.send(Job { id, cx, reply }).await {
            return (e.0.cx, Err(stopped("the script pool is stopped")));
        }
        match answer.await {
            Ok(r) => r,
            Err(_) => (
                Context::new(Data::Raw(String::new())),
                Err(ScriptError::new(
                    ScriptErrorKind::Api,
                    name,
                    "the script worker stopped before answering; the message was lost",
                )),
            ),
        }
    }
}

impl Drop for ScriptPool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // closing the queue wakes the workers waiting on it
        self.sender.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn sandbox(limits: Limits, scripts: &[ScriptSource]) -> Result<Sandbox, ScriptError> {
    let mut sandbox = Sandbox::new(limits)?;
    for s in scripts {
        sandbox.compile(&s.name, &s.source, s.kind)?;
    }
    Ok(sandbox)
}

fn worker(
    receiver: &Mutex<mpsc::Receiver<Job>>,
    stop: &AtomicBool,
    limits: Limits,
    scripts: &[ScriptSource],
    ready: &std::sync::mpsc::Sender<Result<(), ScriptError>>,
) {
    let mut sb = match sandbox(limits, scripts) {
        Ok(s) => {
            let _ = ready.send(Ok(()));
            s
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    loop {
        let job = receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .blocking_recv();
        let Some(mut job) = job else { break };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if job.reply.is_closed() {
            continue;
        }
        let run = catch_unwind(AssertUnwindSafe(|| sb.run(job.id, &mut job.cx)));
        let result = if let Ok(r) = run {
            r
        } else {
            // a bug, not script input: start over with a fresh sandbox
            let Ok(fresh) = sandbox(limits, scripts) else {
                break;
            };
            sb = fresh;
            Err(ScriptError::new(
                ScriptErrorKind::Api,
                scripts.get(job.id.0).map_or("(pool)", |s| s.name.as_str()),
                "the script engine failed unexpectedly; the sandbox was rebuilt",
            ))
        };
        let _ = job.reply.send((job.cx, result));
    }
}
