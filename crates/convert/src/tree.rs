//! The JSON tree resources are built in: like `serde_json::Value`, but object keys are
//! `&'static str` (every key the conversion writes is a FHIR element name known at compile
//! time), constant strings are borrowed, and an object is a vector kept sorted by key (the
//! order `serde_json` writes a map in), so building a resource allocates one vector per object
//! instead of a B-tree node and a `String` per key. A finished Bundle is written straight to
//! JSON bytes ([`serde::Serialize`]) or moved into a `serde_json::Value` ([`Value::into_serde`]).

use std::cell::RefCell;
use std::cmp::Ordering;
use std::ops::{Index, IndexMut};
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

pub use crate::text::Text;

/// A JSON value.
#[derive(Debug, Clone)]
pub enum Value {
    /// `null` (what a missing key indexes to; never written into a resource).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string made during the conversion (short ones held inline).
    String(Text),
    /// A constant string (system URIs, codes of the IG tables).
    Str(&'static str),
    /// A string several values hold (an entry's `urn:uuid:` that references point at; `Arc`, not `Rc`, so a
    /// `static` null value can exist).
    Shared(Arc<str>),
    /// An array.
    Array(Vec<Value>),
    /// An object.
    Object(Map),
}

/// A JSON object: entries sorted by key, keys unique.
#[derive(Debug, Clone, Default)]
pub struct Map(Vec<(&'static str, Value)>);

static NULL: Value = Value::Null;

/// `a.cmp(b)` (byte order, as `str` compares).
fn key_cmp(a: &str, b: &str) -> Ordering {
    // element names are short: a byte loop, not a `memcmp` call, when the first bytes agree
    for (x, y) in a.bytes().zip(b.bytes()) {
        if x != y {
            return x.cmp(&y);
        }
    }
    a.len().cmp(&b.len())
}

impl Map {
    /// An empty object (no allocation until the first insert).
    pub const fn new() -> Self {
        Map(Vec::new())
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        // keys are mostly inserted in order: try after the last one first
        match self.0.last() {
            None => return Err(0),
            Some((last, _)) if key_cmp(last, key) == Ordering::Less => return Err(self.0.len()),
            _ => {}
        }
        self.0.binary_search_by(|(k, _)| key_cmp(k, key))
    }

    /// Sets `key` to `value`, returning the value it replaces.
    pub fn insert(&mut self, key: &'static str, value: Value) -> Option<Value> {
        match self.find(key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                if self.0.capacity() == 0 {
                    self.0 = spare_entries();
                }
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    /// The value under `key`, to change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Whether the object has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value under `key`, inserting `value` first when there is none.
    pub fn or_insert(&mut self, key: &'static str, value: Value) -> &mut Value {
        let i = match self.find(key) {
            Ok(i) => i,
            Err(i) => {
                if self.0.capacity() == 0 {
                    self.0 = spare_entries();
                }
                self.0.insert(i, (key, value));
                i
            }
        };
        &mut self.0[i].1
    }

    /// Moves the object into a `serde_json` map.
    pub fn into_serde(mut self) -> serde_json::Map<String, serde_json::Value> {
        let entries = self
            .0
            .drain(..)
            .map(|(k, v)| (k.to_owned(), v.into_serde()));
        if entries.len() <= 4 {
            // a few keys (codings, references, identifiers): inserting in order costs fewer
            // comparisons than the vector a collected B-tree map is first sorted in
            let mut m = serde_json::Map::new();
            for (k, v) in entries {
                m.insert(k, v);
            }
            m
        } else {
            entries.collect()
        }
    }
}

/// Entry vectors of dropped objects, kept per thread for the next objects: a conversion makes
/// a few dozen to a few hundred objects, and reusing their vectors spares as many allocations
/// and frees. At most `SPARE_MAX` vectors of `SPARE_MIN_CAPACITY` to `SPARE_CAPACITY` entries are kept
/// (under 400 KB a thread): 512 rather than 256, as an ORU^R01 with 30 results makes over 256
/// objects, and each one past the list was a new allocation.
type Entries = Vec<(&'static str, Value)>;
const SPARE_MAX: usize = 512;
const SPARE_CAPACITY: usize = 16;
/// The capacity of a new entry vector: smaller vectors (of cloned objects) are not kept, as
/// the next object would have to regrow them.
const SPARE_MIN_CAPACITY: usize = 8;

thread_local! {
    static SPARE: RefCell<Vec<Entries>> = const { RefCell::new(Vec::new()) };
}

/// An empty entry vector with room for a few entries: a spare one, else a new one.
fn spare_entries() -> Entries {
    SPARE
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()))
        .ok()
        .flatten()
        .unwrap_or_else(|| Vec::with_capacity(SPARE_MIN_CAPACITY))
}

/// Item vectors of dropped arrays (those objects hold), kept per thread like the entry
/// vectors: at most `ARRAY_SPARE_MAX` vectors of `ARRAY_MIN_CAPACITY` to `SPARE_CAPACITY`
/// items (under 140 KB a thread); smaller ones, as `json!` makes them, would regrow at once.
const ARRAY_SPARE_MAX: usize = 256;
const ARRAY_MIN_CAPACITY: usize = 4;

thread_local! {
    static SPARE_ARRAYS: RefCell<Vec<Vec<Value>>> = const { RefCell::new(Vec::new()) };
}

/// An empty vector for an array's items: a spare one (room for a few items), else a new
/// empty one (no allocation until the first push).
pub fn array() -> Vec<Value> {
    SPARE_ARRAYS
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Keeps the item vector of a dropped array for [`array`], its items dropped first.
fn keep_array(mut items: Vec<Value>) {
    if !(ARRAY_MIN_CAPACITY..=SPARE_CAPACITY).contains(&items.capacity()) {
        return;
    }
    items.clear();
    let _ = SPARE_ARRAYS.try_with(|s| {
        if let Ok(mut spare) = s.try_borrow_mut()
            && spare.len() < ARRAY_SPARE_MAX
        {
            spare.push(items);
        }
    });
}

impl Drop for Map {
    fn drop(&mut self) {
        let mut entries = std::mem::take(&mut self.0);
        // arrays give their item vectors back (their objects give theirs back as they drop)
        for (_, v) in &mut entries {
            if let Value::Array(items) = v {
                keep_array(std::mem::take(items));
            }
        }
        if !(SPARE_MIN_CAPACITY..=SPARE_CAPACITY).contains(&entries.capacity()) {
            return;
        }
        // drop the values first (their objects go back too), then keep the vector
        entries.clear();
        let _ = SPARE.try_with(|s| {
            if let Ok(mut spare) = s.try_borrow_mut()
                && spare.len() < SPARE_MAX
            {
                spare.push(entries);
            }
        });
    }
}

impl PartialEq for Map {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Value {
    /// The value under `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.get(key),
            _ => None,
        }
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s.as_str()),
            Value::Str(s) => Some(s),
            Value::Shared(s) => Some(s),
            _ => None,
        }
    }

    /// A number as `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value at a JSON pointer (`/type/coding/0/code`).
    pub fn pointer(&self, pointer: &str) -> Option<&Value> {
        let mut v = self;
        for token in pointer.strip_prefix('/')?.split('/') {
            v = match v {
                Value::Object(m) => m.get(token)?,
                Value::Array(a) => a.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(v)
    }

    /// Moves the value into a `serde_json::Value`.
    pub fn into_serde(self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(b),
            Value::Number(n) => serde_json::Value::Number(n),
            Value::String(s) => serde_json::Value::String(s.into_string()),
            Value::Str(s) => serde_json::Value::String(s.to_owned()),
            Value::Shared(s) => serde_json::Value::String(s.as_ref().to_owned()),
            Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(Value::into_serde).collect())
            }
            Value::Object(m) => serde_json::Value::Object(m.into_serde()),
        }
    }
}

impl Value {
    /// Appends the compact JSON text of the value to `out`: the bytes `serde_json::to_writer`
    /// writes for it, without going through the serializer's generic machinery.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Number(n) => {
                // serde_json writes a number as its `Display` text; no `String` in between
                let _ = std::io::Write::write_fmt(out, format_args!("{n}"));
            }
            Value::String(s) => write_str_bytes(out, s.as_bytes()),
            Value::Str(s) => write_str(out, s),
            Value::Shared(s) => write_str(out, s),
            Value::Array(a) => {
                out.push(b'[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write_json(out);
                }
                out.push(b']');
            }
            Value::Object(m) => m.write_json(out),
        }
    }
}

