//! Encryption at rest: AES-256-GCM for payloads, keyed hashes (blind indexes) for search
//! values, key ids per row, and the re-encryption job of a key rotation.
//!
//! With `[store.encryption]` configured ([`crate::config::EncryptionConfig`]), the store
//! keeps these encrypted:
//!
//! - message payloads: the received bytes and every content stage (`message_content.bytes`);
//! - message metadata values (`message_metadata.sealed`; `value` then holds a blind index, so
//!   `MessageFilter::metadata` still finds them by exact value);
//! - FHIR resource JSON of every version (`fhir_version.content`).
//!
//! And these FHIR search values as blind indexes (HMAC-SHA256 with an index key derived from
//! a master key with HKDF; 128 bits kept, base64url): string parameters (`normalized`: one row
//! per prefix of up to [`PREFIX_CHARS`] characters, plus the whole value when longer, so the
//! default starts-with search still works; `exact`), token codes (`code`; `display` is not
//! stored) and reference identifiers (`identifier_value`). Dates, numbers, quantities, URIs,
//! reference targets, token systems and resource ids stay plaintext, so range searches and
//! `_include` work as before. What hashes cannot answer — `:contains` on strings, `:text` on
//! tokens, `_sort` on string and token parameters — fails with
//! [`StoreError::UnsupportedWithEncryption`] instead of giving wrong results.
//!
//! An encrypted value is an envelope: `00 'P' 'X' 'E'`, version `01`, the key id (1..=32
//! bytes of `A-Z a-z 0-9 . _ -`), `00`, a random 96-bit nonce, then ciphertext and tag. The
//! associated data is the envelope's header followed by the row's identity (table, message
//! id and destination and stage, or resource type, id and version), so a value moved to
//! another row or another column does not decrypt. A value under a key id that is not
//! configured fails with [`StoreError::UnknownKey`]; one that does not authenticate (wrong
//! key, altered or moved data) with [`StoreError::Encryption`]; never with garbage.
//!
//! The store records each key id it used with a check value (`plexus_keys`), so a wrong key
//! under a known id is refused when the store opens, and a store holding encrypted data
//! cannot be opened without its keys. [`rotate`] re-encrypts rows of retired keys with the
//! active key in batches; the blind indexes keep their key (see `docs/decisions/0008`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use ring::aead::{self, AES_256_GCM, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::EncryptionConfig;
use crate::error::{Result, StoreError};
use crate::model::{Destination, MessageFilter, Stage};
use crate::resource_sql::IndexRows;

/// First bytes of every encrypted value.
const MAGIC: [u8; 4] = *b"\0PXE";
/// Envelope format version.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Longest key id, in bytes.
pub const MAX_KEY_ID: usize = 32;
/// String search values are indexed by their prefixes up to this many characters (and as a
/// whole when longer): a starts-with search with a longer text matches only whole values.
pub const PREFIX_CHARS: usize = 24;
/// Bytes of an HMAC kept in a blind index.
const BLIND_BYTES: usize = 16;

/// Whether `id` can be a key id.
pub fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// One master key and what is derived from it.
struct Key {
    aead: LessSafeKey,
    index: hmac::Key,
    check: String,
    source: String,
}

