//! The running engine: deployed channels, their state, and what sources call to hand in a
//! message.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use serde::Serialize;
use store::{AnyStore, Destination, Journal as _, MessageId, NewMessage, Status};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::ChannelConfig;
use crate::error::{EngineError, Result};
use crate::metrics::{ChannelMetrics, Metrics};
use crate::pipeline::Pipeline;

/// A channel's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChannelState {
    /// Receiving and delivering.
    Started,
    /// The source does not receive; queued messages are still processed and delivered.
    Paused,
    /// Neither receiving nor delivering; messages stay queued.
    Stopped,
}

/// How a message's processing ended, for sources that answer after the destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The message's final status.
    pub status: Status,
    /// Errors of the message or its destinations.
    pub error: Option<String>,
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This node's name: queue leases are held in its name, so that after a restart it takes
    /// its own unfinished work back at once. Nodes sharing a PostgreSQL store need distinct
    /// names.
    pub node: String,
    /// How long a claimed queue item stays leased before another worker may take it.
    pub lease: Duration,
    /// Longest sleep of an idle worker before it looks at its queue again.
    pub idle_poll: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            node: "local".into(),
            lease: Duration::from_mins(1),
            idle_poll: Duration::from_millis(500),
        }
    }
}

/// The engine: a store and the channels deployed on it.
pub struct Engine {
    pub(crate) store: Arc<AnyStore>,
    pub(crate) config: EngineConfig,
    channels: RwLock<BTreeMap<String, Arc<Channel>>>,
    waiters: Mutex<HashMap<MessageId, Vec<oneshot::Sender<Finished>>>>,
    pub(crate) metrics: Metrics,
    prune_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    me: Weak<Engine>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("node", &self.config.node)
            .finish_non_exhaustive()
    }
}

/// A deployed channel.
pub struct Channel {
    /// Its configuration.
    pub config: ChannelConfig,
    /// Its compiled steps.
    pub pipeline: Arc<Pipeline>,
    pub(crate) state: watch::Sender<ChannelState>,
    pub(crate) source_wake: Notify,
    pub(crate) destination_wake: Vec<Notify>,
    pub(crate) destination_paused: Vec<AtomicBool>,
    /// Per destination, the lease a new message's queue item is stored with: an ordered
    /// destination's items are leased at once to its worker on this node, which then reads
    /// them instead of claiming them (see `worker::destination_worker`); `None` for parallel
    /// workers, which claim, and on PostgreSQL, where claiming is not the single writer's
    /// work and handing off measured no faster (see docs/BENCHMARKS.md).
    pub(crate) hand_off: Vec<Option<(String, Duration)>>,
    pub(crate) tasks: Mutex<Tasks>,
    pub(crate) source_addr: Mutex<Option<SocketAddr>>,
    pub(crate) source_tls: Mutex<Option<mllp::ReloadableTls>>,
    pub(crate) metrics: Arc<ChannelMetrics>,
}

#[derive(Default)]
pub(crate) struct Tasks {
    pub(crate) source: Option<(JoinHandle<()>, watch::Sender<bool>)>,
    pub(crate) workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.config.name)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The current state.
    pub fn state(&self) -> ChannelState {
        *self.state.borrow()
    }

    /// The address the source listens on, once started (MLLP and HTTP sources).
    pub fn source_addr(&self) -> Option<SocketAddr> {
        *self.source_addr.lock().expect("lock")
    }

    /// The queue of destination `n` (0 is the source queue).
    pub fn queue(&self, n: Destination) -> String {
        queue_name(&self.config.name, n)
    }

    /// Whether destination `n` is paused.
    pub fn destination_paused(&self, n: Destination) -> bool {
        self.destination_paused
            .get(usize::from(n).wrapping_sub(1))
            .is_some_and(|p| p.load(Ordering::Relaxed))
    }

    pub(crate) fn wake_destination(&self, n: Destination) {
        if let Some(w) = self.destination_wake.get(usize::from(n).wrapping_sub(1)) {
            w.notify_waiters();
            w.notify_one();
        }
    }
}

