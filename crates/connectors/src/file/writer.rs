//! The file writer destination: one file per message (or appends to one), named by a template.

use std::borrow::Cow;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::fsops::sync_dir;
use crate::error::{Error, Result};
use crate::{Delivered, Destination, Fields, SendError, Template};

/// Settings of a [`FileWriter`] (`type = "file"` under `[[destination]]`).
///
/// ```toml
/// directory = "/data/out"
/// name = "${PID-3-1}_${date:%Y%m%d%H%M%S}_${messageId}.hl7"
/// append = false
/// temp_then_rename = true
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWriterConfig {
    /// Directory the files go to; created if missing. Names never leave it.
    pub directory: PathBuf,
    /// File name template, relative to `directory`; it may make subdirectories
    /// (`${date:%Y}/${messageId}.hl7`). `/` and `\` in field values become `_`; a name that
    /// is empty, absolute or has a `..` part is refused (a permanent error).
    /// Default: `${messageId}.hl7`.
    #[serde(default = "default_name")]
    pub name: Template,
    /// Append each message to the file instead of replacing it (a daily batch file, say).
    /// Appends are written and synced directly; `temp_then_rename` does not apply.
    /// Default: false.
    #[serde(default)]
    pub append: bool,
    /// Write to a hidden temporary file (`.NAME.<pid>-<n>.tmp`) in the target directory,
    /// sync it, then rename it to the name and sync the directory, so a reader never sees a
    /// half-written file. When false the file is written in place (and still synced).
    /// Default: true.
    #[serde(default = "yes")]
    pub temp_then_rename: bool,
}

fn default_name() -> Template {
    // A constant template that parses.
    Template::parse("${messageId}.hl7").unwrap_or_else(|_| unreachable!())
}

fn yes() -> bool {
    true
}

impl Default for FileWriterConfig {
    fn default() -> Self {
        Self {
            directory: PathBuf::from("."),
            name: default_name(),
            append: false,
            temp_then_rename: true,
        }
    }
}

impl FileWriterConfig {
    /// Creates the directory if needed and makes the writer.
    pub fn build(&self) -> Result<FileWriter> {
        FileWriter::new(self.clone())
    }
}

/// Writes each message to a file in one directory.
#[derive(Debug, Clone)]
pub struct FileWriter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: FileWriterConfig,
    /// `directory`, canonical: every target's parent must be inside it.
    root: PathBuf,
    /// Appends to one file are not interleaved.
    append_lock: tokio::sync::Mutex<()>,
}

/// Numbers temporary files uniquely within this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FileWriter {
    /// Creates the directory if needed and makes the writer.
    pub fn new(config: FileWriterConfig) -> Result<Self> {
        check_name(&config.name)?;
        let dir_error = |reason: String| Error::Directory {
            what: "file writer directory",
            path: config.directory.clone(),
            reason,
        };
        fs::create_dir_all(&config.directory).map_err(|e| dir_error(e.to_string()))?;
        let root = fs::canonicalize(&config.directory).map_err(|e| dir_error(e.to_string()))?;
        if !root.is_dir() {
            return Err(dir_error("not a directory".into()));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                root,
                append_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &FileWriterConfig {
        &self.inner.config
    }

    /// The path (inside the directory) a message with these fields would be written to now,
    /// or the permanent error explaining why the name is refused.
    pub fn target_path(&self, fields: &dyn Fields) -> Result<PathBuf, SendError> {
        target_path(&self.inner, fields, SystemTime::now())
    }

    /// Writes `bytes` to the file the name template gives, synced to disk before returning.
    pub async fn send(&self, bytes: &[u8], fields: &dyn Fields) -> Result<Delivered, SendError> {
        let target = self.target_path(fields)?;
        let data = bytes.to_vec();
        let _guard = if self.inner.config.append {
            Some(self.inner.append_lock.lock().await)
        } else {
            None
        };
        let written = {
            let (inner, target) = (Arc::clone(&self.inner), target.clone());
            tokio::task::spawn_blocking(move || write(&inner, &target, &data))
        }
        .await
        .map_err(|e| SendError::Retryable(format!("file write task failed: {e}")))?;
        match written {
            Ok(()) => Ok(Delivered {
                response: None,
                content_type: None,
                detail: format!(
                    "{} {} bytes to {}",
                    if self.inner.config.append {
                        "appended"
                    } else {
                        "wrote"
                    },
                    bytes.len(),
                    target.display()
                ),
            }),
            Err(e) => Err(classify(&e, &target)),
        }
    }
}

impl Destination for FileWriter {
    fn send<'a>(
        &'a self,
        bytes: &'a [u8],
        fields: &'a dyn Fields,
    ) -> BoxFuture<'a, Result<Delivered, SendError>> {
        Box::pin(FileWriter::send(self, bytes, fields))
    }
}