impl Key {
    fn derive(master: &[u8; 32], source: String) -> Result<Self> {
        let prk = Salt::new(HKDF_SHA256, b"plexus-store-v1").extract(master);
        let expand_err = |_| StoreError::Config("cannot derive keys (HKDF)".to_owned());
        let aead_key: UnboundKey = prk
            .expand(&[b"aes-256-gcm"], &AES_256_GCM)
            .map_err(expand_err)?
            .into();
        let index: hmac::Key = prk
            .expand(&[b"blind-index"], hmac::HMAC_SHA256)
            .map_err(expand_err)?
            .into();
        let check_key: hmac::Key = prk
            .expand(&[b"key-check"], hmac::HMAC_SHA256)
            .map_err(expand_err)?
            .into();
        let tag = hmac::sign(&check_key, b"plexus store key check");
        let check = hex(&tag.as_ref()[..16]);
        Ok(Self {
            aead: LessSafeKey::new(aead_key),
            index,
            check,
            source,
        })
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// 32 key bytes from a file (raw, hex or base64) or an environment variable (hex or base64).
fn read_key(id: &str, file: Option<&Path>, env: Option<&str>) -> Result<([u8; 32], String)> {
    let (bytes, source) = match (file, env) {
        (Some(path), None) => {
            let source = format!("file {}", path.display());
            let bytes = std::fs::read(path).map_err(|e| {
                StoreError::Config(format!(
                    "encryption key {id:?}: cannot read key file {}: {e}",
                    path.display()
                ))
            })?;
            warn_if_readable_by_others(id, path);
            (bytes, source)
        }
        (None, Some(var)) => {
            let source = format!("environment variable {var}");
            let value = std::env::var(var).map_err(|e| {
                StoreError::Config(format!(
                    "encryption key {id:?}: environment variable {var} {}",
                    match e {
                        std::env::VarError::NotPresent => "is not set",
                        std::env::VarError::NotUnicode(_) => "is not valid UTF-8",
                    }
                ))
            })?;
            (value.into_bytes(), source)
        }
        _ => {
            return Err(StoreError::Config(format!(
                "encryption key {id:?}: set exactly one of key_file and key_env"
            )));
        }
    };
    let key = parse_key(&bytes).ok_or_else(|| {
        StoreError::Config(format!(
            "encryption key {id:?} from {source}: expected 32 raw bytes, 64 hex characters or \
             the base64 of 32 bytes (got {} bytes)",
            bytes.len()
        ))
    })?;
    Ok((key, source))
}

/// The key in `bytes`: 32 raw bytes, or (surrounding whitespace ignored) 64 hex characters
/// or standard or URL-safe base64, padded or not, of 32 bytes.
fn parse_key(bytes: &[u8]) -> Option<[u8; 32]> {
    if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
        // 32 raw bytes, unless they are printable text of another form
        if !bytes.iter().all(u8::is_ascii_graphic) {
            return Some(raw);
        }
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = [0u8; 32];
        for (i, out) in key.iter_mut().enumerate() {
            *out = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        return Some(key);
    }
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(text).ok())
        .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
        .or_else(|| <[u8; 32]>::try_from(bytes).ok())
}

#[cfg(unix)]
fn warn_if_readable_by_others(id: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(key_id = id, path = %path.display(), "encryption key file is readable by group or others; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_id: &str, _path: &Path) {}

/// The keys of a configuration, read and checked, before the store's record is consulted.
pub(crate) struct LoadedKeys {
    active: String,
    index_key_id: Option<String>,
    keys: HashMap<String, Key>,
}

impl LoadedKeys {
    /// Reads every key of `config`. Errors name the key id and where its key comes from,
    /// never the key.
    pub(crate) fn load(config: &EncryptionConfig) -> Result<Self> {
        let mut keys = HashMap::new();
        for (id, file, env) in config.keys() {
            if !valid_key_id(id) {
                return Err(StoreError::Config(format!(
                    "encryption key id {id:?} must be 1 to {MAX_KEY_ID} characters of A-Z a-z \
                     0-9 . _ -"
                )));
            }
            let (master, source) = read_key(id, file.map(AsRef::as_ref), env)?;
            if keys
                .insert(id.to_owned(), Key::derive(&master, source)?)
                .is_some()
            {
                return Err(StoreError::Config(format!(
                    "encryption key id {id:?} is configured twice"
                )));
            }
        }
        if let Some(ix) = &config.index_key_id
            && !keys.contains_key(ix)
        {
            return Err(StoreError::Config(format!(
                "index_key_id {ix:?} names no configured key (active or retired)"
            )));
        }
        Ok(Self {
            active: config.key_id.clone(),
            index_key_id: config.index_key_id.clone(),
            keys,
        })
    }
}

/// A key id the store recorded (table `plexus_keys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordedKey {
    pub key_id: String,
    pub check_value: String,
    /// Whether the blind indexes are derived from this key.
    pub blind_index: bool,
}

/// Decides, when a store opens, how it encrypts: from the configured keys (`None`: not
/// configured), what the store recorded, and whether it already holds data. Returns the
/// handle and the key records to add.
pub(crate) fn resolve(
    loaded: Option<LoadedKeys>,
    recorded: &[RecordedKey],
    has_data: bool,
) -> Result<(Crypto, Vec<RecordedKey>)> {
    let Some(loaded) = loaded else {
        if recorded.is_empty() {
            return Ok((Crypto::off(), Vec::new()));
        }
        let ids: Vec<&str> = recorded.iter().map(|r| r.key_id.as_str()).collect();
        return Err(StoreError::Config(format!(
            "this store holds data encrypted at rest (key ids {}), but [store.encryption] is \
             not configured: configure its keys",
            ids.join(", ")
        )));
    };
    for r in recorded {
        if let Some(k) = loaded.keys.get(&r.key_id)
            && k.check != r.check_value
        {
            return Err(StoreError::Config(format!(
                "encryption key {:?} from {} is not the key {:?} this store was encrypted with \
                 (its check value differs)",
                r.key_id, k.source, r.key_id
            )));
        }
    }
    let recorded_index = recorded.iter().find(|r| r.blind_index).map(|r| &r.key_id);
    if recorded.is_empty() && has_data {
        return Err(StoreError::Config(
            "encryption at rest can only be turned on for an empty store: this one already \
             holds messages or FHIR resources stored without it (see docs/security.md)"
                .to_owned(),
        ));
    }
    let index_id = match (recorded_index, &loaded.index_key_id) {
        (Some(rec), Some(conf)) if rec != conf => {
            return Err(StoreError::Config(format!(
                "the blind indexes of this store are keyed from key {rec:?}; index_key_id \
                 {conf:?} cannot change that (remove index_key_id or set it to {rec:?})"
            )));
        }
        (Some(rec), _) => rec.clone(),
        (None, Some(conf)) => conf.clone(),
        (None, None) => loaded.active.clone(),
    };
    let Some(index_key) = loaded.keys.get(&index_id) else {
        return Err(StoreError::Config(format!(
            "the blind indexes of this store are keyed from key {index_id:?}, which is not \
             configured: keep it under [[store.encryption.retired]]"
        )));
    };
    let mut add = Vec::new();
    let known = |id: &str| recorded.iter().any(|r| r.key_id == id);
    for id in [&loaded.active, &index_id] {
        if !known(id) && !add.iter().any(|r: &RecordedKey| &r.key_id == id) {
            add.push(RecordedKey {
                key_id: id.clone(),
                check_value: loaded.keys[id].check.clone(),
                blind_index: recorded_index.is_none() && *id == index_id,
            });
        }
    }
    let index = index_key.index.clone();
    let ring = Keyring {
        active: loaded.active,
        keys: loaded.keys,
        index,
        rng: SystemRandom::new(),
    };
    Ok((Crypto(Some(Arc::new(ring))), add))
}

/// The keys of an open store.
struct Keyring {
    active: String,
    keys: HashMap<String, Key>,
    index: hmac::Key,
    rng: SystemRandom,
}

/// Whether, and with which keys, a store encrypts. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Crypto(Option<Arc<Keyring>>);

impl fmt::Debug for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Crypto(off)"),
            Some(k) => write!(f, "Crypto(active key {:?})", k.active),
        }
    }
}