/// The queue of destination `n` of `channel` (0: the source queue).
pub fn queue_name(channel: &str, n: Destination) -> String {
    format!("{channel}/{n}")
}

impl Engine {
    /// An engine on `store`; deploy channels with [`Engine::deploy`].
    pub fn new(store: Arc<AnyStore>, config: EngineConfig) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            store,
            config,
            channels: RwLock::new(BTreeMap::new()),
            waiters: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
            prune_locks: Mutex::new(HashMap::new()),
            me: me.clone(),
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<AnyStore> {
        &self.store
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn arc(&self) -> Arc<Self> {
        self.me
            .upgrade()
            .expect("the engine is alive while its methods run")
    }

    /// The lock that keeps prunes of one channel from running at once.
    pub(crate) fn prune_lock(&self, channel: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(
            self.prune_locks
                .lock()
                .expect("lock")
                .entry(channel.to_owned())
                .or_default(),
        )
    }

    /// The deployed channels, by name.
    pub fn channels(&self) -> Vec<Arc<Channel>> {
        self.channels
            .read()
            .expect("lock")
            .values()
            .cloned()
            .collect()
    }

    /// A deployed channel.
    pub fn channel(&self, name: &str) -> Result<Arc<Channel>> {
        self.channels
            .read()
            .expect("lock")
            .get(name)
            .cloned()
            .ok_or_else(|| EngineError::UnknownChannel(name.to_owned()))
    }

    /// Deploys a channel, replacing (undeploying first) one of the same name, and starts it
    /// if it is enabled. Its queued messages are kept across redeployments.
    pub async fn deploy(&self, config: ChannelConfig) -> Result<Arc<Channel>> {
        let pipeline = Arc::new(Pipeline::compile(&config)?);
        let old = self
            .channels
            .read()
            .expect("lock")
            .get(&config.name)
            .cloned();
        // destinations paused before stay paused (by name) across a redeployment
        let mut paused = std::collections::HashSet::new();
        if let Some(old) = old {
            for d in &old.pipeline.destinations {
                if old.destination_paused(d.number) {
                    paused.insert(d.name.clone());
                }
            }
            // its counters stay: a redeployment is not a new channel
            self.remove(&config.name).await?;
        }
        let n = config.destinations.len();
        let channel = Arc::new(Channel {
            metrics: self.metrics.channel(&config.name, &pipeline),
            pipeline,
            state: watch::Sender::new(ChannelState::Stopped),
            source_wake: Notify::new(),
            destination_wake: (0..n).map(|_| Notify::new()).collect(),
            destination_paused: config
                .destinations
                .iter()
                .map(|d| AtomicBool::new(paused.contains(&d.name)))
                .collect(),
            hand_off: config
                .destinations
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let n = Destination::try_from(i + 1).unwrap_or(Destination::MAX);
                    (d.queue.workers == 1 && self.store.prefers_hand_off()).then(|| {
                        let queue = queue_name(&config.name, n);
                        (crate::worker::owner(self, &queue, 0), self.config.lease)
                    })
                })
                .collect(),
            tasks: Mutex::new(Tasks::default()),
            source_addr: Mutex::new(None),
            source_tls: Mutex::new(None),
            config,
        });
        self.channels
            .write()
            .expect("lock")
            .insert(channel.config.name.clone(), Arc::clone(&channel));
        info!(channel = %channel.name(), destinations = n, "deployed");
        if channel.config.enabled {
            self.start(channel.name())?;
        }
        Ok(channel)
    }

    /// Stops and removes a channel and its metrics. Its messages and queues stay in the store.
    pub async fn undeploy(&self, name: &str) -> Result<()> {
        self.remove(name).await?;
        self.metrics.remove_channel(name);
        Ok(())
    }

    /// Stops a channel and takes it out of the deployed ones, keeping its metrics.
    async fn remove(&self, name: &str) -> Result<()> {
        self.stop(name).await?;
        self.channels.write().expect("lock").remove(name);
        info!(channel = %name, "undeployed");
        Ok(())
    }

    /// Starts a channel: its workers and its source.
    pub fn start(&self, name: &str) -> Result<()> {
        let ch = self.channel(name)?;
        let was = ch.state();
        if was == ChannelState::Started {
            return Ok(());
        }
        if was == ChannelState::Stopped {
            ch.state.send_replace(ChannelState::Started);
            let workers = crate::worker::spawn_all(&self.arc(), &ch);
            ch.tasks.lock().expect("lock").workers = workers;
        } else {
            ch.state.send_replace(ChannelState::Started);
        }
        if let Err(e) = crate::source::start(&self.arc(), &ch) {
            // leave it paused: the workers still deliver what is queued
            ch.state.send_replace(ChannelState::Paused);
            return Err(e);
        }
        info!(channel = %name, "started");
        Ok(())
    }

    /// Pauses a channel's source; queued messages are still processed and delivered.
    pub async fn pause(&self, name: &str) -> Result<()> {
        let ch = self.channel(name)?;
        if ch.state() == ChannelState::Stopped {
            return Err(EngineError::State {
                channel: name.to_owned(),
                reason: "is stopped; start it first".into(),
            });
        }
        ch.state.send_replace(ChannelState::Paused);
        crate::source::stop(&ch).await;
        info!(channel = %name, "paused");
        Ok(())
    }

    /// Stops a channel: its source, then its workers (each finishes the message it holds).
    pub async fn stop(&self, name: &str) -> Result<()> {
        let ch = self.channel(name)?;
        ch.state.send_replace(ChannelState::Stopped);
        crate::source::stop(&ch).await;
        ch.source_wake.notify_waiters();
        for w in &ch.destination_wake {
            w.notify_waiters();
        }
        let workers = std::mem::take(&mut ch.tasks.lock().expect("lock").workers);
        for w in workers {
            if let Err(e) = w.await
                && e.is_panic()
            {
                warn!(channel = %name, "a worker panicked");
            }
        }
        info!(channel = %name, "stopped");
        Ok(())
    }

    /// Pauses or resumes one destination's deliveries.
    pub fn pause_destination(&self, name: &str, destination: &str, paused: bool) -> Result<()> {
        let ch = self.channel(name)?;
        let n = self.destination_number(&ch, destination)?;
        ch.destination_paused[usize::from(n) - 1].store(paused, Ordering::Relaxed);
        ch.wake_destination(n);
        Ok(())
    }

    /// A destination's number from its name or number.
    pub fn destination_number(&self, ch: &Channel, destination: &str) -> Result<Destination> {
        ch.pipeline
            .destinations
            .iter()
            .find(|d| d.name == destination || d.number.to_string() == destination)
            .map(|d| d.number)
            .ok_or_else(|| EngineError::UnknownDestination {
                channel: ch.config.name.clone(),
                destination: destination.to_owned(),
            })
    }

    /// Reloads the TLS certificate and key of every channel source that listens with TLS
    /// (on SIGHUP); returns how many were reloaded, and the errors of those that failed (they
    /// keep their previous certificate).
    pub fn reload_tls(&self) -> (usize, Vec<String>) {
        let mut ok = 0;
        let mut errors = Vec::new();
        for ch in self.channels() {
            let tls = ch.source_tls.lock().expect("lock").clone();
            if let Some(tls) = tls {
                match tls.reload() {
                    Ok(()) => ok += 1,
                    Err(e) => errors.push(format!("channel {}: {e}", ch.name())),
                }
            }
        }
        (ok, errors)
    }

    /// Stops every channel.
    pub async fn shutdown(&self) {
        let names: Vec<String> = self
            .channels
            .read()
            .expect("lock")
            .keys()
            .cloned()
            .collect();
        for n in names {
            let _ = self.stop(&n).await;
        }
    }

    /// Stores a message received by `channel`'s source, with the result of its source-side
    /// processing (filters, transformers, the encoded content of each destination and their
    /// queue items) in the same transaction; returns once that is durably stored. `message`
    /// must carry the channel name; one whose status is not RECEIVED (e.g. a payload that did
    /// not parse, already ERROR) is stored as it is.
    ///
    /// Processing before storing means one transaction per message instead of a source queue
    /// round trip; a crash before the commit loses nothing that was acknowledged, since the
    /// sender is answered only after it.
    pub async fn accept(&self, message: NewMessage) -> Result<MessageId> {
        let ch = self.channel(&message.channel)?;
        let mut message = message;
        // after the commit: destinations to wake, and the end if nothing was queued
        let mut woken = Vec::new();
        let mut finished = None;
        if message.status == Status::Received {
            let id = match message.id {
                Some(id) => id,
                None => MessageId::generate()?,
            };
            message.id = Some(id);
            let map = crate::worker::source_map(
                message.peer_addr.as_ref(),
                message.tls_subject.as_ref(),
                message.original_id,
                &message.metadata,
            );
            let r =
                crate::worker::process(&ch, id, &message.raw, map, message.route_only.as_deref())
                    .await;
            woken.extend(r.woken());
            finished = r.finished();
            message.status = r.status;
            message.error = r.error;
            message.content = r.content;
            message.destinations = r.destinations;
            message.enqueue.extend(r.enqueue);
        }
        let id = self.store.append(message).await?;
        ch.metrics.received.inc();
        for n in woken {
            ch.wake_destination(n);
        }
        if let Some(f) = finished {
            self.finish(id, &f);
        }
        Ok(id)
    }

    /// Registers interest in a message's end of processing (call before it can finish).
    pub fn watch(&self, id: MessageId) -> oneshot::Receiver<Finished> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .expect("lock")
            .entry(id)
            .or_default()
            .push(tx);
        rx
    }

    /// Stops waiting for a message (after a time-out).
    pub fn unwatch(&self, id: MessageId) {
        self.waiters.lock().expect("lock").remove(&id);
    }

    pub(crate) fn is_watched(&self, id: MessageId) -> bool {
        self.waiters.lock().expect("lock").contains_key(&id)
    }

    pub(crate) fn finish(&self, id: MessageId, finished: &Finished) {
        if let Some(list) = self.waiters.lock().expect("lock").remove(&id) {
            for tx in list {
                let _ = tx.send(finished.clone());
            }
        }
    }

    /// Accepts a message and waits until every destination has a result (or `wait` passes:
    /// then `None`; the message stays queued and will be delivered).
    pub async fn accept_and_wait(
        &self,
        message: NewMessage,
        wait: Duration,
    ) -> Result<(MessageId, Option<Finished>)> {
        let id = self.accept(message).await?;
        let rx = self.watch(id);
        // it may have finished before the watch was registered
        if let Some(m) = self.store.get(id).await?
            && is_final(m.summary.status)
        {
            self.unwatch(id);
            return Ok((
                id,
                Some(Finished {
                    status: m.summary.status,
                    error: m.summary.error,
                }),
            ));
        }
        if let Ok(Ok(f)) = tokio::time::timeout(wait, rx).await {
            Ok((id, Some(f)))
        } else {
            self.unwatch(id);
            Ok((id, None))
        }
    }
}

