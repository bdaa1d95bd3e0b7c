//! Channel files: one TOML file per channel, read with every error located (file, line,
//! column).
//!
//! ```toml
//! name = "adt-router"                 # default: the file name without `.toml`
//! data_type = "HL7V2"                 # what the source receives: HL7V2, JSON, XML or RAW
//! metadata = { MRN = "PID-3-1" }      # searchable fields, by path
//!
//! [source.mllp]
//! bind = "127.0.0.1:6661"
//!
//! [[filter]]
//! type = "message-type"
//! accept = ["ADT^A01", "ADT^A04", "ADT^A08"]
//!
//! [[destination]]
//! name = "lab"
//! [destination.mllp]
//! host = "127.0.0.1"
//! port = 6662
//! [[destination.transformer]]
//! type = "set"
//! path = "MSH-5"
//! value = "LAB"
//! ```
//!
//! A connector is a single key named after its kind (`[source.mllp]`, `[destination.http]`)
//! so that every table keeps `deny_unknown_fields` and its position in the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use script::DataType;
use serde::Deserialize;

use crate::error::ConfigError;

/// A channel as written in its file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Channel name: letters, digits, `-`, `_` and `.`; default: the file stem.
    #[serde(default)]
    pub name: String,
    /// Free text shown in listings.
    #[serde(default)]
    pub description: String,
    /// Deployed when the server starts. Default: true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// What the source receives. Default: HL7V2.
    #[serde(default = "default_data_type")]
    pub data_type: DataType,
    /// Searchable metadata: name → path in the received message (e.g. `MRN = "PID-3-1"`),
    /// read when the message arrives.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Where messages come from. Without a connector the channel is fed only by other
    /// channels (a channel reader).
    #[serde(default)]
    pub source: SourceConfig,
    /// Steps run on the raw text before anything else.
    #[serde(default)]
    pub preprocessor: Vec<StepConfig>,
    /// Source filter: every rule must accept, else the message is FILTERED.
    #[serde(default)]
    pub filter: Vec<StepConfig>,
    /// Source transformer steps, in order.
    #[serde(default)]
    pub transformer: Vec<StepConfig>,
    /// Destinations, numbered from 1 in file order.
    #[serde(default, rename = "destination")]
    pub destinations: Vec<DestinationConfig>,
    /// Steps run once every destination has a result (scripts see the response map).
    #[serde(default)]
    pub postprocessor: Vec<StepConfig>,
    /// JavaScript limits for this channel's scripts.
    #[serde(default)]
    pub script: ScriptSettings,
    /// Retention of this channel's messages.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// The folder of the channel file; relative paths (scripts, code tables) start here.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The channel file, for messages.
    #[serde(skip)]
    pub file: PathBuf,
}

fn yes() -> bool {
    true
}

fn default_data_type() -> DataType {
    DataType::Hl7v2
}

/// The source of a channel.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// When an MLLP or HTTP sender gets its acknowledgment. Default: `after-commit`.
    #[serde(default)]
    pub ack: AckTiming,
    /// How long `after-destinations` waits before answering with an error. Default: 30 s.
    #[serde(default = "default_ack_wait", with = "mllp::duration")]
    pub ack_wait: Duration,
    /// What an HTTP (or file) source answers for an accepted message instead of the ACK or
    /// the JSON receipt, e.g. `response = { body = "OK", content_type = "text/plain" }`.
    pub response: Option<ResponseConfig>,
    /// MLLP listener (the settings of `plexus.toml`'s `[[listener]]`).
    pub mllp: Option<mllp::ServerConfig>,
    /// HTTP listener.
    pub http: Option<connectors::http::HttpListenerConfig>,
    /// Directory poller.
    pub file: Option<connectors::file::FileReaderConfig>,
}

fn default_ack_wait() -> Duration {
    Duration::from_secs(30)
}

/// A fixed answer to accepted messages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    /// The body.
    pub body: String,
    /// Its content type. Default: `text/plain`.
    #[serde(default = "default_content_type")]
    pub content_type: String,
}

fn default_content_type() -> String {
    "text/plain".into()
}

/// When the source answers its sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AckTiming {
    /// As soon as the message is durably stored.
    #[default]
    AfterCommit,
    /// Once every destination has sent it, filtered it or failed (the ACK then says AE).
    AfterDestinations,
}