/// The identity of the row a value belongs to, bound to its ciphertext.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Row<'a> {
    /// `message_content` of (message, destination, stage).
    Content(&'a str, Destination, Stage),
    /// `message_metadata` of (message, key).
    Metadata(&'a str, &'a str),
    /// `fhir_version` of (type, id, version).
    Resource(&'a str, &'a str, i64),
}

impl Row<'_> {
    fn append_to(self, aad: &mut Vec<u8>) {
        let mut put = |part: &[u8]| {
            aad.push(0);
            aad.extend_from_slice(part);
        };
        match self {
            Row::Content(id, d, s) => {
                put(b"message_content");
                put(id.as_bytes());
                put(d.to_string().as_bytes());
                put(s.as_str().as_bytes());
            }
            Row::Metadata(id, key) => {
                put(b"message_metadata");
                put(id.as_bytes());
                put(key.as_bytes());
            }
            Row::Resource(t, id, v) => {
                put(b"fhir_version");
                put(t.as_bytes());
                put(id.as_bytes());
                put(v.to_string().as_bytes());
            }
        }
    }
}

/// The key id of an envelope and the length of its header, or `None` if `value` is not one.
pub(crate) fn envelope_key_id(value: &[u8]) -> Option<(&str, usize)> {
    let rest = value.strip_prefix(&MAGIC[..])?.strip_prefix(&[VERSION])?;
    let end = rest.iter().take(MAX_KEY_ID + 1).position(|&b| b == 0)?;
    let id = std::str::from_utf8(&rest[..end]).ok()?;
    valid_key_id(id).then_some((id, MAGIC.len() + 1 + end + 1))
}