impl Map {
    /// Appends the compact JSON text of the object with the strings of `extra` (sorted by key)
    /// merged in, as if they had been inserted first (an extra key replaces the object's own):
    /// a Bundle entry's resource gets its `resourceType` and `id` without being changed.
    pub fn write_json_with(&self, extra: &[(&'static str, &str)], out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        let mut key = |out: &mut Vec<u8>, k: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"\":");
        };
        let mut extra = extra.iter().peekable();
        for (k, v) in &self.0 {
            let mut replaced = false;
            while let Some((ek, ev)) = extra.next_if(|(ek, _)| key_cmp(ek, k) != Ordering::Greater)
            {
                key(out, ek);
                write_str(out, ev);
                replaced |= ek == k;
            }
            if !replaced {
                key(out, k);
                v.write_json(out);
            }
        }
        for (ek, ev) in extra {
            key(out, ek);
            write_str(out, ev);
        }
        out.push(b'}');
    }

    /// Appends the compact JSON text of the object to `out` (keys in order).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // keys are element names: nothing to escape
            out.push(b'"');
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"\":");
            v.write_json(out);
        }
        out.push(b'}');
    }
}

/// What a byte of a string is written as: 0 itself, `u` a `\u00XX` escape, else `\` and
/// that letter (serde_json's table: quote, backslash and control characters only).
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Whether any byte of `bytes` is a quote, a backslash or a control character, tested a word
/// at a time: a byte below 0x20, or equal to `"` or `\`, sets its high bit in the mask.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let special = |w: u64| {
        let below_space = w.wrapping_sub(ONES * 0x20) & !w;
        let q = w ^ (ONES * u64::from(b'"'));
        let quote = q.wrapping_sub(ONES) & !q;
        let b = w ^ (ONES * u64::from(b'\\'));
        let backslash = b.wrapping_sub(ONES) & !b;
        (below_space | quote | backslash) & HIGH != 0
    };
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        if special(u64::from_le_bytes(w)) {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Writes the concatenation of `parts` as one JSON string.
pub fn write_str_parts(out: &mut Vec<u8>, parts: &[&str]) {
    out.push(b'"');
    for p in parts {
        write_str_body(out, p);
    }
    out.push(b'"');
}

/// Writes `s` as a JSON string.
fn write_str(out: &mut Vec<u8>, s: &str) {
    write_str_bytes(out, s.as_bytes());
}

/// Writes the UTF-8 text `bytes` as a JSON string.
fn write_str_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    write_bytes_body(out, bytes);
    out.push(b'"');
}

