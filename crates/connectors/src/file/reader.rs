//! The file reader source: polls a directory and submits each matching file as one message.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use super::fsops::{move_no_clobber, sync_dir};
use super::pattern::NamePattern;
use crate::error::{Error, Result};
use crate::{Inbound, Submit};

/// What to do with a file once the engine accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterRead {
    /// Move it to `move_to` (keeping its name; `name-1.ext` … if taken).
    Move,
    /// Delete it: the engine has stored the exact bytes.
    #[default]
    Delete,
    /// Leave it where it is. It is not read again while its modification time and size stay
    /// the same and the reader keeps running; after a restart it is read again.
    Leave,
}

/// Settings of a [`FileReader`] (`type = "file"` under `[source]`).
///
/// ```toml
/// directory = "/data/in"
/// glob = "*.{hl7,txt}"
/// poll_interval = "5s"
/// after = "move"
/// move_to = "/data/done"
/// error_directory = "/data/error"
/// min_age = "2s"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileReaderConfig {
    /// The directory to poll (not its subdirectories). Must exist.
    pub directory: PathBuf,
    /// Which file names to read: `*`, `?`, `[a-z]`, `[!a]` and `{hl7,txt}` alternatives,
    /// case-sensitive; `*` does not match a leading `.`, so hidden and temporary files are
    /// skipped. Default: `*`.
    #[serde(default = "default_glob")]
    pub glob: String,
    /// Time between two scans of the directory. Default: 5 s.
    #[serde(default = "default_poll_interval", with = "mllp::duration")]
    pub poll_interval: Duration,
    /// `move` (to `move_to`), `delete` or `leave`, once the engine accepted the file.
    /// Default: `delete`.
    #[serde(default)]
    pub after: AfterRead,
    /// Where accepted files go when `after = "move"`; created if missing.
    #[serde(default)]
    pub move_to: Option<PathBuf>,
    /// Where files go that the engine stored but refused, or that could not be read or were
    /// too large; created if missing. Without it such files stay in place and are not read again while
    /// unchanged (each is logged).
    #[serde(default)]
    pub error_directory: Option<PathBuf>,
    /// Files modified more recently than this are skipped until the next scan, so a file still
    /// being written is not read half-way. Default: 1 s.
    #[serde(default = "default_min_age", with = "mllp::duration")]
    pub min_age: Duration,
    /// Larger files are not read but moved to `error_directory`. Default: 16 MiB.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
}

fn default_glob() -> String {
    "*".to_owned()
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_min_age() -> Duration {
    Duration::from_secs(1)
}
fn default_max_file_bytes() -> u64 {
    16 << 20
}

impl FileReaderConfig {
    /// Settings for `directory`, everything else default.
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        Self {
            directory: directory.into(),
            glob: default_glob(),
            poll_interval: default_poll_interval(),
            after: AfterRead::default(),
            move_to: None,
            error_directory: None,
            min_age: default_min_age(),
            max_file_bytes: default_max_file_bytes(),
        }
    }

    /// Checks the settings, creates `move_to` and `error_directory` if needed, and makes the
    /// reader.
    pub fn build(&self) -> Result<FileReader> {
        FileReader::new(self.clone())
    }
}

/// Polls a directory and submits each file that matches, oldest name first.
#[derive(Debug)]
pub struct FileReader {
    config: FileReaderConfig,
    pattern: NamePattern,
    directory: PathBuf,
    move_to: Option<PathBuf>,
    error_directory: Option<PathBuf>,
}

/// A file seen in a scan.
#[derive(Debug, Clone)]
struct Candidate {
    name: String,
    path: PathBuf,
    stamp: Stamp,
}

/// What identifies a version of a file for "already handled".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: SystemTime,
    len: u64,
}

impl FileReader {
    /// Checks the settings, creates `move_to` and `error_directory` if needed, and makes the
    /// reader.
    pub fn new(config: FileReaderConfig) -> Result<Self> {
        let pattern = NamePattern::new(&config.glob)?;
        if config.poll_interval.is_zero() {
            return Err(Error::Config(
                "file reader poll_interval must be above 0".into(),
            ));
        }
        let directory = existing_dir("file reader directory", &config.directory)?;
        let move_to = match (config.after, &config.move_to) {
            (AfterRead::Move, Some(dir)) => Some(own_dir("move_to", dir, &directory)?),
            (AfterRead::Move, None) => {
                return Err(Error::Config(
                    "file reader: after = \"move\" needs move_to".into(),
                ));
            }
            (_, Some(_)) => {
                return Err(Error::Config(
                    "file reader: move_to is only used with after = \"move\"".into(),
                ));
            }
            (_, None) => None,
        };
        let error_directory = config
            .error_directory
            .as_deref()
            .map(|dir| own_dir("error_directory", dir, &directory))
            .transpose()?;
        Ok(Self {
            config,
            pattern,
            directory,
            move_to,
            error_directory,
        })
    }