/// The header every value encrypted under `key_id` starts with.
pub(crate) fn envelope_header(key_id: &str) -> Vec<u8> {
    let mut h = Vec::with_capacity(MAGIC.len() + 2 + key_id.len());
    h.extend_from_slice(&MAGIC);
    h.push(VERSION);
    h.extend_from_slice(key_id.as_bytes());
    h.push(0);
    h
}

impl Crypto {
    /// No encryption.
    pub(crate) fn off() -> Self {
        Self(None)
    }

    /// Whether values are encrypted.
    pub(crate) fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// The active key id, when on.
    pub(crate) fn active_key(&self) -> Option<&str> {
        self.0.as_deref().map(|k| k.active.as_str())
    }

    /// `plain` encrypted for `row` (as is when off).
    pub(crate) fn seal<'a>(&self, row: Row<'_>, plain: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        match &self.0 {
            None => Ok(Cow::Borrowed(plain)),
            Some(k) => k.seal(row, plain).map(Cow::Owned),
        }
    }

    /// The plaintext of a stored value of `row` (as is when off). An empty value (a deleted
    /// resource's version) stays empty.
    pub(crate) fn open(&self, op: &'static str, row: Row<'_>, stored: Vec<u8>) -> Result<Vec<u8>> {
        match &self.0 {
            Some(k) if !stored.is_empty() => k.open(op, row, stored),
            _ => Ok(stored),
        }
    }

    /// What a metadata row stores: `value` (a blind index when on) and `sealed` (the
    /// encrypted value when on).
    pub(crate) fn metadata<'a>(
        &self,
        message: &str,
        key: &str,
        value: &'a str,
    ) -> Result<(Cow<'a, str>, Option<Vec<u8>>)> {
        match &self.0 {
            None => Ok((Cow::Borrowed(value), None)),
            Some(k) => Ok((
                Cow::Owned(k.blind("meta", key, value)),
                Some(k.seal(Row::Metadata(message, key), value.as_bytes())?),
            )),
        }
    }

    /// The value of a stored metadata row.
    pub(crate) fn open_metadata(
        &self,
        op: &'static str,
        message: &str,
        key: &str,
        value: String,
        sealed: Option<Vec<u8>>,
    ) -> Result<String> {
        match (&self.0, sealed) {
            (None, None) => Ok(value),
            (Some(k), Some(sealed)) => {
                let plain = k.open(op, Row::Metadata(message, key), sealed)?;
                String::from_utf8(plain).map_err(|_| StoreError::Encryption {
                    op,
                    detail: format!("a metadata value of message {message} is not UTF-8"),
                })
            }
            (None, Some(_)) => Err(StoreError::Encryption {
                op,
                detail: format!(
                    "a metadata value of message {message} is encrypted, but encryption at \
                     rest is not configured"
                ),
            }),
            (Some(_), None) => Err(StoreError::Encryption {
                op,
                detail: format!(
                    "a metadata value of message {message} is not encrypted, but encryption \
                     at rest is on"
                ),
            }),
        }
    }

    /// `filter` with its metadata values as the blind indexes they are stored as.
    pub(crate) fn filter<'a>(&self, filter: &'a MessageFilter) -> Cow<'a, MessageFilter> {
        match &self.0 {
            Some(k) if !filter.metadata.is_empty() => {
                let mut f = filter.clone();
                for (key, value) in &mut f.metadata {
                    *value = k.blind("meta", key, value);
                }
                Cow::Owned(f)
            }
            _ => Cow::Borrowed(filter),
        }
    }

    /// Index rows as stored: when on, strings as blind indexes of their prefixes and whole
    /// value (the exact value's index on the whole value's row only), token codes and reference identifiers as blind indexes, token displays dropped.
    pub(crate) fn index_rows(&self, mut rows: IndexRows) -> IndexRows {
        let Some(k) = &self.0 else { return rows };
        let mut strings = Vec::with_capacity(rows.strings.len() * 8);
        for (key, normalized, exact, part) in rows.strings {
            // only the whole value's row carries the exact value's index; the prefix rows
            // share one constant (`:exact` finds the whole value's row by its normalized
            // blind index, then compares this column)
            let prefixes = prefixes(&normalized);
            let last = prefixes.len() - 1;
            for (i, prefix) in prefixes.into_iter().enumerate() {
                let exact = if i == last {
                    k.blind("str-exact", &key.param, &exact)
                } else {
                    String::new()
                };
                strings.push((key.clone(), k.blind("str", &key.param, prefix), exact, part));
            }
        }
        rows.strings = strings;
        for (key, [_system, code, display, _ts, _tc]) in &mut rows.tokens {
            if let Some(c) = code {
                *c = k.blind("tok", &key.param, c);
            }
            *display = None;
        }
        for (key, [_tt, _tid, _url, _is, value]) in &mut rows.references {
            if let Some(v) = value {
                *v = k.blind("ident", &key.param, v);
            }
        }
        rows
    }

    /// The bound value of a starts-with string search on `param`.
    pub(crate) fn string_prefix<'a>(&self, param: &str, value: &'a str) -> Cow<'a, str> {
        match &self.0 {
            Some(k) if !value.is_empty() => Cow::Owned(k.blind("str", param, value)),
            _ => Cow::Borrowed(value),
        }
    }

    /// The bound value of an exact string search on `param`.
    pub(crate) fn string_exact<'a>(&self, param: &str, value: &'a str) -> Cow<'a, str> {
        self.blind_or(param, value, "str-exact")
    }

    /// The bound value of a token code search on `param`.
    pub(crate) fn token<'a>(&self, param: &str, code: &'a str) -> Cow<'a, str> {
        self.blind_or(param, code, "tok")
    }

    /// The bound value of a reference identifier search on `param`.
    pub(crate) fn identifier<'a>(&self, param: &str, value: &'a str) -> Cow<'a, str> {
        self.blind_or(param, value, "ident")
    }

    fn blind_or<'a>(&self, param: &str, value: &'a str, domain: &str) -> Cow<'a, str> {
        match &self.0 {
            Some(k) => Cow::Owned(k.blind(domain, param, value)),
            None => Cow::Borrowed(value),
        }
    }

    /// The text of a conditional write's lock (PostgreSQL): as is when off, else a keyed
    /// hash of it, so search values never reach the database server's logs.
    pub(crate) fn lock_key(&self, key: String) -> String {
        match &self.0 {
            Some(k) => k.blind("lock", "", &key),
            None => key,
        }
    }

    /// Fails with [`StoreError::UnsupportedWithEncryption`] when on.
    pub(crate) fn refuse(&self, op: &'static str, feature: impl FnOnce() -> String) -> Result<()> {
        if self.is_on() {
            return Err(StoreError::UnsupportedWithEncryption {
                op,
                feature: feature(),
            });
        }
        Ok(())
    }

    /// A stored value re-encrypted with the active key, or `None` if it is under it already.
    pub(crate) fn reseal(
        &self,
        op: &'static str,
        row: Row<'_>,
        stored: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let Some(k) = &self.0 else {
            return Ok(None);
        };
        match envelope_key_id(stored) {
            Some((id, _)) if id == k.active => Ok(None),
            _ if stored.is_empty() => Ok(None),
            _ => {
                let plain = k.open(op, row, stored.to_vec())?;
                k.seal(row, &plain).map(Some)
            }
        }
    }
}

