//! Deterministic resource ids: name-based UUIDs (RFC 9562 version 8, from SHA-256) of the
//! stable identifiers a resource is known by, so the same message always gives the same ids.

use sha2::{Digest, Sha256};

/// A UUID's text, held on the stack (a conversion names a few dozen and keeps only some).
#[derive(Debug, Clone, Copy)]
pub struct Uuid([u8; 36]);

impl Uuid {
    /// The text's bytes (no UTF-8 check: for comparing and writing).
    pub fn as_bytes(&self) -> &[u8; 36] {
        &self.0
    }

    /// The text, `xxxxxxxx-xxxx-8xxx-yxxx-xxxxxxxxxxxx`.
    pub fn as_str(&self) -> &str {
        // only ASCII hex digits and dashes are written
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::ops::Deref for Uuid {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

/// The UUID (`xxxxxxxx-xxxx-8xxx-yxxx-xxxxxxxxxxxx`) named by `parts`.
pub fn name_uuid(parts: &[&str]) -> Uuid {
    name_uuid_of(
        parts.first().copied().unwrap_or_default(),
        parts.get(1..).unwrap_or_default(),
    )
}

/// [`name_uuid`] of `first` followed by `rest` (without gathering them in a vector first).
pub fn name_uuid_of(first: &str, rest: &[&str]) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"plexus:v2-to-fhir:");
    for p in std::iter::once(&first).chain(rest) {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let mut s = [b'-'; 36];
    let mut at = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        s[at] = HEX[usize::from(byte >> 4)];
        s[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    Uuid(s)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_versioned_and_distinct() {
        let a = name_uuid(&["Patient", "MRN|1"]);
        let a = a.as_str();
        assert_eq!(a, name_uuid(&["Patient", "MRN|1"]).as_str());
        assert_ne!(a, name_uuid(&["Patient", "MRN|2"]).as_str());
        // length-prefixed parts: ("ab","c") is not ("a","bc")
        assert_ne!(
            name_uuid(&["ab", "c"]).as_str(),
            name_uuid(&["a", "bc"]).as_str()
        );
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }
}