/// Whether a message status is an end state (every destination has a result).
pub fn is_final(status: Status) -> bool {
    !matches!(status, Status::Received | Status::Queued)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[tokio::test]
    async fn a_redeployed_channel_keeps_counting_where_it_was() {
        let dir = tempfile::tempdir().expect("tmp");
        let config = store::StoreConfig::Sqlite(store::SqliteConfig::new(dir.path().join("data")));
        let store = Arc::new(AnyStore::open(&config).await.expect("store"));
        let engine = Engine::new(store, EngineConfig::default());
        let channel = |destination: &str| {
            let text = format!(
                "[[destination]]\nname = \"{destination}\"\n[destination.channel]\nname = \"next\"\n"
            );
            ChannelConfig::parse(&text, Path::new("channels/c.toml")).expect("channel")
        };
        let counters = |engine: &Engine| {
            engine
                .metrics()
                .stats("c")
                .map(|s| (s.received, s.destinations[0].name.clone()))
        };
        let ch = engine.deploy(channel("a")).await.expect("deploy");
        ch.metrics.received.inc();
        engine.deploy(channel("a")).await.expect("redeploy");
        assert_eq!(
            counters(&engine),
            Some((1, "a".into())),
            "same destinations: counters kept"
        );
        engine
            .deploy(channel("b"))
            .await
            .expect("redeploy, other destination");
        assert_eq!(
            counters(&engine),
            Some((0, "b".into())),
            "other destinations: new counters"
        );
        engine.undeploy("c").await.expect("undeploy");
        assert_eq!(counters(&engine), None, "undeployed: no counters");
        engine.shutdown().await;
    }

    #[tokio::test]
    async fn a_source_shows_its_address_only_while_it_listens() {
        let dir = tempfile::tempdir().expect("tmp");
        let config = store::StoreConfig::Sqlite(store::SqliteConfig::new(dir.path().join("data")));
        let store = Arc::new(AnyStore::open(&config).await.expect("store"));
        let engine = Engine::new(store, EngineConfig::default());
        let text = "[source.mllp]\nbind = \"127.0.0.1:0\"\n";
        let config = ChannelConfig::parse(text, Path::new("channels/m.toml")).expect("channel");
        let ch = engine.deploy(config).await.expect("deploy");
        assert!(ch.source_addr().is_some());
        engine.pause("m").await.expect("pause");
        assert_eq!(ch.source_addr(), None, "paused");
        engine.start("m").expect("start");
        assert!(ch.source_addr().is_some());
        engine.stop("m").await.expect("stop");
        assert_eq!(ch.source_addr(), None, "stopped");
        engine.shutdown().await;
    }

    #[tokio::test]
    async fn a_paused_destination_stays_paused_across_a_redeployment() {
        let dir = tempfile::tempdir().expect("tmp");
        let config = store::StoreConfig::Sqlite(store::SqliteConfig::new(dir.path().join("data")));
        let store = Arc::new(AnyStore::open(&config).await.expect("store"));
        let engine = Engine::new(store, EngineConfig::default());
        let channel = |names: &[&str]| {
            let mut text = String::new();
            for n in names {
                text.push_str("[[destination]]\nname = \"");
                text.push_str(n);
                text.push_str("\"\n[destination.channel]\nname = \"next\"\n");
            }
            ChannelConfig::parse(&text, Path::new("channels/p.toml")).expect("channel")
        };
        engine.deploy(channel(&["a", "b"])).await.expect("deploy");
        engine.pause_destination("p", "b", true).expect("pause");
        // b moves to number 1; a is new at number 2
        let ch = engine.deploy(channel(&["b", "a"])).await.expect("redeploy");
        assert!(ch.destination_paused(1), "b is still paused");
        assert!(!ch.destination_paused(2), "a is not");
        engine.shutdown().await;
    }

    #[tokio::test]
    async fn messages_left_in_the_source_queue_are_processed_at_start() {
        let dir = tempfile::tempdir().expect("tmp");
        let config = store::StoreConfig::Sqlite(store::SqliteConfig::new(dir.path().join("data")));
        let store = Arc::new(AnyStore::open(&config).await.expect("store"));
        // stored RECEIVED and queued, as an earlier version (or another tool) left it
        let raw = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|Q1|P|2.5.1\rPID|1\r".to_vec();
        let id = store
            .append(NewMessage::new("q", raw).enqueue_to(queue_name("q", 0), 0))
            .await
            .expect("append");
        let engine = Engine::new(Arc::clone(&store), EngineConfig::default());
        let text = "[[transformer]]\ntype = \"set\"\npath = \"MSH-5\"\nvalue = \"X\"\n";
        let config = ChannelConfig::parse(text, Path::new("channels/q.toml")).expect("channel");
        engine.deploy(config).await.expect("deploy");
        let mut status = Status::Received;
        for _ in 0..200 {
            status = store
                .get(id)
                .await
                .expect("get")
                .expect("stored")
                .summary
                .status;
            if status != Status::Received {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            status,
            Status::Transformed,
            "no destinations: processed is final"
        );
        let m = store.get(id).await.expect("get").expect("stored");
        let out = m.stage(0, store::Stage::Transformed).expect("transformed");
        assert!(out.starts_with(b"MSH|^~\\&|A|B|X|"));
        engine.shutdown().await;
    }
}
