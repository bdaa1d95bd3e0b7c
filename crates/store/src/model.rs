//! The values the store keeps and hands back: messages, content stages, queue items, filters.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::time::Timestamp;

/// A text value that does not parse as the type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {what}: {input:?}")]
pub struct ParseValueError {
    /// What was being parsed (`"message id"`, `"status"`, ...).
    pub what: &'static str,
    /// The input, cut to 64 characters.
    pub input: String,
}

impl ParseValueError {
    pub(crate) fn new(what: &'static str, input: &str) -> Self {
        Self {
            what,
            input: input.chars().take(64).collect(),
        }
    }
}

/// A message's id: a ULID made when the message is appended (by the store, or by the caller
/// with [`MessageId::generate`] before it appends, see [`NewMessage::id`]).
///
/// Ids made by one process increase strictly in the order they were made, and their 26-character
/// text form (how both databases store them) sorts the same way, so sorting by id sorts by
/// arrival time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(ulid::Ulid);

static ID_GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());

impl MessageId {
    /// A new id, greater than every id made before it in this process (the store makes its
    /// ids with it too). Fails with [`StoreError::IdsExhausted`] only if 2^80 ids were made
    /// within one millisecond.
    pub fn generate() -> Result<Self> {
        let mut generator = ID_GENERATOR
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Overflow needs 2^80 ids within one millisecond: wait for the next one, a few times.
        for _ in 0..3 {
            match generator.generate() {
                Ok(id) => return Ok(Self(id)),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        Err(StoreError::IdsExhausted)
    }

    /// The time the id was made, to the millisecond.
    pub fn timestamp(self) -> Timestamp {
        Timestamp::from_micros(
            i64::try_from(self.0.timestamp_ms()).unwrap_or(i64::MAX / 1000) * 1000,
        )
    }

    /// The underlying ULID.
    pub fn ulid(self) -> ulid::Ulid {
        self.0
    }
}

impl From<ulid::Ulid> for MessageId {
    fn from(id: ulid::Ulid) -> Self {
        Self(id)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; ulid::ULID_LEN];
        f.write_str(self.0.array_to_str(&mut buf))
    }
}

impl FromStr for MessageId {
    type Err = ParseValueError;

    /// Parses the 26-character Crockford base 32 form (either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(s)
            .map(Self)
            .map_err(|_| ParseValueError::new("message id", s))
    }
}

impl Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Declares a text-coded enum: the database form is the upper-case name.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The upper-case name stored in the database.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseValueError;

            /// Parses the upper-case name.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(ParseValueError::new($what, s)),
                }
            }
        }
    };
}

text_enum! {
    /// Where a message is in its processing.
    Status, "status" {
        /// Stored, not processed yet.
        Received = "RECEIVED",
        /// A filter dropped it.
        Filtered = "FILTERED",
        /// A transformer changed it.
        Transformed = "TRANSFORMED",
        /// Waiting in a destination queue.
        Queued = "QUEUED",
        /// Delivered.
        Sent = "SENT",
        /// Processing or delivery failed; see the message's `error`.
        Error = "ERROR",
    }
}

text_enum! {
    /// Which version of a message's content a content row holds.
    Stage, "stage" {
        /// The bytes as received (destination 0) or as handed to a destination.
        Raw = "RAW",
        /// After the transformer.
        Transformed = "TRANSFORMED",
        /// Encoded for the wire.
        Encoded = "ENCODED",
        /// What was actually sent.
        Sent = "SENT",
        /// The peer's response.
        Response = "RESPONSE",
    }
}

text_enum! {
    /// The state of a queue item.
    QueueState, "queue state" {
        /// Waiting to be claimed once `available_at` has passed.
        Ready = "READY",
        /// Claimed by `lease_owner` until `lease_until`; claimable again after that.
        Leased = "LEASED",
        /// Acked: the work is done.
        Done = "DONE",
        /// Failed `max_attempts` times; waits for a person (see `requeue_dead`).
        Dead = "DEAD",
    }
}

/// Destination number of content and queue items; 0 is the source.
pub type Destination = u16;

/// A queue item's id, assigned by the database (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QueueItemId(pub i64);

impl fmt::Display for QueueItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A queue to put a new message on, in the same transaction as the message itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enqueue {
    /// Queue name (e.g. `"adt-out/1"`).
    pub queue: String,
    /// The destination the item is for.
    pub destination: Destination,
    /// A lease taken at once: (owner, lease length). When set, the item is stored LEASED to
    /// the owner until the lease runs out (from the time of the write), as if the owner had
    /// claimed it, so the producer can hand it to its own worker without a claim. When the
    /// lease runs out anyone may claim it; the owner re-claims it with `claim_head` (or acks
    /// or nacks it) as any holder does. `None`: stored READY, due now.
    #[serde(default)]
    pub lease: Option<(String, std::time::Duration)>,
}