/// Writes the text of `s` escaped as in a JSON string, without the quotes.
fn write_str_body(out: &mut Vec<u8>, s: &str) {
    write_bytes_body(out, s.as_bytes());
}

/// Writes the UTF-8 text `bytes` escaped as in a JSON string, without the quotes.
fn write_bytes_body(out: &mut Vec<u8>, bytes: &[u8]) {
    // most text needs no escape: find out eight bytes at a time, then copy it whole
    if needs_escape(bytes) {
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let e = ESCAPE[usize::from(b)];
            if e == 0 {
                continue;
            }
            out.extend_from_slice(&bytes[start..i]);
            out.push(b'\\');
            if e == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            } else {
                out.push(e);
            }
            start = i + 1;
        }
        out.extend_from_slice(&bytes[start..]);
    } else {
        out.extend_from_slice(bytes);
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Number(a), Value::Number(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => a == b,
            (a, b) => match (a.as_str(), b.as_str()) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
        }
    }
}

impl Index<&str> for Value {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

impl IndexMut<&'static str> for Value {
    /// The value under `key` of an object, inserted as `null` when absent (as
    /// `serde_json::Value` does). Panics on a non-object: a bug in a handler, never input.
    fn index_mut(&mut self, key: &'static str) -> &mut Value {
        match self {
            Value::Object(m) => m.or_insert(key, Value::Null),
            _ => panic!("cannot set {key:?} on a non-object JSON value"),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => n.serialize(s),
            Value::String(t) => s.serialize_str(t),
            Value::Str(t) => s.serialize_str(t),
            Value::Shared(t) => s.serialize_str(t),
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Object(m) => m.serialize(s),
        }
    }
}