    /// The settings.
    pub fn config(&self) -> &FileReaderConfig {
        &self.config
    }

    /// Scans the directory every `poll_interval` and submits each matching file until
    /// `shutdown` completes. A file being submitted when shutdown comes is finished first.
    ///
    /// Files are handled one at a time in name order. A file is moved or deleted only after
    /// `submit` returned an accepted receipt; one stored but refused goes to
    /// `error_directory`; one that could not be stored stays and is read again at the next
    /// poll. A scan that fails (the directory is gone, say) is logged and retried at the next
    /// interval.
    pub async fn run(self, submit: Arc<dyn Submit>, shutdown: impl Future<Output = ()>) {
        let mut seen: HashMap<String, Stamp> = HashMap::new();
        tokio::pin!(shutdown);
        tracing::info!(
            directory = %self.directory.display(),
            glob = %self.pattern.source(),
            "file reader started"
        );
        'polling: loop {
            match self.scan().await {
                Ok(candidates) => {
                    let present: HashSet<&str> =
                        candidates.iter().map(|c| c.name.as_str()).collect();
                    seen.retain(|name, _| present.contains(name.as_str()));
                    for candidate in candidates {
                        if seen.get(&candidate.name) == Some(&candidate.stamp) {
                            continue;
                        }
                        let age = SystemTime::now()
                            .duration_since(candidate.stamp.modified)
                            .unwrap_or_default();
                        if age < self.config.min_age {
                            continue;
                        }
                        if let Some(stamp) = self.handle(&candidate, submit.as_ref()).await {
                            seen.insert(candidate.name, stamp);
                        }
                        if shutdown.as_mut().now_or_never().is_some() {
                            break 'polling;
                        }
                    }
                }
                Err(e) => tracing::warn!(
                    directory = %self.directory.display(),
                    error = %e,
                    "scanning the directory failed; retrying at the next poll"
                ),
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
        tracing::info!(directory = %self.directory.display(), "file reader stopped");
    }

    /// The regular files whose names match, sorted by name.
    async fn scan(&self) -> std::io::Result<Vec<Candidate>> {
        let directory = self.directory.clone();
        let pattern = self.pattern.clone();
        let scanned = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for entry in fs::read_dir(&directory)? {
                let entry = entry?;
                let Ok(name) = entry.file_name().into_string() else {
                    tracing::warn!(file = ?entry.file_name(), "skipping a file name that is not UTF-8");
                    continue;
                };
                if !pattern.matches(&name) {
                    continue;
                }
                // Follows links, so a link to a file counts as a file.
                let Ok(meta) = entry.path().metadata() else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                out.push(Candidate {
                    path: entry.path(),
                    name,
                    stamp: Stamp {
                        modified: meta.modified()?,
                        len: meta.len(),
                    },
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await;
        scanned.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// Reads, submits and disposes of one file. Returns the stamp to remember when the file
    /// stays where it is (left, or a move or delete failed), so it is not submitted again.
    async fn handle(&self, file: &Candidate, submit: &dyn Submit) -> Option<Stamp> {
        let span = tracing::info_span!("file", name = %file.name);
        self.handle_in_span(file, submit).instrument(span).await
    }

    async fn handle_in_span(&self, file: &Candidate, submit: &dyn Submit) -> Option<Stamp> {
        if file.stamp.len > self.config.max_file_bytes {
            let reason = format!(
                "{} bytes, more than max_file_bytes ({})",
                file.stamp.len, self.config.max_file_bytes
            );
            return self.reject(file, &reason).await;
        }
        let bytes = match tokio::fs::read(&file.path).await {
            Ok(bytes) => bytes,
            // Taken away between the scan and now (by another reader, say): nothing to do.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => return self.reject(file, &format!("cannot be read: {e}")).await,
        };
        let len = bytes.len();
        let receipt = submit
            .submit(Inbound {
                bytes,
                origin: Some(file.name.clone()),
                ..Inbound::default()
            })
            .await;
        if receipt.retry_later() {
            tracing::warn!(
                error = receipt.error.as_deref(),
                "file not stored; it stays and is read again at the next poll"
            );
            return None;
        }
        if !receipt.accepted {
            let reason = receipt.error.as_deref().unwrap_or("refused by the engine");
            return self.reject(file, reason).await;
        }
        tracing::info!(
            bytes = len,
            message_id = receipt.message_id.as_deref(),
            "file accepted"
        );
        let done = match self.config.after {
            AfterRead::Leave => return Some(file.stamp),
            AfterRead::Delete => {
                let path = file.path.clone();
                let dir = self.directory.clone();
                blocking(move || fs::remove_file(&path).and_then(|()| sync_dir(&dir)))
                    .await
                    .map(|()| "deleted".to_owned())
            }
            AfterRead::Move => {
                let path = file.path.clone();
                let to = self.move_to.clone().unwrap_or_default();
                blocking(move || move_no_clobber(&path, &to))
                    .await
                    .map(|to| format!("moved to {}", to.display()))
            }
        };
        match done {
            Ok(what) => {
                tracing::debug!("{what}");
                None
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "the file was accepted but could not be {}; it stays and is not read again while unchanged",
                    if self.config.after == AfterRead::Move { "moved" } else { "deleted" }
                );
                Some(file.stamp)
            }
        }
    }

    /// Moves a file that was not accepted to the error directory, or leaves it (remembered).
    async fn reject(&self, file: &Candidate, reason: &str) -> Option<Stamp> {
        let Some(error_directory) = self.error_directory.clone() else {
            tracing::warn!(
                reason,
                "file not accepted; it stays (no error_directory) and is not read again while unchanged"
            );
            return Some(file.stamp);
        };
        let path = file.path.clone();
        match blocking(move || move_no_clobber(&path, &error_directory)).await {
            Ok(to) => {
                tracing::warn!(reason, moved_to = %to.display(), "file not accepted; moved to the error directory");
                None
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::error!(
                    reason,
                    error = %e,
                    "file not accepted and could not be moved to the error directory; it stays"
                );
                Some(file.stamp)
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// The canonical path of a directory that must exist.
fn existing_dir(what: &'static str, path: &Path) -> Result<PathBuf> {
    let error = |reason: String| Error::Directory {
        what,
        path: path.to_owned(),
        reason,
    };
    let canonical = fs::canonicalize(path).map_err(|e| error(e.to_string()))?;
    if !canonical.is_dir() {
        return Err(error("not a directory".into()));
    }
    Ok(canonical)
}

/// Creates `move_to` or `error_directory` if needed; it must differ from the polled directory
/// (or files would be read again and again).
fn own_dir(what: &'static str, path: &Path, polled: &Path) -> Result<PathBuf> {
    fs::create_dir_all(path).map_err(|e| Error::Directory {
        what,
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let canonical = existing_dir(what, path)?;
    if canonical == polled {
        return Err(Error::Config(format!(
            "file reader: {what} must differ from the polled directory"
        )));
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_toml() {
        let c: FileReaderConfig = toml::from_str(
            r#"
            directory = "/data/in"
            glob = "*.hl7"
            after = "move"
            move_to = "/data/done"
            poll_interval = "250ms"
            "#,
        )
        .unwrap();
        assert_eq!(c.after, AfterRead::Move);
        assert_eq!(c.poll_interval, Duration::from_millis(250));
        assert_eq!(c.min_age, Duration::from_secs(1));
        assert_eq!(c.max_file_bytes, 16 << 20);
        assert!(toml::from_str::<FileReaderConfig>("directory = \"x\"\nafter = \"copy\"").is_err());
        assert!(toml::from_str::<FileReaderConfig>("directory = \"x\"\ntype = \"file\"").is_err());
    }

    #[test]
    fn build_checks_directories() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = FileReaderConfig::new(dir.path());
        c.after = AfterRead::Move;
        assert!(c.clone().build().is_err(), "move without move_to");
        c.move_to = Some(dir.path().to_owned());
        assert!(
            c.clone().build().is_err(),
            "move_to is the polled directory"
        );
        c.move_to = Some(dir.path().join("done"));
        c.build().unwrap();
        assert!(dir.path().join("done").is_dir());
        assert!(
            FileReaderConfig::new(dir.path().join("missing"))
                .build()
                .is_err()
        );
    }
}