/// A message to append to the journal.
#[derive(Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The channel that received it.
    pub channel: String,
    /// When it was received.
    pub received_at: Timestamp,
    /// The peer's address, e.g. `10.0.0.7:51234`.
    pub peer_addr: Option<String>,
    /// The subject of the peer's TLS client certificate.
    pub tls_subject: Option<String>,
    /// MSH-9-1, e.g. `ADT`.
    pub message_type: Option<String>,
    /// MSH-9-2, e.g. `A01`.
    pub trigger_event: Option<String>,
    /// MSH-10.
    pub control_id: Option<String>,
    /// MSH-3.
    pub sending_application: Option<String>,
    /// MSH-4.
    pub sending_facility: Option<String>,
    /// Initial status, normally [`Status::Received`].
    pub status: Status,
    /// Why the message is in error already when it arrives (e.g. it does not parse).
    pub error: Option<String>,
    /// Searchable (key, value) pairs the channel chose, e.g. `("MRN", "12345")`.
    pub metadata: Vec<(String, String)>,
    /// The exact bytes received; stored as the RAW stage of destination 0.
    pub raw: Vec<u8>,
    /// Queues to put the message on in the same transaction.
    pub enqueue: Vec<Enqueue>,
    /// The message this one reprocesses (a copy of its bytes sent through the channel again).
    pub original_id: Option<MessageId>,
    /// For a reprocessed message, the destinations it must go to (all when `None`).
    pub route_only: Option<Vec<Destination>>,
    /// The id to store the message with, made by [`MessageId::generate`] (so that ids keep
    /// sorting by time) before the append, e.g. to show it to scripts before the message is
    /// stored. An id that is already stored fails the append with
    /// [`StoreError::DuplicateMessageId`], storing nothing. `None`: the store makes one.
    pub id: Option<MessageId>,
    /// Content stages stored with the message, e.g. TRANSFORMED of destination 0 and ENCODED
    /// of destinations 1..; of a (destination, stage) given twice the last is stored. RAW of
    /// destination 0 cannot be given here: it is [`NewMessage::raw`].
    pub content: Vec<(Destination, Stage, Vec<u8>)>,
    /// Per-destination status rows stored with the message; of a destination given twice the
    /// last is stored.
    pub destinations: Vec<DestinationUpdate>,
}

impl NewMessage {
    /// A message received now on `channel`, with status RECEIVED and nothing else known.
    pub fn new(channel: impl Into<String>, raw: impl Into<Vec<u8>>) -> Self {
        Self {
            channel: channel.into(),
            received_at: Timestamp::now(),
            peer_addr: None,
            tls_subject: None,
            message_type: None,
            trigger_event: None,
            control_id: None,
            sending_application: None,
            sending_facility: None,
            status: Status::Received,
            error: None,
            metadata: Vec::new(),
            raw: raw.into(),
            enqueue: Vec::new(),
            original_id: None,
            route_only: None,
            id: None,
            content: Vec::new(),
            destinations: Vec::new(),
        }
    }

    /// Adds a searchable metadata pair.
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// Puts the message on `queue` for `destination` when it is appended.
    #[must_use]
    pub fn enqueue_to(mut self, queue: impl Into<String>, destination: Destination) -> Self {
        self.enqueue.push(Enqueue {
            queue: queue.into(),
            destination,
            lease: None,
        });
        self
    }

    /// Puts the message on `queue` for `destination` when it is appended, already leased to
    /// `owner` for `lease` (see [`Enqueue::lease`]).
    #[must_use]
    pub fn enqueue_leased(
        mut self,
        queue: impl Into<String>,
        destination: Destination,
        owner: impl Into<String>,
        lease: std::time::Duration,
    ) -> Self {
        self.enqueue.push(Enqueue {
            queue: queue.into(),
            destination,
            lease: Some((owner.into(), lease)),
        });
        self
    }