/// The prefixes a string value is indexed by: each of its first [`PREFIX_CHARS`] lengths,
/// and the whole value when longer (the empty value as itself).
fn prefixes(value: &str) -> Vec<&str> {
    let mut ends: Vec<usize> = value
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .take(PREFIX_CHARS)
        .collect();
    if ends.last() != Some(&value.len()) {
        ends.push(value.len());
    }
    ends.into_iter().map(|e| &value[..e]).collect()
}

impl Keyring {
    fn seal(&self, row: Row<'_>, plain: &[u8]) -> Result<Vec<u8>> {
        let key = self
            .keys
            .get(&self.active)
            .ok_or_else(|| StoreError::Config(format!("active key {:?} missing", self.active)))?;
        let mut out = envelope_header(&self.active);
        let header = out.len();
        out.reserve(NONCE_LEN + plain.len() + TAG_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| StoreError::Encryption {
                op: "encrypt",
                detail: "the system random number generator failed".to_owned(),
            })?;
        out.extend_from_slice(&nonce);
        let mut aad = out[..header].to_vec();
        row.append_to(&mut aad);
        let body = out.len();
        out.extend_from_slice(plain);
        let tag = key
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(&aad),
                &mut out[body..],
            )
            .map_err(|_| StoreError::Encryption {
                op: "encrypt",
                detail: "AES-GCM refused the value (too long)".to_owned(),
            })?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    fn open(&self, op: &'static str, row: Row<'_>, mut stored: Vec<u8>) -> Result<Vec<u8>> {
        let Some((id, header)) = envelope_key_id(&stored) else {
            return Err(StoreError::Encryption {
                op,
                detail: format!(
                    "{} is not encrypted, but encryption at rest is on",
                    row.what()
                ),
            });
        };
        let key = self.keys.get(id).ok_or_else(|| StoreError::UnknownKey {
            op,
            key_id: id.to_owned(),
        })?;
        if stored.len() < header + NONCE_LEN + TAG_LEN {
            return Err(StoreError::Encryption {
                op,
                detail: format!("{} is truncated", row.what()),
            });
        }
        let id = id.to_owned();
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&stored[header..header + NONCE_LEN]);
        let mut aad = stored[..header].to_vec();
        row.append_to(&mut aad);
        let len = key
            .aead
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(&aad),
                &mut stored[header + NONCE_LEN..],
            )
            .map_err(|_| StoreError::Encryption {
                op,
                detail: format!(
                    "{} does not decrypt with key {id:?} (wrong key, or the data was altered \
                     or moved)",
                    row.what()
                ),
            })?
            .len();
        stored.drain(..header + NONCE_LEN);
        stored.truncate(len);
        Ok(stored)
    }

    fn blind(&self, domain: &str, param: &str, value: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.index);
        for part in [domain.as_bytes(), param.as_bytes(), value.as_bytes()] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let tag = ctx.sign();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag.as_ref()[..BLIND_BYTES])
    }
}

