//! Text taken from the message: held inline when short (most HL7 values — codes, names,
//! identifiers, dates — are under 30 bytes), so reading a value into a resource does not
//! allocate, and dropping the resource does not free it.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

/// How many bytes a [`Text`] holds without allocating (with its length and the enum's tag, a
/// `Text` is as large as a `String` plus 8 bytes, and a [`crate::tree::Value`] no larger).
const INLINE: usize = 30;

/// An immutable text: inline up to 30 bytes, else a `String`.
#[derive(Clone)]
pub enum Text {
    /// The length and the bytes (UTF-8, only `..len` used).
    Inline(u8, [u8; INLINE]),
    /// A longer text.
    Heap(String),
}

impl Text {
    /// A copy of `s`: inline when it fits.
    pub fn new(s: &str) -> Self {
        match u8::try_from(s.len()) {
            Ok(len) if s.len() <= INLINE => {
                let mut buf = [0u8; INLINE];
                buf[..s.len()].copy_from_slice(s.as_bytes());
                Text::Inline(len, buf)
            }
            _ => Text::Heap(s.to_owned()),
        }
    }

    /// A copy of ASCII bytes (any other byte is replaced: the caller checked they are ASCII).
    pub fn from_ascii(bytes: &[u8]) -> Self {
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE && bytes.is_ascii() => {
                let mut buf = [0u8; INLINE];
                buf[..bytes.len()].copy_from_slice(bytes);
                Text::Inline(len, buf)
            }
            _ => Text::Heap(String::from_utf8_lossy(bytes).into_owned()),
        }
    }

    /// The concatenation of `parts`: inline when it fits.
    pub fn concat(parts: &[&str]) -> Self {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        match u8::try_from(len) {
            Ok(n) if len <= INLINE => {
                let mut buf = [0u8; INLINE];
                let mut at = 0;
                for p in parts {
                    buf[at..at + p.len()].copy_from_slice(p.as_bytes());
                    at += p.len();
                }
                Text::Inline(n, buf)
            }
            _ => Text::Heap(parts.concat()),
        }
    }

    /// The text of a decoded value: inline when it fits, else the decoded `String` kept
    /// (no second copy).
    pub fn from_cow(s: Cow<'_, str>) -> Self {
        match s {
            Cow::Owned(s) if s.len() > INLINE => Text::Heap(s),
            s => Text::new(&s),
        }
    }

    /// The bytes (UTF-8), without checking them again: what the JSON writer copies.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Text::Inline(len, buf) => &buf[..usize::from(*len)],
            Text::Heap(s) => s.as_bytes(),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            // made from a `&str` only: always valid, checked again because this crate has no
            // unsafe code
            Text::Inline(len, buf) => std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or(""),
            Text::Heap(s) => s,
        }
    }

    /// The text as a `String`.
    pub fn into_string(self) -> String {
        match self {
            Text::Heap(s) => s,
            t @ Text::Inline(..) => t.as_str().to_owned(),
        }
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::Inline(0, [0; INLINE])
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    /// Keeps the `String` (it is already allocated).
    fn from(s: String) -> Self {
        Text::Heap(s)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::new(s)
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.into_string()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_inline_long_heap_same_text() {
        for s in [
            "",
            "a",
            "é",
            &"x".repeat(30),
            &"y".repeat(31),
            "ü".repeat(15).as_str(),
        ] {
            let t = Text::new(s);
            assert_eq!(t.as_str(), s);
            assert_eq!(t.as_bytes(), s.as_bytes());
            assert_eq!(matches!(t, Text::Inline(..)), s.len() <= INLINE, "{s}");
            assert_eq!(Text::from_cow(Cow::Owned(s.to_owned())), t);
            assert_eq!(t.clone().into_string(), s);
            let mid = (0..=s.len() / 2)
                .rev()
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(0);
            let (a, b) = s.split_at(mid);
            assert_eq!(Text::concat(&[a, "", b]), t);
        }
        assert!(std::mem::size_of::<crate::tree::Value>() <= 32);
    }
}