    /// Checks what the databases would otherwise refuse less clearly.
    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |reason: &str| {
            Err(StoreError::InvalidArgument {
                op: "append",
                reason: reason.to_owned(),
            })
        };
        if self.channel.is_empty() {
            return invalid("empty channel name");
        }
        if self.enqueue.iter().any(|e| e.queue.is_empty()) {
            return invalid("empty queue name");
        }
        if self
            .content
            .iter()
            .any(|(destination, stage, _)| *destination == 0 && *stage == Stage::Raw)
        {
            return invalid("RAW of destination 0 cannot be given as content: it is `raw`");
        }
        if self.metadata.len() > i32::MAX as usize {
            return invalid("too many metadata pairs");
        }
        if self
            .route_only
            .as_ref()
            .is_some_and(|r| r.len() > MAX_ROUTE_ONLY)
        {
            return invalid("too many route_only destinations");
        }
        Ok(())
    }

    /// The destination rows with only the last one of each destination kept.
    pub(crate) fn last_destination_updates(&self) -> Vec<(&DestinationUpdate, Shared)> {
        last_destination_updates(&self.destinations)
    }

    /// The content stages with only the last one of each (destination, stage) kept.
    pub(crate) fn last_content(&self) -> Vec<(Destination, Stage, &[u8])> {
        last_content(&self.content)
    }
}

/// `updates` with only the last one of each destination kept, in destination order, each with
/// the shared flags of all of that destination's updates.
fn last_destination_updates(updates: &[DestinationUpdate]) -> Vec<(&DestinationUpdate, Shared)> {
    let mut last: std::collections::BTreeMap<Destination, (&DestinationUpdate, Shared)> =
        std::collections::BTreeMap::new();
    for d in updates {
        let shared = last
            .get(&d.destination)
            .map_or(d.shared, |(_, s)| s.union(d.shared));
        last.insert(d.destination, (d, shared));
    }
    last.into_values().collect()
}

/// `content` with only the last one of each (destination, stage) kept, in that order.
fn last_content(content: &[(Destination, Stage, Vec<u8>)]) -> Vec<(Destination, Stage, &[u8])> {
    let mut last: std::collections::BTreeMap<(Destination, Stage), &[u8]> =
        std::collections::BTreeMap::new();
    for (destination, stage, bytes) in content {
        last.insert((*destination, *stage), bytes);
    }
    last.into_iter().map(|((d, s), b)| (d, s, b)).collect()
}

/// Content stages as (destination, stage, size), for Debug output without the bytes.
fn content_sizes(content: &[(Destination, Stage, Vec<u8>)]) -> Vec<(Destination, Stage, usize)> {
    content.iter().map(|(d, s, b)| (*d, *s, b.len())).collect()
}

impl fmt::Debug for NewMessage {
    /// Shows the size of the content, never the content (it is PHI).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewMessage")
            .field("id", &self.id)
            .field("channel", &self.channel)
            .field("received_at", &self.received_at)
            .field("message_type", &self.message_type)
            .field("trigger_event", &self.trigger_event)
            .field("control_id", &self.control_id)
            .field("status", &self.status)
            .field("error", &self.error)
            .field("metadata_pairs", &self.metadata.len())
            .field("raw_len", &self.raw.len())
            .field("content_lens", &content_sizes(&self.content))
            .field("destinations", &self.destinations)
            .field("enqueue", &self.enqueue)
            .field("original_id", &self.original_id)
            .field("route_only", &self.route_only)
            .finish_non_exhaustive()
    }
}

/// A journal row: everything about a message except its content and metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSummary {
    /// The message id.
    pub id: MessageId,
    /// The channel that received it.
    pub channel: String,
    /// When it was received.
    pub received_at: Timestamp,
    /// The peer's address.
    pub peer_addr: Option<String>,
    /// The subject of the peer's TLS client certificate.
    pub tls_subject: Option<String>,
    /// MSH-9-1.
    pub message_type: Option<String>,
    /// MSH-9-2.
    pub trigger_event: Option<String>,
    /// MSH-10.
    pub control_id: Option<String>,
    /// MSH-3.
    pub sending_application: Option<String>,
    /// MSH-4.
    pub sending_facility: Option<String>,
    /// Current status.
    pub status: Status,
    /// Why the status is ERROR, if it is.
    pub error: Option<String>,
    /// The message this one reprocesses.
    #[serde(default)]
    pub original_id: Option<MessageId>,
    /// For a reprocessed message, the destinations it must go to (all when `None`).
    #[serde(default)]
    pub route_only: Option<Vec<Destination>>,
}

/// Most destinations a `route_only` list may name (the text column stays small).
pub(crate) const MAX_ROUTE_ONLY: usize = 1024;

/// The database form of a `route_only` list: destination numbers joined by commas (`"1,3"`).
pub(crate) fn route_only_to_text(route: &[Destination]) -> String {
    let numbers: Vec<String> = route.iter().map(ToString::to_string).collect();
    numbers.join(",")
}

/// Reads the database form of a `route_only` list; `None` if it is not one.
pub(crate) fn route_only_from_text(text: &str) -> Option<Vec<Destination>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|n| n.parse().ok()).collect()
}