impl Serialize for Map {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl From<&'static str> for Value {
    fn from(s: &'static str) -> Self {
        Value::Str(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(Text::from(s))
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::String(Text::new(s))
    }
}

impl From<&Text> for Value {
    fn from(s: &Text) -> Self {
        Value::String(s.clone())
    }
}

impl From<Text> for Value {
    fn from(s: Text) -> Self {
        Value::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Number(n.into())
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Value::Number(n.into())
    }
}

impl From<f64> for Value {
    /// A finite number; NaN and infinities (not JSON) are `null`, as in `serde_json`.
    fn from(n: f64) -> Self {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Value::Number(n.into())
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Object(m)
    }
}

impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}

impl From<&Value> for Value {
    fn from(v: &Value) -> Self {
        v.clone()
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Builds a [`Value`] with JSON syntax, like `serde_json::json!` (adapted from serde_json's
/// macro, MIT/Apache-2.0): keys are string literals, other values go through `From`.
macro_rules! json {
    ($($json:tt)+) => {
        json_internal!($($json)+)
    };
}

macro_rules! json_internal {
    (@array [$($elems:expr,)*]) => {
        vec![$($elems,)*]
    };
    (@array [$($elems:expr),*]) => {
        vec![$($elems),*]
    };
    (@array [$($elems:expr,)*] null $($rest:tt)*) => {
        json_internal!(@array [$($elems,)* json_internal!(null)] $($rest)*)
    };
    (@array [$($elems:expr,)*] true $($rest:tt)*) => {
        json_internal!(@array [$($elems,)* json_internal!(true)] $($rest)*)
    };
    (@array [$($elems:expr,)*] false $($rest:tt)*) => {
        json_internal!(@array [$($elems,)* json_internal!(false)] $($rest)*)
    };
    (@array [$($elems:expr,)*] [$($array:tt)*] $($rest:tt)*) => {
        json_internal!(@array [$($elems,)* json_internal!([$($array)*])] $($rest)*)
    };
    (@array [$($elems:expr,)*] {$($map:tt)*} $($rest:tt)*) => {
        json_internal!(@array [$($elems,)* json_internal!({$($map)*})] $($rest)*)
    };
    (@array [$($elems:expr,)*] $next:expr, $($rest:tt)*) => {
        json_internal!(@array [$($elems,)* json_internal!($next),] $($rest)*)
    };
    (@array [$($elems:expr,)*] $last:expr) => {
        json_internal!(@array [$($elems,)* json_internal!($last)])
    };
    (@array [$($elems:expr),*] , $($rest:tt)*) => {
        json_internal!(@array [$($elems,)*] $($rest)*)
    };

    (@object $object:ident () () ()) => {};
    (@object $object:ident [$($key:tt)+] ($value:expr) , $($rest:tt)*) => {
        let _ = $object.insert($($key)+, $value);
        json_internal!(@object $object () ($($rest)*) ($($rest)*));
    };
    (@object $object:ident [$($key:tt)+] ($value:expr)) => {
        let _ = $object.insert($($key)+, $value);
    };
    (@object $object:ident ($($key:tt)+) (: null $($rest:tt)*) $copy:tt) => {
        json_internal!(@object $object [$($key)+] (json_internal!(null)) $($rest)*);
    };
    (@object $object:ident ($($key:tt)+) (: true $($rest:tt)*) $copy:tt) => {
        json_internal!(@object $object [$($key)+] (json_internal!(true)) $($rest)*);
    };
    (@object $object:ident ($($key:tt)+) (: false $($rest:tt)*) $copy:tt) => {
        json_internal!(@object $object [$($key)+] (json_internal!(false)) $($rest)*);
    };
    (@object $object:ident ($($key:tt)+) (: [$($array:tt)*] $($rest:tt)*) $copy:tt) => {
        json_internal!(@object $object [$($key)+] (json_internal!([$($array)*])) $($rest)*);
    };
    (@object $object:ident ($($key:tt)+) (: {$($map:tt)*} $($rest:tt)*) $copy:tt) => {
        json_internal!(@object $object [$($key)+] (json_internal!({$($map)*})) $($rest)*);
    };
    (@object $object:ident ($($key:tt)+) (: $value:expr , $($rest:tt)*) $copy:tt) => {
        json_internal!(@object $object [$($key)+] (json_internal!($value)) , $($rest)*);
    };
    (@object $object:ident ($($key:tt)+) (: $value:expr) $copy:tt) => {
        json_internal!(@object $object [$($key)+] (json_internal!($value)));
    };
    (@object $object:ident ($($key:tt)*) ($tt:tt $($rest:tt)*) $copy:tt) => {
        json_internal!(@object $object ($($key)* $tt) ($($rest)*) ($($rest)*));
    };

    (null) => {
        $crate::tree::Value::Null
    };
    (true) => {
        $crate::tree::Value::Bool(true)
    };
    (false) => {
        $crate::tree::Value::Bool(false)
    };
    ([]) => {
        $crate::tree::Value::Array(vec![])
    };
    ([ $($tt:tt)+ ]) => {
        $crate::tree::Value::Array(json_internal!(@array [] $($tt)+))
    };
    ({}) => {
        $crate::tree::Value::Object($crate::tree::Map::new())
    };
    ({ $($tt:tt)+ }) => {
        $crate::tree::Value::Object({
            let mut object = $crate::tree::Map::new();
            json_internal!(@object object () ($($tt)+) ($($tt)+));
            object
        })
    };
    ($other:expr) => {
        $crate::tree::Value::from($other)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_test_matches_byte_by_byte() {
        let special = [0x00, 0x1f, b'"', b'\\'];
        let plain = [
            0x20, 0x21, 0x7f, 0x80, 0xff, b'a', b'/', 0x5b, 0x5d, 0x23, 0x3c,
        ];
        for len in 0..20 {
            for at in 0..len {
                for &p in &plain {
                    let mut v = vec![b'x'; len];
                    v[at] = p;
                    assert!(!needs_escape(&v), "{v:?}");
                }
                for &c in &special {
                    let mut v = vec![0xc3; len];
                    v[at] = c;
                    assert!(needs_escape(&v), "{v:?}");
                }
            }
        }
    }

    #[test]
    fn merged_keys_write_as_if_inserted() {
        let id = "new-id";
        let rt = "Patient";
        for keys in [
            &[][..],
            &["active"],
            &["id", "zeta"],
            &["a", "id", "resourceType", "z"],
        ] {
            let mut m = Map::new();
            for k in keys {
                m.insert(k, Value::Str("old"));
            }
            let mut merged = Vec::new();
            m.write_json_with(&[("id", id), ("resourceType", rt)], &mut merged);
            let mut inserted = m.clone();
            inserted.insert("id", Value::Str(id));
            inserted.insert("resourceType", Value::Str(rt));
            let mut expected = Vec::new();
            inserted.write_json(&mut expected);
            assert_eq!(merged, expected, "{keys:?}");
        }
        let mut parts = Vec::new();
        write_str_parts(&mut parts, &["Patient", "?", "identifier=a|\"b\""]);
        assert_eq!(parts, br#""Patient?identifier=a|\"b\"""#);
    }

    #[test]
    fn writes_like_serde_json() {
        let mut m = Map::new();
        m.insert("omega", json!("a\"b\n\u{1}é\u{7f}\r\t\u{8}\u{c}\u{1f}"));
        m.insert("alpha", json!({ "b": [1_i64, true, null], "a": "x" }));
        m.insert("mid", Value::Str("y"));
        m.insert("zeta", json!("replaced \\ / \t"));
        let ours = serde_json::to_string(&m).expect("json");
        let mut written = Vec::new();
        m.write_json(&mut written);
        assert_eq!(String::from_utf8(written).expect("utf-8"), ours);
        let theirs = serde_json::to_string(&Value::Object(m.clone()).into_serde()).expect("json");
        assert_eq!(ours, theirs);
        assert!(ours.starts_with("{\"alpha\":{\"a\":\"x\",\"b\":[1,true,null]},\"mid\""));
        let v = Value::Object(m);
        assert_eq!(v.pointer("/alpha/b/1"), Some(&Value::Bool(true)));
        assert_eq!(v["mid"], Value::Str("y"));
        assert!(v["absent"].is_null());
    }
}
