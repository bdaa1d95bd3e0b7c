//! Deterministic resource ids: name-based UUIDs (RFC 9562 version 8, from SHA-256) of the
//! stable identifiers a resource is known by, so the same message always gives the same ids.

use sha2::{Digest, Sha256};

/// The UUID (`xxxxxxxx-xxxx-8xxx-yxxx-xxxxxxxxxxxx`) named by `parts`.
pub fn name_uuid(parts: &[&str]) -> String {
    name_uuid_of(
        parts.first().copied().unwrap_or_default(),
        parts.get(1..).unwrap_or_default(),
    )
}

/// [`name_uuid`] of `first` followed by `rest` (without gathering them in a vector first).
pub fn name_uuid_of(first: &str, rest: &[&str]) -> String {
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
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(HEX[usize::from(byte >> 4)]));
        s.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_versioned_and_distinct() {
        let a = name_uuid(&["Patient", "MRN|1"]);
        assert_eq!(a, name_uuid(&["Patient", "MRN|1"]));
        assert_ne!(a, name_uuid(&["Patient", "MRN|2"]));
        // length-prefixed parts: ("ab","c") is not ("a","bc")
        assert_ne!(name_uuid(&["ab", "c"]), name_uuid(&["a", "bc"]));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }
}