/// Where one destination of a message stands: the status of its delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationStatus {
    /// The destination number (1..).
    pub destination: Destination,
    /// The destination's name in the channel configuration.
    pub name: String,
    /// The destination's status.
    pub status: Status,
    /// Why the status is ERROR (our own text, e.g. "connection refused"), if it is.
    pub error: Option<String>,
    /// When the row was last written.
    pub updated_at: Timestamp,
}

/// One stored version of a message's content.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// 0 for the source, 1.. for destinations.
    pub destination: Destination,
    /// Which version this is.
    pub stage: Stage,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// When this version was stored.
    pub created_at: Timestamp,
}

impl fmt::Debug for Content {
    /// Shows the size of the content, never the content (it is PHI).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Content")
            .field("destination", &self.destination)
            .field("stage", &self.stage)
            .field("len", &self.bytes.len())
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A message with its metadata and every content stage.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// The journal row.
    pub summary: MessageSummary,
    /// The metadata pairs, in the order they were given.
    pub metadata: Vec<(String, String)>,
    /// Content stages, by destination and then in stage order.
    pub content: Vec<Content>,
    /// Per-destination status rows, by destination.
    #[serde(default)]
    pub destinations: Vec<DestinationStatus>,
}

impl fmt::Debug for StoredMessage {
    /// Shows metadata keys but not their values (an MRN is PHI), and content sizes only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.metadata.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("StoredMessage")
            .field("summary", &self.summary)
            .field("metadata_keys", &keys)
            .field("content", &self.content)
            .field("destinations", &self.destinations)
            .finish()
    }
}

impl StoredMessage {
    /// The bytes as received (RAW stage of destination 0).
    pub fn raw(&self) -> Option<&[u8]> {
        self.stage(0, Stage::Raw)
    }

    /// The content of one stage of one destination.
    pub fn stage(&self, destination: Destination, stage: Stage) -> Option<&[u8]> {
        self.content
            .iter()
            .find(|c| c.destination == destination && c.stage == stage)
            .map(|c| c.bytes.as_slice())
    }

    /// The status row of one destination.
    pub fn destination(&self, destination: Destination) -> Option<&DestinationStatus> {
        self.destinations
            .iter()
            .find(|d| d.destination == destination)
    }
}

/// A new status for one destination of a message, written by [`Transition`] or stored with a
/// [`NewMessage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationUpdate {
    /// The destination number (1..).
    pub destination: Destination,
    /// The destination's name in the channel configuration.
    pub name: String,
    /// The destination's new status.
    pub status: Status,
    /// Why the status is ERROR, if it is (cleared when `None`).
    pub error: Option<String>,
    /// Content stages of this destination that are byte-for-byte another stage of the message
    /// and so are not stored again (added to what the destination row already records).
    #[serde(default)]
    pub shared: Shared,
}

/// Content stages of a destination that are byte-for-byte another stored stage of the same
/// message, recorded on the destination's row instead of as a second copy (a set of flags).
///
/// Most channels deliver what their transformer produced, and every sender sends what was
/// encoded: storing those bytes two or three times was a fifth of the store writer's work per
/// channel message. Readers never see the difference: [`crate::Journal::get`] and
/// [`crate::Journal::contents`] return a shared stage as if it were stored. A stage stored
/// explicitly always wins over a flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Shared(u8);

impl Shared {
    /// Nothing shared.
    pub const NONE: Self = Self(0);
    /// ENCODED is the source's TRANSFORMED content (destination 0).
    pub const ENCODED_IS_TRANSFORMED: Self = Self(1);
    /// ENCODED is the RAW content (destination 0).
    pub const ENCODED_IS_RAW: Self = Self(2);
    /// SENT is this destination's ENCODED content.
    pub const SENT_IS_ENCODED: Self = Self(4);
    const ALL: u8 = 7;

