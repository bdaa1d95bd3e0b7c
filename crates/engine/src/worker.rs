//! The workers of a channel: per destination, one ordered sender or several parallel ones; and
//! one that processes messages left in the source queue (stored RECEIVED by other means than
//! `Engine::accept`, which processes at arrival).
//!
//! Every step is a store transition: claiming leases the queue items, and the result of a
//! message (its content stages, statuses, and the items of the next queues) is written in
//! the same transaction that completes its item. A crash at any point leaves the item leased;
//! the lease runs out (or this node, restarting under the same name, takes it back at once)
//! and the message is processed again: at-least-once, never lost.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use connectors::SendError;
use serde_json::{Map, Value};
use store::{
    DestinationUpdate, Enqueue, Journal as _, QueueItem, QueueState, Queues as _, Shared, Stage,
    Status, StoredMessage, Timestamp, Transition,
};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::pipeline::Routed;
use crate::runtime::{Channel, ChannelState, Engine, Finished, is_final, queue_name};
use crate::sender::Sender;

/// Starts the source worker and the destination workers of a channel.
pub(crate) fn spawn_all(engine: &Arc<Engine>, ch: &Arc<Channel>) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(source_worker(
        Arc::clone(engine),
        Arc::clone(ch),
    ))];
    for (i, d) in ch.config.destinations.iter().enumerate() {
        for w in 0..d.queue.workers {
            tasks.push(tokio::spawn(destination_worker(
                Arc::clone(engine),
                Arc::clone(ch),
                u16::try_from(i + 1).unwrap_or(u16::MAX),
                w,
            )));
        }
    }
    tasks
}

/// Waits for a wake-up, a state change or `max`; returns false when the channel stopped.
async fn idle(ch: &Channel, wake: &tokio::sync::Notify, max: Duration) -> bool {
    let mut state = ch.state.subscribe();
    if *state.borrow() == ChannelState::Stopped {
        return false;
    }
    tokio::select! {
        () = wake.notified() => {}
        _ = state.changed() => {}
        () = tokio::time::sleep(max) => {}
    }
    ch.state() != ChannelState::Stopped
}

/// The name worker `worker` of `queue` holds leases in.
pub(crate) fn owner(engine: &Engine, queue: &str, worker: u32) -> String {
    format!("{}:{queue}#{worker}", engine.config.node)
}

async fn source_worker(engine: Arc<Engine>, ch: Arc<Channel>) {
    let queue = queue_name(ch.name(), 0);
    let owner = owner(&engine, &queue, 0);
    let store = Arc::clone(&engine.store);
    while ch.state() != ChannelState::Stopped {
        let items = match store
            .claim_head(&queue, &owner, engine.config.lease, 64)
            .await
        {
            Ok(items) => items,
            Err(e) => {
                warn!(channel = %ch.name(), error = %e, "cannot claim received messages; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if items.is_empty() {
            // new messages are processed at arrival (`Engine::accept`) and never queued here;
            // this queue only holds messages stored RECEIVED by other means, or left leased by
            // a node that died, so looking once a lease period is enough
            if !idle(&ch, &ch.source_wake, engine.config.lease).await {
                break;
            }
            continue;
        }
        let mut transitions = Vec::with_capacity(items.len());
        let mut finished = Vec::new();
        let mut woken = Vec::new();
        for item in &items {
            let message = match store.get(item.message_id).await {
                Ok(Some(m)) => m,
                Ok(None) => {
                    // pruned meanwhile: nothing to do but complete the item
                    let mut t = Transition::new(item.message_id);
                    t.complete = Some((item.id, owner.clone()));
                    transitions.push(t);
                    continue;
                }
                Err(e) => {
                    warn!(channel = %ch.name(), id = %item.message_id, error = %e, "cannot read a received message");
                    break;
                }
            };
            let t = process_one(&ch, item, &owner, &message, &mut woken, &mut finished).await;
            transitions.push(t);
        }
        if transitions.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if let Err(e) = store.apply(transitions).await {
            warn!(channel = %ch.name(), error = %e, "cannot record processed messages; they will be processed again");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        woken.sort_unstable();
        woken.dedup();
        for n in woken {
            ch.wake_destination(n);
        }
        for (id, f) in finished {
            engine.finish(id, &f);
        }
    }
    debug!(channel = %ch.name(), "source worker stopped");
}

/// What a message's source side produced, ready for the store: the parts of a transition
/// (worker) or of the append itself (inline processing at arrival).
pub(crate) struct Recorded {
    pub(crate) status: Status,
    pub(crate) error: Option<String>,
    pub(crate) content: Vec<(store::Destination, Stage, Vec<u8>)>,
    pub(crate) destinations: Vec<DestinationUpdate>,
    pub(crate) enqueue: Vec<Enqueue>,
}

impl Recorded {
    /// The end of processing when nothing was queued (filtered, in error, no destinations).
    pub(crate) fn finished(&self) -> Option<Finished> {
        self.enqueue.is_empty().then(|| Finished {
            status: self.status,
            error: self.error.clone(),
        })
    }

    /// Destinations to wake once this is committed.
    pub(crate) fn woken(&self) -> impl Iterator<Item = store::Destination> + '_ {
        self.enqueue.iter().map(|e| e.destination)
    }
}

/// The source map scripts see: peer, TLS subject, original id, metadata.
pub(crate) fn source_map(
    peer_addr: Option<&String>,
    tls_subject: Option<&String>,
    original_id: Option<store::MessageId>,
    metadata: &[(String, String)],
) -> Map<String, Value> {
    let mut map = Map::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            map.insert(k.into(), Value::String(v));
        }
    };
    put("peerAddress", peer_addr.cloned());
    put("tlsSubject", tls_subject.cloned());
    put("originalId", original_id.map(|i| i.to_string()));
    for (k, v) in metadata {
        map.entry(k.clone())
            .or_insert_with(|| Value::String(v.clone()));
    }
    map
}