impl Row<'_> {
    /// The row, for error messages (ids only, never content).
    fn what(self) -> String {
        match self {
            Row::Content(id, d, s) => format!("content {s} of destination {d} of message {id}"),
            Row::Metadata(id, key) => format!("metadata {key:?} of message {id}"),
            Row::Resource(t, id, v) => format!("resource {t}/{id} version {v}"),
        }
    }
}

// ---- rotation ---------------------------------------------------------------------------

/// The tables holding encrypted values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SealedTable {
    /// `message_content.bytes`: received bytes and content stages.
    MessageContent,
    /// `message_metadata.sealed`: metadata values.
    MessageMetadata,
    /// `fhir_version.content`: resource JSON.
    FhirVersion,
}

impl SealedTable {
    /// Every table, in the order a rotation goes through them.
    pub const ALL: [Self; 3] = [
        Self::MessageContent,
        Self::MessageMetadata,
        Self::FhirVersion,
    ];

    /// The table's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::MessageContent => "message_content",
            Self::MessageMetadata => "message_metadata",
            Self::FhirVersion => "fhir_version",
        }
    }
}

/// Where a rotation is in a table: the primary key of the last row it looked at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cursor {
    /// Start of the table.
    Start,
    /// `message_content` (message_id, destination, stage).
    Content(String, i64, String),
    /// `message_metadata` (message_id, seq).
    Metadata(String, i64),
    /// `fhir_version` (rid, version).
    Version(i64, i64),
}