/// Refuses, when the configuration is read, a name that is absolute or has a literal `..`
/// part; what values make of it is checked per message.
fn check_name(name: &Template) -> Result<()> {
    let source = name.source();
    let bad = |why: &str| {
        Err(Error::Config(format!(
            "file writer name {source:?} {why}: names are relative to the directory"
        )))
    };
    if source.starts_with('/') {
        return bad("is absolute");
    }
    if source.split('/').any(|part| part == "..") {
        return bad("has a `..` part");
    }
    Ok(())
}

/// Keeps field values from adding path parts: separators, NUL and control characters become
/// `_`.
fn sanitize(value: &str) -> Cow<'_, str> {
    let bad = |c: char| c == '/' || c == '\\' || c.is_control();
    if value.contains(bad) {
        Cow::Owned(value.replace(bad, "_"))
    } else {
        Cow::Borrowed(value)
    }
}

fn target_path(inner: &Inner, fields: &dyn Fields, now: SystemTime) -> Result<PathBuf, SendError> {
    let name = inner.config.name.render_escaped(fields, now, sanitize);
    let refuse = |why: &str| {
        Err(SendError::Permanent(format!(
            "file name {name:?} from template {:?} {why}",
            inner.config.name.source()
        )))
    };
    let relative = Path::new(&name);
    let mut parts = 0;
    for component in relative.components() {
        match component {
            Component::Normal(_) => parts += 1,
            Component::CurDir => {}
            Component::ParentDir => return refuse("has a `..` part"),
            Component::RootDir | Component::Prefix(_) => return refuse("is absolute"),
        }
    }
    if parts == 0 || name.ends_with('/') {
        return refuse("names no file");
    }
    Ok(inner.root.join(relative))
}

/// Writes the file (blocking). `target` is inside `inner.root` by construction; symbolic links
/// inside the directory are checked here, once the parent exists.
fn write(inner: &Inner, target: &Path, data: &[u8]) -> io::Result<()> {
    let parent = target.parent().unwrap_or(&inner.root);
    if parent != inner.root {
        fs::create_dir_all(parent)?;
        if !fs::canonicalize(parent)?.starts_with(&inner.root) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the directory is a link leading outside the configured directory",
            ));
        }
    }
    if fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the file is a symbolic link; refusing to write through it",
        ));
    }
    let config = &inner.config;
    if config.append {
        let existed = target.exists();
        let mut file = OpenOptions::new().append(true).create(true).open(target)?;
        file.write_all(data)?;
        file.sync_all()?;
        if !existed {
            sync_dir(parent)?;
        }
        return Ok(());
    }
    if !config.temp_then_rename {
        let mut file = fs::File::create(target)?;
        file.write_all(data)?;
        file.sync_all()?;
        return sync_dir(parent);
    }
    let file_name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(
        ".{}-{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = parent.join(temp_name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, target)?;
        sync_dir(parent)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Bad names cannot get better by retrying; every other failure (disk full, permissions, a
/// file system that went away) may be fixed by an operator, so it is retried.
fn classify(error: &io::Error, target: &Path) -> SendError {
    let message = format!("writing {}: {error}", target.display());
    match error.kind() {
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidFilename => {
            SendError::Permanent(message)
        }
        _ => SendError::Retryable(message),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn writer(dir: &Path, name: &str) -> FileWriter {
        FileWriterConfig {
            directory: dir.to_owned(),
            name: Template::parse(name).unwrap(),
            ..FileWriterConfig::default()
        }
        .build()
        .unwrap()
    }

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn names_stay_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        let w = writer(dir.path(), "${a}/${b}.hl7");
        let ok = w.target_path(&fields(&[("a", "x"), ("b", "../../etc/passwd")]));
        assert_eq!(ok.unwrap(), root.join("x/.._.._etc_passwd.hl7"));
        for (a, b) in [("..", "y"), ("", "")] {
            let err = w.target_path(&fields(&[("a", a), ("b", b)])).unwrap_err();
            assert!(!err.is_retryable(), "{err}");
        }
        for bad in ["/etc/${a}", "../${a}", "a/../../${a}", "x/.."] {
            let config = FileWriterConfig {
                directory: dir.path().to_owned(),
                name: Template::parse(bad).unwrap(),
                ..FileWriterConfig::default()
            };
            assert!(config.build().is_err(), "{bad}");
        }
        // `..` inside a name is just dots.
        let dots = writer(dir.path(), "a..b${a}..hl7");
        assert!(dots.target_path(&fields(&[("a", "x")])).is_ok());
    }

    #[test]
    fn config_from_toml() {
        let c: FileWriterConfig = toml::from_str(
            r#"
            directory = "/data/out"
            name = "${PID-3-1}_${date:%Y%m%d}.hl7"
            "#,
        )
        .unwrap();
        assert!(c.temp_then_rename);
        assert!(!c.append);
        let e =
            toml::from_str::<FileWriterConfig>("directory = \"x\"\nname = \"${x\"").unwrap_err();
        assert!(e.to_string().contains("column 1"), "{e}");
        assert!(toml::from_str::<FileWriterConfig>("directory = \"x\"\nnmae = \"y\"").is_err());
    }
}