/// One destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Name, unique in the channel.
    pub name: String,
    /// Destination filter rules.
    #[serde(default)]
    pub filter: Vec<StepConfig>,
    /// Destination transformer steps.
    #[serde(default)]
    pub transformer: Vec<StepConfig>,
    /// Steps run on the response (its text is the message the steps see).
    #[serde(default)]
    pub response_transformer: Vec<StepConfig>,
    /// The destination's queue.
    #[serde(default)]
    pub queue: QueueConfig,
    /// MLLP sender.
    pub mllp: Option<mllp::ClientConfig>,
    /// HTTP sender.
    pub http: Option<connectors::http::HttpSenderConfig>,
    /// File writer.
    pub file: Option<connectors::file::FileWriterConfig>,
    /// PostgreSQL writer.
    pub database: Option<connectors::database::PgWriterConfig>,
    /// FHIR server: POSTs the (transaction Bundle) message to a FHIR base URL.
    pub fhir: Option<connectors::fhir::FhirSenderConfig>,
    /// Channel writer: the message becomes a new message of that channel.
    pub channel: Option<ChannelWriterConfig>,
}

/// A channel writer's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelWriterConfig {
    /// The channel to write to.
    pub name: String,
}

/// Delivery settings of a destination's queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Attempts before the message goes to the dead letters (status ERROR). Default: 10.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Wait before the first retry; doubles each time. Default: 1 s.
    #[serde(default = "default_backoff", with = "mllp::duration")]
    pub initial_backoff: Duration,
    /// Longest wait between retries. Default: 5 min.
    #[serde(default = "default_max_backoff", with = "mllp::duration")]
    pub max_backoff: Duration,
    /// Workers sending at once. 1 (the default) keeps the order of messages; more send in
    /// parallel and do not keep it.
    #[serde(default = "one")]
    pub workers: u32,
    /// Messages claimed per round trip to the store. Default: 64.
    #[serde(default = "default_batch")]
    pub batch: u32,
}

fn default_attempts() -> u32 {
    10
}
fn default_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_max_backoff() -> Duration {
    Duration::from_mins(5)
}
fn one() -> u32 {
    1
}
fn default_batch() -> u32 {
    64
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_attempts: default_attempts(),
            initial_backoff: default_backoff(),
            max_backoff: default_max_backoff(),
            workers: one(),
            batch: default_batch(),
        }
    }
}

impl QueueConfig {
    /// The wait before retry number `attempt` (1 = the first retry).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// JavaScript limits of a channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptSettings {
    /// Memory one script runtime may use. Default: 64 MiB.
    #[serde(default = "default_memory")]
    pub memory_mb: usize,
    /// Longest run of one script on one message. Default: 1 s.
    #[serde(default = "default_time", with = "mllp::duration")]
    pub time_limit: Duration,
    /// Script threads. Default: 1.
    #[serde(default = "one_usize")]
    pub threads: usize,
}

fn default_memory() -> usize {
    64
}
fn default_time() -> Duration {
    Duration::from_secs(1)
}
fn one_usize() -> usize {
    1
}

impl Default for ScriptSettings {
    fn default() -> Self {
        Self {
            memory_mb: default_memory(),
            time_limit: default_time(),
            threads: 1,
        }
    }
}