    /// Both sets of flags.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every flag of `other` is set.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flags as stored.
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Flags as stored; unknown bits (a newer version's) are dropped.
    #[must_use]
    pub fn from_bits(bits: i64) -> Self {
        Self(u8::try_from(bits & i64::from(Self::ALL)).unwrap_or_default())
    }

    /// Where the bytes of `stage` of destination `destination` are stored when this set says
    /// they are shared: the (destination, stage) to read instead (which may itself be shared).
    #[must_use]
    pub fn source(self, destination: Destination, stage: Stage) -> Option<(Destination, Stage)> {
        match stage {
            Stage::Encoded if self.contains(Self::ENCODED_IS_TRANSFORMED) => {
                Some((0, Stage::Transformed))
            }
            Stage::Encoded if self.contains(Self::ENCODED_IS_RAW) => Some((0, Stage::Raw)),
            Stage::Sent if self.contains(Self::SENT_IS_ENCODED) => {
                Some((destination, Stage::Encoded))
            }
            _ => None,
        }
    }

    /// The stages this set marks as shared.
    pub fn stages(self) -> impl Iterator<Item = Stage> {
        [
            (
                Self::ENCODED_IS_TRANSFORMED.union(Self::ENCODED_IS_RAW),
                Stage::Encoded,
            ),
            (Self::SENT_IS_ENCODED, Stage::Sent),
        ]
        .into_iter()
        .filter(move |(flags, _)| self.0 & flags.0 != 0)
        .map(|(_, stage)| stage)
    }
}

/// Adds the stages the destination rows mark as shared to `content` (a message's stored
/// content), each with the bytes of the stage it shares and, for SENT, the destination row's
/// time; a stage stored explicitly is left as it is. Sorted by (destination, stage) after.
pub(crate) fn add_shared(
    content: &mut Vec<Content>,
    destinations: &[(Destination, Shared, Timestamp)],
) {
    for &(destination, shared, updated_at) in destinations {
        for stage in shared.stages() {
            if content
                .iter()
                .any(|c| c.destination == destination && c.stage == stage)
            {
                continue;
            }
            if let Some(found) = resolve(content, destinations, destination, stage) {
                let created_at = if stage == Stage::Sent {
                    updated_at
                } else {
                    found.created_at
                };
                let bytes = found.bytes.clone();
                content.push(Content {
                    destination,
                    stage,
                    bytes,
                    created_at,
                });
            }
        }
    }
    content.sort_by_key(|c| (c.destination, c.stage));
}

/// Follows the shared flags from (destination, stage) to the first stage `stored` finds:
/// the stage itself if stored, else the stage its destination's flags (`flags_of`) say it
/// shares, and so on.
fn follow<T>(
    flags_of: impl Fn(Destination) -> Shared,
    destination: Destination,
    stage: Stage,
    mut stored: impl FnMut(Destination, Stage) -> Option<T>,
) -> Option<T> {
    let (mut d, mut s) = (destination, stage);
    // a chain is at most SENT -> ENCODED -> TRANSFORMED/RAW
    for _ in 0..3 {
        if let Some(found) = stored(d, s) {
            return Some(found);
        }
        (d, s) = flags_of(d).source(d, s)?;
    }
    None
}

/// Of the `candidates` rows (destination, stage, bytes) of one message, takes the one that
/// holds the bytes of (destination, stage), following `shared` (that destination's flags).
pub(crate) fn take_shared(
    candidates: &mut Vec<(Destination, Stage, Vec<u8>)>,
    shared: Shared,
    destination: Destination,
    stage: Stage,
) -> Option<(Destination, Stage, Vec<u8>)> {
    let i = follow(
        |_| shared,
        destination,
        stage,
        |d, s| candidates.iter().position(|c| c.0 == d && c.1 == s),
    )?;
    Some(candidates.swap_remove(i))
}

/// The stored content that holds the bytes of (destination, stage), following shared flags.
fn resolve<'c>(
    content: &'c [Content],
    destinations: &[(Destination, Shared, Timestamp)],
    destination: Destination,
    stage: Stage,
) -> Option<&'c Content> {
    let flags_of = |d: Destination| {
        destinations
            .iter()
            .find(|(n, _, _)| *n == d)
            .map_or(Shared::NONE, |(_, f, _)| *f)
    };
    follow(flags_of, destination, stage, |d, s| {
        content.iter().find(|c| c.destination == d && c.stage == s)
    })
}

/// One step of a message's processing, written atomically by [`crate::Journal::apply`]:
/// ack the queue item that carried the work, set statuses, store content, enqueue the next
/// work and add metadata — all of it or nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct Transition {
    /// The message the step is about.
    pub message_id: MessageId,
    /// Ack (state DONE) this queue item held by this owner in the same transaction; if the
    /// lease is not held by `owner` the WHOLE apply fails with
    /// [`StoreError::LeaseNotHeld`] and nothing is written.
    pub complete: Option<(QueueItemId, String)>,
    /// New message status and error text (None = leave status unchanged).
    pub status: Option<(Status, Option<String>)>,
    /// Upserts of per-destination status rows.
    pub destinations: Vec<DestinationUpdate>,
    /// Content stages to store (upsert; same rule as put_content: RAW of destination 0 can
    /// never be replaced -> InvalidArgument).
    pub content: Vec<(Destination, Stage, Vec<u8>)>,
    /// Queue items to create.
    pub enqueue: Vec<Enqueue>,
    /// Metadata pairs to add (searchable like those given at append).
    pub metadata: Vec<(String, String)>,
    /// After the destination updates, set the message's status from its destinations: ERROR
    /// if one is in ERROR (its error becomes the message's), else QUEUED while one is still
    /// queued, else SENT if one sent it, else FILTERED. Done inside the transaction, so two
    /// destinations finishing at once cannot leave a stale status. No effect on a message
    /// without destination rows.
    pub refresh_status: bool,
}

