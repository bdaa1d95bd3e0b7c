//! Operations on stored messages: reprocessing, retention (prune with optional archive), and
//! queue depths.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use store::{Journal as _, MessageFilter, MessageId, NewMessage, Queues as _, Status, Timestamp};
use tracing::{info, warn};

use crate::config::RetentionConfig;
use crate::error::{EngineError, Result};
use crate::runtime::{Engine, queue_name};

/// Most messages one reprocessing request may take.
pub const MAX_REPROCESS: usize = 100_000;

/// A reprocessed message: the original and its new copy.
#[derive(Debug, Clone, Serialize)]
pub struct Reprocessed {
    /// The message reprocessed.
    pub original: MessageId,
    /// The new message (its `original_id` is the original).
    pub copy: MessageId,
}

impl Engine {
    /// Processes a stored message again as a new message linked to it, optionally only to
    /// some destinations (names or numbers).
    pub async fn reprocess(&self, id: MessageId, only: Option<&[String]>) -> Result<Reprocessed> {
        let m = self
            .store
            .get(id)
            .await?
            .ok_or(EngineError::UnknownMessage(id))?;
        let ch = self.channel(&m.summary.channel)?;
        let route_only = match only {
            None => None,
            Some(names) => {
                let mut numbers = names
                    .iter()
                    .map(|n| self.destination_number(&ch, n))
                    .collect::<Result<Vec<_>>>()?;
                // "lab" and "1" may name the same destination
                numbers.sort_unstable();
                numbers.dedup();
                Some(numbers)
            }
        };
        let Some(raw) = m.raw() else {
            return Err(EngineError::State {
                channel: ch.config.name.clone(),
                reason: format!("message {id} has no received content (pruned?)"),
            });
        };
        let s = &m.summary;
        let mut new = NewMessage::new(s.channel.clone(), raw.to_vec());
        new.peer_addr.clone_from(&s.peer_addr);
        new.tls_subject.clone_from(&s.tls_subject);
        new.message_type.clone_from(&s.message_type);
        new.trigger_event.clone_from(&s.trigger_event);
        new.control_id.clone_from(&s.control_id);
        new.sending_application.clone_from(&s.sending_application);
        new.sending_facility.clone_from(&s.sending_facility);
        new.metadata.clone_from(&m.metadata);
        new.original_id = Some(id);
        new.route_only = route_only;
        let copy = self.accept(new).await?;
        info!(channel = %s.channel, original = %id, copy = %copy, "reprocessing");
        Ok(Reprocessed { original: id, copy })
    }

    /// Reprocesses every message matching `filter` (a search result or a time range), oldest
    /// first: with `filter.limit`, the newest `limit` matches (the messages the same search
    /// lists), else every match, at most [`MAX_REPROCESS`].
    ///
    /// A message that cannot be reprocessed (its channel is not deployed, it has no such
    /// destination, its content was pruned) is reported in [`ReprocessReport::failed`] and
    /// the others go on; a store error stops the run.
    pub async fn reprocess_matching(
        &self,
        filter: &MessageFilter,
        only: Option<&[String]>,
    ) -> Result<ReprocessReport> {
        const PAGE: usize = 1_000;
        let cap = filter.limit.map(|l| l as usize);
        let mut ids = Vec::new();
        let mut page = filter.clone();
        loop {
            let want = cap.map_or(PAGE, |c| c.saturating_sub(ids.len()).min(PAGE));
            if want == 0 {
                break;
            }
            page.limit = Some(u32::try_from(want).unwrap_or(u32::MAX));
            let rows = self.store.list(&page).await?;
            let Some(last) = rows.last() else { break };
            page.before_id = Some(last.id);
            let full = rows.len() == want;
            ids.extend(rows.iter().map(|r| r.id));
            if ids.len() > MAX_REPROCESS {
                return Err(EngineError::State {
                    channel: filter.channel.clone().unwrap_or_default(),
                    reason: format!("more than {MAX_REPROCESS} messages match; narrow the search"),
                });
            }
            if !full {
                break;
            }
        }
        ids.reverse();
        let mut report = ReprocessReport::default();
        for id in ids {
            match self.reprocess(id, only).await {
                Ok(r) => report.reprocessed.push(r),
                Err(e @ EngineError::Store(_)) => return Err(e),
                Err(e) => report.failed.push(ReprocessFailure {
                    id,
                    error: e.to_string(),
                }),
            }
        }
        Ok(report)
    }