/// Runs the source side of the pipeline on one message and counts it in the metrics.
pub(crate) async fn process(
    ch: &Channel,
    id: store::MessageId,
    raw: &[u8],
    source_map: Map<String, Value>,
    route_only: Option<&[store::Destination]>,
) -> Recorded {
    let started = Instant::now();
    let text_id = id.to_string();
    let p = ch
        .pipeline
        .process(raw, &text_id, source_map, route_only)
        .await;
    for line in &p.logs {
        debug!(channel = %ch.name(), id = %text_id, level = ?line.level, "script: {}", line.text);
    }
    let mut r = Recorded {
        status: p.status,
        error: p.error,
        content: Vec::new(),
        destinations: Vec::new(),
        enqueue: Vec::new(),
    };
    // what the source produced, as stored (TRANSFORMED, first in `content`, or RAW): a
    // destination that encodes exactly these bytes shares them instead of storing a copy
    let transformed = p.transformed.is_some();
    if let Some(tr) = p.transformed {
        r.content.push((0, Stage::Transformed, tr));
    }
    match p.status {
        Status::Filtered => ch.metrics.filtered.inc(),
        Status::Error => {
            ch.metrics.errored.inc();
            debug!(channel = %ch.name(), id = %text_id, error = r.error.as_deref().unwrap_or(""), "processing failed");
        }
        _ => {}
    }
    for (n, name, routed) in p.routed {
        let mut shared = Shared::NONE;
        let status = match routed {
            Routed::Encoded(bytes) => {
                let (output, flag) = if transformed {
                    (r.content[0].2.as_slice(), Shared::ENCODED_IS_TRANSFORMED)
                } else {
                    (raw, Shared::ENCODED_IS_RAW)
                };
                if bytes == output {
                    shared = flag;
                } else {
                    r.content.push((n, Stage::Encoded, bytes));
                }
                r.enqueue.push(Enqueue {
                    queue: queue_name(ch.name(), n),
                    destination: n,
                    lease: ch
                        .hand_off
                        .get(usize::from(n).wrapping_sub(1))
                        .cloned()
                        .flatten(),
                });
                (Status::Queued, None)
            }
            Routed::Filtered => {
                if let Some(m) = ch.metrics.destination(n) {
                    m.filtered.inc();
                }
                (Status::Filtered, None)
            }
            Routed::Error(e) => {
                if let Some(m) = ch.metrics.destination(n) {
                    m.errored.inc();
                }
                (Status::Error, Some(e))
            }
            Routed::Skipped => continue,
        };
        r.destinations.push(DestinationUpdate {
            destination: n,
            name,
            status: status.0,
            error: status.1,
            shared,
        });
    }
    ch.metrics.processed.inc();
    ch.metrics.processing.observe(started.elapsed());
    r
}