impl Transition {
    /// A transition of `message_id` that changes nothing yet.
    pub fn new(message_id: MessageId) -> Self {
        Self {
            message_id,
            complete: None,
            status: None,
            destinations: Vec::new(),
            content: Vec::new(),
            enqueue: Vec::new(),
            metadata: Vec::new(),
            refresh_status: false,
        }
    }

    /// Checks what the databases would otherwise refuse less clearly.
    pub(crate) fn validate(&self) -> Result<()> {
        const OP: &str = "apply";
        let invalid = |reason: String| Err(StoreError::InvalidArgument { op: OP, reason });
        let id = self.message_id;
        if self
            .content
            .iter()
            .any(|(destination, stage, _)| *destination == 0 && *stage == Stage::Raw)
        {
            return invalid(format!(
                "the received bytes of message {id} cannot be replaced"
            ));
        }
        if self.enqueue.iter().any(|e| e.queue.is_empty()) {
            return invalid(format!("empty queue name in a transition of message {id}"));
        }
        if self.metadata.len() > i32::MAX as usize / 2 {
            return invalid(format!("too many metadata pairs for message {id}"));
        }
        Ok(())
    }

    /// The destination updates with only the last one of each destination kept, in
    /// destination order (a row is written once per transition).
    pub(crate) fn last_destination_updates(&self) -> Vec<(&DestinationUpdate, Shared)> {
        last_destination_updates(&self.destinations)
    }

    /// The content stages with only the last one of each (destination, stage) kept.
    pub(crate) fn last_content(&self) -> Vec<(Destination, Stage, &[u8])> {
        last_content(&self.content)
    }
}

impl fmt::Debug for Transition {
    /// Shows content sizes and metadata keys, never content or metadata values (PHI).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.metadata.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Transition")
            .field("message_id", &self.message_id)
            .field("complete", &self.complete)
            .field("status", &self.status)
            .field("destinations", &self.destinations)
            .field("content_lens", &content_sizes(&self.content))
            .field("enqueue", &self.enqueue)
            .field("metadata_keys", &keys)
            .field("refresh_status", &self.refresh_status)
            .finish()
    }
}

/// How many items of a queue are in each unfinished state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// READY items, due or waiting for their retry time.
    pub ready: u64,
    /// LEASED items (also those whose lease ran out but nobody claimed yet).
    pub leased: u64,
    /// DEAD items, waiting for a person.
    pub dead: u64,
}

/// A unit of work in a durable queue: deliver `message_id` to `destination`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    /// The item's id.
    pub id: QueueItemId,
    /// The queue it is in.
    pub queue: String,
    /// The message to deliver.
    pub message_id: MessageId,
    /// The destination to deliver it to.
    pub destination: Destination,
    /// Failed attempts so far (nacks).
    pub attempts: u32,
    /// When the item can next be claimed: for a READY item when it becomes due, for a LEASED
    /// item when its lease runs out.
    pub available_at: Timestamp,
    /// Who holds (or last held) the lease.
    pub lease_owner: Option<String>,
    /// When the current lease runs out.
    pub lease_until: Option<Timestamp>,
    /// The item's state.
    pub state: QueueState,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
}

/// Default number of messages [`crate::Journal::list`] returns.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
/// Most messages one [`crate::Journal::list`] call returns.
pub const MAX_LIST_LIMIT: u32 = 10_000;

/// Which messages to list or count. Every field that is set must match (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageFilter {
    /// Received at or after this time.
    pub received_from: Option<Timestamp>,
    /// Received strictly before this time.
    pub received_to: Option<Timestamp>,
    /// Received on this channel.
    pub channel: Option<String>,
    /// MSH-9-1 equals this.
    pub message_type: Option<String>,
    /// MSH-9-2 equals this.
    pub trigger_event: Option<String>,
    /// Has this status.
    pub status: Option<Status>,
    /// MSH-10 equals this.
    pub control_id: Option<String>,
    /// Reprocesses this message (finds the reprocessed copies of a message).
    pub original_id: Option<MessageId>,
    /// Has every one of these metadata pairs.
    pub metadata: Vec<(String, String)>,
    /// At most this many results ([`DEFAULT_LIST_LIMIT`] if unset, at most
    /// [`MAX_LIST_LIMIT`]); `count` ignores it.
    pub limit: Option<u32>,
    /// Only messages with a smaller id (older): pass the last id of the previous page to get
    /// the next. `count` ignores it.
    pub before_id: Option<MessageId>,
}