    /// Messages waiting per destination: `(channel, destination, depth)`.
    pub async fn queue_depths(&self) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for ch in self.channels() {
            for d in &ch.pipeline.destinations {
                match self
                    .store
                    .queue_depth(&queue_name(ch.name(), d.number))
                    .await
                {
                    Ok(depth) => out.push((
                        ch.name().to_owned(),
                        d.name.clone(),
                        depth.ready + depth.leased,
                    )),
                    Err(e) => warn!(channel = %ch.name(), error = %e, "cannot read a queue depth"),
                }
            }
        }
        out
    }

    /// Applies a channel's retention: archives (if configured) and deletes its old messages,
    /// in small transactions so that ingest is never held up. Messages still queued are kept.
    pub async fn prune(&self, channel: &str, retention: &RetentionConfig) -> Result<PruneReport> {
        let older_than = retention
            .max_age
            .map(|age| Timestamp::now().saturating_sub(age));
        let mut report = PruneReport::default();
        if older_than.is_none() && retention.max_messages.is_none() {
            return Ok(report);
        }
        // one prune of a channel at a time (the schedule and the admin API), so that no
        // message is archived twice
        let lock = self.prune_lock(channel);
        let _held = lock.lock().await;
        // made with the first batch: a run that deletes nothing leaves no empty archive
        let mut archive: Option<Archive> = None;
        loop {
            let ids = self
                .store
                .prunable(channel, older_than, retention.max_messages, 500)
                .await?;
            if ids.is_empty() {
                break;
            }
            if let (Some(dir), None) = (&retention.archive_dir, &archive) {
                archive = Some(Archive::create(dir, channel)?);
            }
            if let Some(a) = archive.as_mut() {
                for id in &ids {
                    if let Some(m) = self.store.get(*id).await? {
                        a.write(&m)?;
                        report.archived += 1;
                    }
                }
                // on disk before anything is deleted
                a.sync()?;
            }
            report.deleted += self.store.delete(&ids).await?;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some(a) = archive {
            report.archive = a.finish()?;
        }
        if report.deleted > 0 {
            info!(
                channel,
                deleted = report.deleted,
                archived = report.archived,
                "pruned"
            );
        }
        Ok(report)
    }

    /// Runs every deployed channel's retention every `every`, until the engine is dropped.
    pub fn spawn_retention(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(engine) = weak.upgrade() else { break };
                for ch in engine.channels() {
                    if let Err(e) = engine.prune(ch.name(), &ch.config.retention).await {
                        warn!(channel = %ch.name(), error = %e, "pruning failed");
                    }
                }
            }
        })
    }
}

/// What reprocessing a search did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReprocessReport {
    /// The messages reprocessed, oldest first.
    pub reprocessed: Vec<Reprocessed>,
    /// The messages that could not be, with why.
    pub failed: Vec<ReprocessFailure>,
}

/// A message that could not be reprocessed.
#[derive(Debug, Clone, Serialize)]
pub struct ReprocessFailure {
    /// The message.
    pub id: MessageId,
    /// Why.
    pub error: String,
}

/// What a prune did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Messages deleted.
    pub deleted: u64,
    /// Messages written to the archive first.
    pub archived: u64,
    /// The archive file, if any was written.
    pub archive: Option<std::path::PathBuf>,
}

/// A gzip NDJSON archive: one JSON object per message, content as text when it is UTF-8,
/// else as hex.
struct Archive {
    path: std::path::PathBuf,
    gz: flate2::write::GzEncoder<std::fs::File>,
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> EngineError {
    move |source| EngineError::Io { what, source }
}

impl Archive {
    fn create(dir: &Path, channel: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let stamp = Timestamp::now().as_micros();
        let path = dir.join(format!("{channel}-{stamp}.ndjson.gz"));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("creating {}", path.display())))?;
        Ok(Self {
            gz: flate2::write::GzEncoder::new(file, flate2::Compression::default()),
            path,
        })
    }

    fn write(&mut self, m: &store::StoredMessage) -> Result<()> {
        let content: Vec<_> = m
            .content
            .iter()
            .map(|c| {
                let (encoding, data) = text_or_hex(c.bytes.clone());
                serde_json::json!({
                    "destination": c.destination,
                    "stage": c.stage.to_string(),
                    "encoding": encoding,
                    "data": data,
                })
            })
            .collect();
        let line = serde_json::json!({
            "summary": m.summary,
            "metadata": m.metadata,
            "destinations": m.destinations,
            "content": content,
        });
        let path = self.path.display().to_string();
        serde_json::to_writer(&mut self.gz, &line).map_err(|e| EngineError::Io {
            what: format!("writing {path}"),
            source: e.into(),
        })?;
        self.gz
            .write_all(b"\n")
            .map_err(io_err(format!("writing {path}")))
    }

    fn sync(&mut self) -> Result<()> {
        let what = format!("writing {}", self.path.display());
        self.gz.flush().map_err(io_err(what.clone()))?;
        self.gz.get_ref().sync_all().map_err(io_err(what))
    }

    fn finish(self) -> Result<Option<std::path::PathBuf>> {
        let what = format!("writing {}", self.path.display());
        let file = self.gz.finish().map_err(io_err(what.clone()))?;
        file.sync_all().map_err(io_err(what))?;
        Ok(Some(self.path))
    }
}

/// Content for JSON (archives, the admin API): `("text", the text)` when it is UTF-8, else
/// `("hex", lower-case hex)`.
pub fn text_or_hex(bytes: Vec<u8>) -> (&'static str, String) {
    match String::from_utf8(bytes) {
        Ok(t) => ("text", t),
        Err(e) => ("hex", hex(e.as_bytes())),
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Messages of a status, for the console's "errors" view.
pub fn errors_filter(channel: Option<String>) -> MessageFilter {
    MessageFilter {
        channel,
        status: Some(Status::Error),
        ..MessageFilter::default()
    }
}