/// One batch of a rotation.
#[derive(Debug)]
pub(crate) struct Step {
    /// Rows re-encrypted.
    pub rewritten: u64,
    /// Where the next batch starts; `None` at the end of the table.
    pub next: Option<Cursor>,
}

/// What a rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Rows re-encrypted with the active key, per table.
    pub rewritten: BTreeMap<SealedTable, u64>,
    /// Batches committed.
    pub batches: u64,
    /// The table the rotation is in (while it runs) or finished last.
    pub table: Option<SealedTable>,
}

impl RotationReport {
    /// Rows re-encrypted in all tables.
    pub fn total(&self) -> u64 {
        self.rewritten.values().sum()
    }
}

/// Re-encrypts every row written under another key than the active one (a retired key)
/// with the active key, table by table in primary-key order, `batch_size` rows looked at per
/// transaction, so memory stays flat and other work goes on between batches. Calls
/// `progress` after every batch. Safe to interrupt and run again: rows under the active key
/// are left alone. Blind indexes are not touched (their key does not change).
///
/// Fails with [`StoreError::InvalidArgument`] when the store does not encrypt, and with
/// [`StoreError::UnknownKey`] when a row's key is not configured.
pub async fn rotate(
    store: &crate::AnyStore,
    batch_size: u32,
    mut progress: impl FnMut(&RotationReport),
) -> Result<RotationReport> {
    if !store.crypto().is_on() {
        return Err(StoreError::InvalidArgument {
            op: "rotate",
            reason: "encryption at rest is not configured ([store.encryption])".to_owned(),
        });
    }
    let batch = batch_size.clamp(1, 100_000);
    let mut report = RotationReport::default();
    for table in SealedTable::ALL {
        report.table = Some(table);
        let mut cursor = Cursor::Start;
        loop {
            let step = match store {
                crate::AnyStore::Sqlite(s) => s.rotate_step(table, cursor, batch).await?,
                crate::AnyStore::Postgres(s) => s.rotate_step(table, cursor, batch).await?,
            };
            *report.rewritten.entry(table).or_default() += step.rewritten;
            report.batches += 1;
            progress(&report);
            match step.next {
                Some(next) => cursor = next,
                None => break,
            }
        }
    }
    Ok(report)
}