impl MessageFilter {
    /// The limit to apply to a listing.
    pub(crate) fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIST_LIMIT).min(MAX_LIST_LIMIT)
    }
}

/// Counters of the store's writes since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Transactions committed (each one durable write, i.e. one fsync for SQLite).
    pub commits: u64,
    /// Write requests those commits carried (appends, status and content updates, claims,
    /// acks, ...). `items / commits` is the average batch size.
    pub items: u64,
    /// Messages appended.
    pub messages: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_round_trip() {
        let mut last = MessageId::generate().unwrap();
        for _ in 0..10_000 {
            let id = MessageId::generate().unwrap();
            assert!(id > last);
            assert!(id.to_string() > last.to_string());
            assert_eq!(id.to_string().len(), 26);
            assert_eq!(id.to_string().parse::<MessageId>().unwrap(), id);
            assert_eq!(
                id.to_string().to_lowercase().parse::<MessageId>().unwrap(),
                id
            );
            last = id;
        }
        assert!("not-an-id".parse::<MessageId>().is_err());
        assert!("".parse::<MessageId>().is_err());
    }

    #[test]
    fn enums_round_trip() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), *s);
        }
        for s in Stage::ALL {
            assert_eq!(s.to_string().parse::<Stage>().unwrap(), *s);
        }
        for s in QueueState::ALL {
            assert_eq!(s.to_string().parse::<QueueState>().unwrap(), *s);
        }
        assert!("received".parse::<Status>().is_err());
        assert_eq!(
            serde_json::to_string(&Status::Transformed).unwrap(),
            "\"TRANSFORMED\""
        );
    }

    #[test]
    fn debug_hides_content() {
        let m = NewMessage::new("c", b"MSH|^~\\&|SECRET".to_vec());
        assert!(!format!("{m:?}").contains("SECRET"));
        let c = Content {
            destination: 0,
            stage: Stage::Raw,
            bytes: b"SECRET".to_vec(),
            created_at: Timestamp::now(),
        };
        assert!(!format!("{c:?}").contains("SECRET"));
        let m = NewMessage::new("c", b"x".to_vec()).with_metadata("MRN", "SECRET");
        assert!(!format!("{m:?}").contains("SECRET"));
        let mut m = NewMessage::new("c", b"x".to_vec()).enqueue_leased(
            "c/1",
            1,
            "node-a",
            std::time::Duration::from_secs(30),
        );
        m.id = Some(MessageId::generate().unwrap());
        m.content.push((1, Stage::Encoded, b"SECRET".to_vec()));
        m.destinations.push(DestinationUpdate {
            destination: 1,
            name: "lab-out".into(),
            status: Status::Queued,
            error: None,
            shared: Shared::NONE,
        });
        let shown = format!("{m:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(
            shown.contains("lab-out") && shown.contains("node-a"),
            "{shown}"
        );
        let stored = StoredMessage {
            summary: MessageSummary {
                id: MessageId::generate().unwrap(),
                channel: "c".into(),
                received_at: Timestamp::now(),
                peer_addr: None,
                tls_subject: None,
                message_type: None,
                trigger_event: None,
                control_id: None,
                sending_application: None,
                sending_facility: None,
                status: Status::Received,
                error: None,
                original_id: None,
                route_only: Some(vec![1, 3]),
            },
            metadata: vec![("MRN".into(), "SECRET".into())],
            content: vec![c],
            destinations: vec![DestinationStatus {
                destination: 1,
                name: "lab-out".into(),
                status: Status::Error,
                error: Some("connection refused".into()),
                updated_at: Timestamp::now(),
            }],
        };
        let shown = format!("{stored:?}");
        assert!(
            shown.contains("MRN") && !shown.contains("SECRET"),
            "{shown}"
        );
        assert!(shown.contains("connection refused"), "{shown}");
        let mut t = Transition::new(MessageId::generate().unwrap());
        t.content.push((1, Stage::Encoded, b"SECRET".to_vec()));
        t.metadata.push(("MRN".into(), "SECRET".into()));
        let shown = format!("{t:?}");
        assert!(
            shown.contains("MRN") && !shown.contains("SECRET"),
            "{shown}"
        );
    }

    #[test]
    fn new_message_defaults_and_checks() {
        let m = NewMessage::new("c", b"x".to_vec()).enqueue_to("c/1", 1);
        assert_eq!(m.id, None);
        assert!(m.content.is_empty() && m.destinations.is_empty());
        assert_eq!(m.enqueue[0].lease, None);
        assert!(m.validate().is_ok());
        let mut raw = m.clone();
        raw.content.push((0, Stage::Raw, b"y".to_vec()));
        assert!(matches!(
            raw.validate(),
            Err(StoreError::InvalidArgument { .. })
        ));
        let mut fine = m;
        fine.content.push((0, Stage::Transformed, b"a".to_vec()));
        fine.content.push((1, Stage::Raw, b"b".to_vec()));
        fine.content.push((0, Stage::Transformed, b"c".to_vec()));
        assert!(fine.validate().is_ok());
        assert_eq!(
            fine.last_content(),
            vec![
                (0, Stage::Transformed, &b"c"[..]),
                (1, Stage::Raw, &b"b"[..])
            ]
        );
        // queue items written before leases existed still read
        let old: Enqueue = serde_json::from_str(r#"{"queue":"q","destination":1}"#).unwrap();
        assert_eq!(old.lease, None);
    }

    #[test]
    fn route_only_text_round_trip() {
        for route in [vec![], vec![1], vec![1, 3], vec![7, 2, 65535]] {
            let text = route_only_to_text(&route);
            assert_eq!(route_only_from_text(&text), Some(route));
        }
        assert_eq!(route_only_to_text(&[1, 3]), "1,3");
        for bad in ["1,", ",1", "x", "1,,2", "65536", "-1"] {
            assert_eq!(route_only_from_text(bad), None, "{bad}");
        }
    }

    /// Stored flags read back as written; bits a newer version might write, and negative
    /// values, give no flag instead of a wrong one; each flag names its source stage.
    #[test]
    fn shared_flags_round_trip_and_ignore_unknown_bits() {
        let all = Shared::ENCODED_IS_TRANSFORMED.union(Shared::SENT_IS_ENCODED);
        assert_eq!(Shared::from_bits(i64::from(all.bits())), all);
        assert_eq!(Shared::from_bits(8 | 64), Shared::NONE);
        assert_eq!(Shared::from_bits(8 | 4), Shared::SENT_IS_ENCODED);
        assert_eq!(Shared::from_bits(-1).bits() & !7, 0);
        assert_eq!(
            all.stages().collect::<Vec<_>>(),
            vec![Stage::Encoded, Stage::Sent]
        );
        assert_eq!(Shared::NONE.stages().count(), 0);
        assert_eq!(all.source(2, Stage::Sent), Some((2, Stage::Encoded)));
        assert_eq!(all.source(2, Stage::Encoded), Some((0, Stage::Transformed)));
        assert_eq!(
            Shared::ENCODED_IS_RAW.source(2, Stage::Encoded),
            Some((0, Stage::Raw))
        );
        assert_eq!(all.source(2, Stage::Response), None);
        assert_eq!(Shared::NONE.source(2, Stage::Sent), None);
    }

    #[test]
    fn transition_keeps_the_last_of_duplicates() {
        let mut t = Transition::new(MessageId::generate().unwrap());
        for (d, status) in [(2, Status::Queued), (1, Status::Queued), (2, Status::Sent)] {
            t.destinations.push(DestinationUpdate {
                destination: d,
                name: format!("d{d}"),
                status,
                error: None,
                shared: Shared::NONE,
            });
        }
        t.destinations[2].shared = Shared::SENT_IS_ENCODED;
        t.destinations[0].shared = Shared::ENCODED_IS_TRANSFORMED;
        let last: Vec<(Destination, Status, Shared)> = t
            .last_destination_updates()
            .iter()
            .map(|(d, shared)| (d.destination, d.status, *shared))
            .collect();
        // the shared flags of every update of a destination add up
        assert_eq!(
            last,
            vec![
                (1, Status::Queued, Shared::NONE),
                (
                    2,
                    Status::Sent,
                    Shared::ENCODED_IS_TRANSFORMED.union(Shared::SENT_IS_ENCODED)
                )
            ]
        );
        t.content.push((1, Stage::Encoded, b"a".to_vec()));
        t.content.push((1, Stage::Encoded, b"b".to_vec()));
        assert_eq!(t.last_content(), vec![(1, Stage::Encoded, &b"b"[..])]);
        t.content.push((0, Stage::Raw, b"x".to_vec()));
        assert!(matches!(
            t.validate(),
            Err(StoreError::InvalidArgument { .. })
        ));
    }
}