/// Runs the pipeline on one message taken from the source queue and builds its transition.
async fn process_one(
    ch: &Channel,
    item: &QueueItem,
    owner: &str,
    message: &StoredMessage,
    woken: &mut Vec<store::Destination>,
    finished: &mut Vec<(store::MessageId, Finished)>,
) -> Transition {
    let s = &message.summary;
    let map = source_map(
        s.peer_addr.as_ref(),
        s.tls_subject.as_ref(),
        s.original_id,
        &message.metadata,
    );
    let raw = message.raw().unwrap_or_default();
    let r = process(ch, s.id, raw, map, s.route_only.as_deref()).await;
    woken.extend(r.woken());
    if let Some(f) = r.finished() {
        finished.push((s.id, f));
    }
    let mut t = Transition::new(s.id);
    t.complete = Some((item.id, owner.to_owned()));
    t.status = Some((r.status, r.error));
    t.content = r.content;
    t.destinations = r.destinations;
    t.enqueue = r.enqueue;
    t
}

/// The apply of the batch sent last: it commits while the next batch is sent.
struct Applying {
    /// The batch's items: still leased to the worker until the apply commits.
    items: Vec<store::QueueItemId>,
    /// Whether the apply committed.
    task: JoinHandle<bool>,
}

/// Waits for the apply in flight, if any; false if it failed (its messages will be sent
/// again).
async fn settle(applying: &mut Option<Applying>) -> bool {
    match applying.take() {
        None => true,
        Some(a) => a.task.await.unwrap_or(false),
    }
}