/// How long messages are kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Prune messages older than this (e.g. `"30d"` is not a unit: write `"720h"`).
    #[serde(default, with = "opt_duration")]
    pub max_age: Option<Duration>,
    /// Keep at most this many messages.
    pub max_messages: Option<u64>,
    /// Before deleting, append the messages as gzip NDJSON to a file in this folder.
    pub archive_dir: Option<PathBuf>,
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| mllp::duration::parse(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// One filter rule or transformer step.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StepConfig {
    /// Accept messages whose MSH-9 matches one of `accept` (`"ADT^A01"`, `"ADT^*"`, `"ORU"`).
    MessageType {
        /// The accepted types.
        accept: Vec<String>,
    },
    /// Accept by a field's value. Exactly one test is given.
    Field {
        /// Path of the field (`PV1-2`).
        path: String,
        /// Equals this.
        equals: Option<String>,
        /// Equals one of these.
        #[serde(rename = "in")]
        one_of: Option<Vec<String>>,
        /// Starts with this.
        starts_with: Option<String>,
        /// Is present and not empty (`true`) or absent/empty (`false`).
        exists: Option<bool>,
        /// Inverts the test.
        #[serde(default)]
        not: bool,
    },
    /// Set a field to a value (a template: `"${PID-3-1}"` inserts a field).
    Set {
        /// Path to set.
        path: String,
        /// New value (template).
        value: String,
    },
    /// Copy a field.
    Copy {
        /// Path read.
        from: String,
        /// Path written.
        to: String,
    },
    /// Empty a field.
    Clear {
        /// Path to clear.
        path: String,
    },
    /// Map a field's value through a code table (CSV: `from,to` per line).
    Map {
        /// Path mapped in place.
        path: String,
        /// The CSV file, relative to the channel file.
        table: PathBuf,
        /// Value when the table has no entry; without it the field is left as it is.
        default: Option<String>,
        /// Put the message in ERROR when the value is not in the table (and no default).
        #[serde(default)]
        required: bool,
    },
    /// Remove every segment with this id.
    RemoveSegments {
        /// Segment id (`ZPI`).
        segment: String,
    },
    /// Add a segment (a template of its text) after the last segment with id `after`, or at
    /// the end.
    AddSegment {
        /// Segment text, e.g. `"ZPI|1|${PID-3-1}"`.
        text: String,
        /// Insert after the last segment with this id.
        after: Option<String>,
    },
    /// Replace the message with a new HL7 message built from a template (segments separated
    /// by newlines).
    Template {
        /// The message template.
        template: String,
    },
    /// Turn an HL7 v2 message into its JSON view (data type JSON from here on).
    ToJson {},
    /// Convert an HL7 v2 message to a FHIR R4 transaction Bundle (the HL7 v2-to-FHIR IG; data
    /// type JSON from here on), ready for a `[destination.fhir]`.
    ToFhir(crate::to_fhir::ToFhirConfig),
    /// A JavaScript step (filter: return true to accept).
    Javascript {
        /// Script text.
        script: Option<String>,
        /// Script file, relative to the channel file.
        file: Option<PathBuf>,
    },
}

impl StepConfig {
    /// The step's `type` as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MessageType { .. } => "message-type",
            Self::Field { .. } => "field",
            Self::Set { .. } => "set",
            Self::Copy { .. } => "copy",
            Self::Clear { .. } => "clear",
            Self::Map { .. } => "map",
            Self::RemoveSegments { .. } => "remove-segments",
            Self::AddSegment { .. } => "add-segment",
            Self::Template { .. } => "template",
            Self::ToJson {} => "to-json",
            Self::ToFhir(_) => "to-fhir",
            Self::Javascript { .. } => "javascript",
        }
    }
}