/// How many encrypted values each key id holds, per table (a full scan of the encrypted
/// columns' first bytes; for operators and tests). Values that are not encrypted count under
/// the id `""`.
pub async fn key_usage(
    store: &crate::AnyStore,
) -> Result<BTreeMap<SealedTable, BTreeMap<String, u64>>> {
    match store {
        crate::AnyStore::Sqlite(s) => s.key_usage().await,
        crate::AnyStore::Postgres(s) => s.key_usage().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypto(keys: &[(&str, u8)], active: &str) -> Crypto {
        let mut map = HashMap::new();
        for (id, b) in keys {
            map.insert(
                (*id).to_owned(),
                Key::derive(&[*b; 32], "test".into()).unwrap(),
            );
        }
        let loaded = LoadedKeys {
            active: active.to_owned(),
            index_key_id: None,
            keys: map,
        };
        resolve(Some(loaded), &[], false).unwrap().0
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let c = crypto(&[("k1", 1)], "k1");
        let row = Row::Content("01ARZ3NDEKTSV4RRFFQ69G5FAV", 0, Stage::Raw);
        let sealed = c.seal(row, b"MSH|secret").unwrap().into_owned();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(envelope_key_id(&sealed).map(|(id, _)| id), Some("k1"));
        assert_eq!(c.open("t", row, sealed.clone()).unwrap(), b"MSH|secret");
        // another row's identity: refused
        let other = Row::Content("01ARZ3NDEKTSV4RRFFQ69G5FAV", 1, Stage::Raw);
        assert!(matches!(
            c.open("t", other, sealed.clone()),
            Err(StoreError::Encryption { .. })
        ));
        // a flipped bit: refused
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(c.open("t", row, bad).is_err());
        // a wrong key under the same id: refused
        let wrong = crypto(&[("k1", 2)], "k1");
        assert!(matches!(
            wrong.open("t", row, sealed.clone()),
            Err(StoreError::Encryption { .. })
        ));
        // an unknown id: named
        let other_id = crypto(&[("k2", 1)], "k2");
        match other_id.open("t", row, sealed) {
            Err(StoreError::UnknownKey { key_id, .. }) => assert_eq!(key_id, "k1"),
            r => panic!("{r:?}"),
        }
        // plaintext where an envelope is expected: refused
        assert!(c.open("t", row, b"MSH|plain".to_vec()).is_err());
    }

    #[test]
    fn reseal_moves_to_the_active_key() {
        let old = crypto(&[("k1", 1)], "k1");
        let both = crypto(&[("k1", 1), ("k2", 2)], "k2");
        let row = Row::Resource("Patient", "p1", 3);
        let sealed = old.seal(row, b"{}").unwrap().into_owned();
        let new = both.reseal("t", row, &sealed).unwrap().unwrap();
        assert_eq!(envelope_key_id(&new).map(|(id, _)| id), Some("k2"));
        assert_eq!(both.open("t", row, new.clone()).unwrap(), b"{}");
        assert_eq!(both.reseal("t", row, &new).unwrap(), None);
    }

    #[test]
    fn keys_parse_in_every_form() {
        let raw = [7u8; 32];
        assert_eq!(parse_key(&raw), Some(raw));
        let hex = hex(&raw);
        assert_eq!(parse_key(format!("{hex}\n").as_bytes()), Some(raw));
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(parse_key(b64.as_bytes()), Some(raw));
        assert_eq!(parse_key(b"short"), None);
        assert_eq!(parse_key(&[1u8; 31]), None);
        // 32 printable characters are not taken as raw bytes unless nothing else fits
        let printable = [b'a'; 32];
        assert_eq!(parse_key(&printable), Some(printable));
    }

    #[test]
    fn string_prefixes() {
        assert_eq!(prefixes("abc"), vec!["a", "ab", "abc"]);
        assert_eq!(prefixes(""), vec![""]);
        let long = "x".repeat(30);
        let p = prefixes(&long);
        assert_eq!(p.len(), PREFIX_CHARS + 1);
        assert_eq!(p.last().map(|s| s.len()), Some(30));
        assert_eq!(prefixes("çé").len(), 2);
    }

    #[test]
    fn resolve_guards_the_store() {
        let load = |id: &str, b: u8| LoadedKeys {
            active: id.to_owned(),
            index_key_id: None,
            keys: HashMap::from([(id.to_owned(), Key::derive(&[b; 32], "src".into()).unwrap())]),
        };
        // first time, empty store: records the key as the index key
        let (c, add) = resolve(Some(load("k1", 1)), &[], false).unwrap();
        assert!(c.is_on());
        assert_eq!(add.len(), 1);
        assert!(add[0].blind_index);
        // not on a store with data
        assert!(resolve(Some(load("k1", 1)), &[], true).is_err());
        // the same id with another key: refused
        assert!(resolve(Some(load("k1", 2)), &add, true).is_err());
        // encrypted store without configuration: refused
        assert!(resolve(None, &add, true).is_err());
        // a new active key without the index key: refused, naming it
        match resolve(Some(load("k2", 2)), &add, true) {
            Err(StoreError::Config(m)) => assert!(m.contains("\"k1\""), "{m}"),
            r => panic!("{:?}", r.map(|_| ())),
        }
    }
}