/// One destination worker: claims (or, ordered, reads the items the arrival leased to it),
/// sends one message at a time, and records each batch while sending the next.
///
/// An ordered worker (one per destination) keeps the queue's order. On SQLite new messages'
/// items are stored leased to it (`Channel::hand_off`), so it reads the head it holds
/// (`Queues::held_head`, a read) instead of claiming it (a write); it claims (`claim_head`)
/// at start, after a failed send or apply, when the held head is empty (an item it does not
/// hold may be first) and before a lease runs out; on PostgreSQL it claims every batch.
/// Claiming re-leases the items the worker
/// holds from the head on, so it first waits for the apply in flight. A batch is sent only
/// after the batch before it, and a failed send stops the batch: the rest waits behind the
/// failed message, as before. A crash before an apply commits only sends its batch again.
#[allow(clippy::too_many_lines)] // the delivery loop with its three outcomes
async fn destination_worker(
    engine: Arc<Engine>,
    ch: Arc<Channel>,
    n: store::Destination,
    worker: u32,
) {
    let queue = queue_name(ch.name(), n);
    let owner = owner(&engine, &queue, worker);
    let Some(plan) = ch.pipeline.destination(n) else {
        return;
    };
    let queue_cfg = plan.queue.clone();
    let ordered = queue_cfg.workers == 1;
    // new items come leased to this worker: it reads the head it holds
    let held = ordered
        && ch
            .hand_off
            .get(usize::from(n) - 1)
            .is_some_and(Option::is_some);
    let wake = &ch.destination_wake[usize::from(n) - 1];
    let config = &ch.config.destinations[usize::from(n) - 1];
    let mut sender = match Sender::build(config, &engine).await {
        Ok(s) => s,
        Err(e) => {
            warn!(channel = %ch.name(), destination = %plan.name, error = %e, "destination cannot start; messages stay queued");
            return;
        }
    };
    let store = Arc::clone(&engine.store);
    let poll = engine
        .config
        .idle_poll
        .min(queue_cfg.initial_backoff.max(Duration::from_millis(10)));
    let mut applying: Option<Applying> = None;
    // ordered: claim next (a write) rather than read the head the worker holds
    let mut claim_next = true;
    while ch.state() != ChannelState::Stopped {
        if ch.destination_paused[usize::from(n) - 1].load(Ordering::Relaxed) {
            settle(&mut applying).await;
            claim_next = true;
            if !idle(&ch, wake, engine.config.idle_poll).await {
                break;
            }
            continue;
        }
        let items = if held && !claim_next {
            let skip = applying.as_ref().map_or(&[][..], |a| &a.items[..]);
            match store.held_head(&queue, &owner, skip, queue_cfg.batch).await {
                Ok(mut items) => {
                    // a lease that would run out while the batch is sent is renewed by a claim
                    let fresh = Timestamp::now().saturating_add(engine.config.lease / 2);
                    if let Some(stale) = items
                        .iter()
                        .position(|i| i.lease_until.is_none_or(|u| u < fresh))
                    {
                        items.truncate(stale);
                    }
                    if items.is_empty() {
                        // the head may be an item this worker does not hold: claim it
                        claim_next = true;
                        continue;
                    }
                    items
                }
                Err(e) => {
                    warn!(channel = %ch.name(), destination = %plan.name, error = %e, "cannot read the queue head; claiming");
                    claim_next = true;
                    continue;
                }
            }
        } else {
            if ordered {
                // the claim re-leases what this worker holds from the head on, including a
                // batch whose apply is in flight: let it commit first
                settle(&mut applying).await;
            }
            let claimed = if ordered {
                store
                    .claim_head(&queue, &owner, engine.config.lease, queue_cfg.batch)
                    .await
            } else {
                store
                    .claim(&queue, &owner, engine.config.lease, queue_cfg.batch)
                    .await
            };
            let items = match claimed {
                Ok(items) => items,
                Err(e) => {
                    warn!(channel = %ch.name(), destination = %plan.name, error = %e, "cannot claim; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if items.is_empty() {
                settle(&mut applying).await;
                if !idle(&ch, wake, poll).await {
                    break;
                }
                // woken by new messages: they are held by this worker
                claim_next = false;
                continue;
            }
            claim_next = false;
            items
        };
        // the encoded content of the whole batch in one read
        let ids: Vec<store::MessageId> = items.iter().map(|i| i.message_id).collect();
        let mut encoded: std::collections::HashMap<store::MessageId, Vec<u8>> = match store
            .contents(&ids, n, Stage::Encoded)
            .await
        {
            Ok(found) => found.into_iter().collect(),
            Err(e) => {
                warn!(channel = %ch.name(), destination = %plan.name, error = %e, "cannot read queued messages; retrying");
                claim_next = true;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut done = Vec::new();
        let mut ended = Vec::new();
        for item in &items {
            if ch.state() == ChannelState::Stopped {
                break;
            }
            // the batch before failed to record: it is sent again after a claim, so stop
            // here rather than send further ahead of it
            if applying.as_ref().is_some_and(|a| a.task.is_finished())
                && !settle(&mut applying).await
            {
                claim_next = true;
                break;
            }
            let bytes = encoded.remove(&item.message_id);
            let step = deliver(&ch, plan, &mut sender, item, &owner, bytes).await;
            match step {
                Delivery::Done(t) => {
                    ended.push(item.message_id);
                    done.push(*t);
                }
                Delivery::Retry { error } => {
                    // record what was sent before this one, then the failed attempt
                    settle(&mut applying).await;
                    flush(&engine, &ch, &mut done, &mut ended).await;
                    let attempt = item.attempts + 1;
                    let retry_at = Timestamp::now().saturating_add(queue_cfg.backoff(attempt));
                    match store
                        .nack(item.id, &owner, retry_at, &error, queue_cfg.max_attempts)
                        .await
                    {
                        Ok(QueueState::Dead) => {
                            warn!(channel = %ch.name(), destination = %plan.name, id = %item.message_id, attempts = attempt, "delivery failed for good; message in ERROR");
                            dead(&engine, &ch, plan, item, &error).await;
                        }
                        Ok(_) => {
                            if let Some(m) = ch.metrics.destination(n) {
                                m.retried.inc();
                            }
                            debug!(channel = %ch.name(), destination = %plan.name, id = %item.message_id, attempt, error = %error, "delivery failed; will retry");
                        }
                        Err(e) => {
                            warn!(channel = %ch.name(), error = %e, "cannot record a failed attempt");
                        }
                    }
                    if ordered {
                        // the rest waits behind it: keep the order
                        claim_next = true;
                        break;
                    }
                }
                Delivery::Fail { error } => {
                    settle(&mut applying).await;
                    flush(&engine, &ch, &mut done, &mut ended).await;
                    let _ = store
                        .nack(item.id, &owner, Timestamp::now(), &error, item.attempts + 1)
                        .await;
                    warn!(channel = %ch.name(), destination = %plan.name, id = %item.message_id, "delivery refused; message in ERROR");
                    dead(&engine, &ch, plan, item, &error).await;
                }
            }
        }
        // at most one apply in flight: the one before this batch's has had the whole batch
        if !settle(&mut applying).await {
            claim_next = true;
        }
        if !done.is_empty() {
            let items = done
                .iter()
                .filter_map(|t| t.complete.as_ref().map(|(id, _)| *id))
                .collect();
            let (engine, ch) = (Arc::clone(&engine), Arc::clone(&ch));
            let task = tokio::spawn(async move {
                let (mut done, mut ended) = (done, ended);
                flush(&engine, &ch, &mut done, &mut ended).await
            });
            applying = Some(Applying { items, task });
        }
    }
    settle(&mut applying).await;
    sender.close().await;
    debug!(channel = %ch.name(), destination = %plan.name, "destination worker stopped");
}

enum Delivery {
    Done(Box<Transition>),
    Retry { error: String },
    Fail { error: String },
}

/// Sends one queued message and builds the transition recording it.
async fn deliver(
    ch: &Channel,
    plan: &crate::pipeline::DestinationPlan,
    sender: &mut Sender,
    item: &QueueItem,
    owner: &str,
    encoded: Option<Vec<u8>>,
) -> Delivery {
    let n = plan.number;
    let Some(encoded) = encoded else {
        return Delivery::Fail {
            error: "the message has no encoded content for this destination".into(),
        };
    };
    let id = item.message_id.to_string();
    match sender.send(&encoded, &id, ch.name()).await {
        Ok(delivered) => {
            let mut t = Transition::new(item.message_id);
            t.complete = Some((item.id, owner.to_owned()));
            // what was sent is what was encoded: recorded as shared, not stored again
            let mut status = (Status::Sent, None);
            if let Some(resp) = &delivered.response {
                match ch.pipeline.transform_response(n, &id, resp).await {
                    Ok(r) => t.content.push((n, Stage::Response, r)),
                    Err(e) => {
                        t.content.push((n, Stage::Response, resp.clone()));
                        status = (Status::Error, Some(e.to_string()));
                    }
                }
            }
            if let Some(m) = ch.metrics.destination(n) {
                if status.0 == Status::Sent {
                    m.sent.inc();
                    let micros =
                        Timestamp::now().as_micros() - item.message_id.timestamp().as_micros();
                    m.latency.observe(Duration::from_micros(
                        u64::try_from(micros).unwrap_or_default(),
                    ));
                } else {
                    m.errored.inc();
                }
            }
            t.destinations.push(DestinationUpdate {
                destination: n,
                name: plan.name.clone(),
                status: status.0,
                error: status.1,
                shared: Shared::SENT_IS_ENCODED,
            });
            t.refresh_status = true;
            Delivery::Done(Box::new(t))
        }
        Err(SendError::Retryable(error)) => Delivery::Retry { error },
        Err(SendError::Permanent(error)) => Delivery::Fail { error },
    }
}

/// Writes the transitions of sent messages and tells anyone waiting for them; false if they
/// could not be written (the messages will be sent again).
async fn flush(
    engine: &Engine,
    ch: &Channel,
    done: &mut Vec<Transition>,
    ended: &mut Vec<store::MessageId>,
) -> bool {
    if done.is_empty() {
        return true;
    }
    if let Err(e) = engine.store.apply(std::mem::take(done)).await {
        warn!(channel = %ch.name(), error = %e, "cannot record deliveries; they will be sent again");
        ended.clear();
        return false;
    }
    for id in std::mem::take(ended) {
        notify_if_final(engine, id).await;
    }
    true
}

/// Records a message that failed for good at a destination.
async fn dead(
    engine: &Engine,
    ch: &Channel,
    plan: &crate::pipeline::DestinationPlan,
    item: &QueueItem,
    error: &str,
) {
    if let Some(m) = ch.metrics.destination(plan.number) {
        m.errored.inc();
    }
    let mut t = Transition::new(item.message_id);
    t.destinations.push(DestinationUpdate {
        destination: plan.number,
        name: plan.name.clone(),
        status: Status::Error,
        error: Some(error.to_owned()),
        shared: Shared::NONE,
    });
    t.refresh_status = true;
    if let Err(e) = engine.store.apply(vec![t]).await {
        warn!(channel = %ch.name(), error = %e, "cannot record a failed delivery");
    }
    notify_if_final(engine, item.message_id).await;
}

async fn notify_if_final(engine: &Engine, id: store::MessageId) {
    if !engine.is_watched(id) {
        return;
    }
    if let Ok(Some(m)) = engine.store.get(id).await
        && is_final(m.summary.status)
    {
        let error = m
            .destinations
            .iter()
            .filter_map(|d| d.error.as_ref().map(|e| format!("{}: {e}", d.name)))
            .collect::<Vec<_>>();
        engine.finish(
            id,
            &Finished {
                status: m.summary.status,
                error: m
                    .summary
                    .error
                    .or_else(|| (!error.is_empty()).then(|| error.join("; "))),
            },
        );
    }
}