impl ChannelConfig {
    /// Reads and checks a channel file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::parse(&text, path)
    }

    /// Parses channel text read from `path` (used for names and relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let located = |message: String, span: Option<std::ops::Range<usize>>| {
            let (line, column) = span.map_or((0, 0), |s| line_col(text, s.start));
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let mut config: Self =
            toml::from_str(text).map_err(|e| located(e.message().trim().to_owned(), e.span()))?;
        config.file = path.to_path_buf();
        config.base_dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        if config.name.is_empty() {
            config.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        config
            .check()
            .map_err(|(message, needle)| located(message, find(text, &needle)))?;
        Ok(config)
    }

    /// Checks what serde cannot; on error, the message and a piece of text to locate.
    fn check(&self) -> Result<(), (String, String)> {
        if !valid_name(&self.name) {
            return Err((
                format!(
                    "channel name {:?} must be 1 to 64 letters, digits, '-', '_' or '.'",
                    self.name
                ),
                "name".into(),
            ));
        }
        let s = &self.source;
        let sources = usize::from(s.mllp.is_some())
            + usize::from(s.http.is_some())
            + usize::from(s.file.is_some());
        if sources > 1 {
            return Err((
                "a channel has one source: choose one of [source.mllp], [source.http], [source.file]"
                    .into(),
                "[source.".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for d in &self.destinations {
            if !valid_name(&d.name) {
                return Err((
                    format!(
                        "destination name {:?} must be 1 to 64 letters, digits, '-', '_' or '.'",
                        d.name
                    ),
                    format!("\"{}\"", d.name),
                ));
            }
            if !names.insert(d.name.as_str()) {
                return Err((
                    format!("two destinations are named {:?}", d.name),
                    format!("\"{}\"", d.name),
                ));
            }
            let kinds = usize::from(d.mllp.is_some())
                + usize::from(d.http.is_some())
                + usize::from(d.file.is_some())
                + usize::from(d.database.is_some())
                + usize::from(d.fhir.is_some())
                + usize::from(d.channel.is_some());
            if kinds != 1 {
                return Err((
                    format!(
                        "destination {:?} needs exactly one connector table: [destination.mllp], \
                         .http, .file, .database, .fhir or .channel (found {kinds})",
                        d.name
                    ),
                    format!("\"{}\"", d.name),
                ));
            }
            if d.queue.max_attempts == 0 || d.queue.workers == 0 || d.queue.batch == 0 {
                return Err((
                    format!(
                        "destination {:?}: queue max_attempts, workers and batch must be at least 1",
                        d.name
                    ),
                    "[destination.queue]".into(),
                ));
            }
            if let Some(c) = &d.channel
                && c.name == self.name
            {
                return Err((
                    format!("destination {:?} writes to its own channel", d.name),
                    format!("\"{}\"", d.name),
                ));
            }
        }
        if self.script.threads == 0 || self.script.memory_mb == 0 {
            return Err((
                "[script] threads and memory_mb must be at least 1".into(),
                "[script]".into(),
            ));
        }
        Ok(())
    }

    /// The numbered destinations: `(1, first)`, `(2, second)`, ...
    pub fn numbered(&self) -> impl Iterator<Item = (store::Destination, &DestinationConfig)> {
        self.destinations
            .iter()
            .enumerate()
            .map(|(i, d)| (u16::try_from(i + 1).unwrap_or(u16::MAX), d))
    }
}

/// A channel or destination name that is safe in queue names, URLs and file names.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}

/// 1-based line and column of byte `offset`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

fn find(text: &str, needle: &str) -> Option<std::ops::Range<usize>> {
    text.find(needle).map(|i| i..i + needle.len())
}

/// Reads every `*.toml` channel file of a folder, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<ChannelConfig>, ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ConfigError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut channels = Vec::new();
    let mut seen = BTreeMap::new();
    for f in files {
        let c = ChannelConfig::load(&f)?;
        if let Some(other) = seen.insert(c.name.clone(), f.clone()) {
            return Err(ConfigError::Invalid {
                path: f,
                line: 1,
                column: 1,
                message: format!(
                    "channel {:?} is also defined in {}",
                    c.name,
                    other.display()
                ),
            });
        }
        channels.push(c);
    }
    Ok(channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ChannelConfig, String> {
        ChannelConfig::parse(text, Path::new("channels/adt.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_channel_parses() {
        let c = parse(
            r#"
            data_type = "HL7V2"
            metadata = { MRN = "PID-3-1" }
            [source]
            ack = "after-destinations"
            [source.mllp]
            bind = "127.0.0.1:0"
            [[filter]]
            type = "message-type"
            accept = ["ADT^A01"]
            [[transformer]]
            type = "set"
            path = "MSH-5"
            value = "X"
            [[destination]]
            name = "lab"
            [destination.mllp]
            host = "127.0.0.1"
            port = 1
            [destination.queue]
            max_attempts = 3
            initial_backoff = "10ms"
            "#,
        )
        .unwrap();
        assert_eq!(c.name, "adt");
        assert_eq!(c.source.ack, AckTiming::AfterDestinations);
        assert_eq!(c.destinations[0].queue.max_attempts, 3);
        assert_eq!(
            c.destinations[0].queue.backoff(3),
            Duration::from_millis(40)
        );
        assert_eq!(c.metadata["MRN"], "PID-3-1");
    }

    #[test]
    fn errors_are_located() {
        let e = parse("[[filter]]\ntype = \"message-type\"\naccpt = [\"ADT\"]\n").unwrap_err();
        assert!(e.starts_with("channels/adt.toml:"), "{e}");
        assert!(e.contains("accpt"), "{e}");
        let e = parse("name = \"x\"\n[[destination]]\nname = \"a\"\n").unwrap_err();
        assert!(e.contains("channels/adt.toml:3:8"), "{e}");
        assert!(e.contains("exactly one connector"), "{e}");
        let e = parse("[[filter]]\ntype = \"nonsense\"\n").unwrap_err();
        assert!(e.contains(":1:1") || e.contains(":2:"), "{e}");
        let e = parse("name = \"a b\"\n").unwrap_err();
        assert!(e.contains(":1:1"), "{e}");
    }

    #[test]
    fn backoff_is_capped() {
        let q = QueueConfig::default();
        assert_eq!(q.backoff(1), Duration::from_secs(1));
        assert_eq!(q.backoff(2), Duration::from_secs(2));
        assert_eq!(q.backoff(40), Duration::from_mins(5));
    }
}
