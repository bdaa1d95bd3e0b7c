//! Deterministic ids: name-based UUIDs (the layout of RFC 9562 version 8) from SHA-256, so the
//! same document gives the same resource ids, and a resource that carries a CDA `id` gets the
//! same FHIR id in every document that mentions it.

use sha2::{Digest, Sha256};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A UUID string from the SHA-256 of `parts` joined by `|`.
pub(crate) fn uuid_from(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b"|");
        }
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8 (custom, name-based)
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let mut out = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(x >> 4)]));
        out.push(char::from(HEX[usize::from(x & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn stable_and_distinct() {
        let a = super::uuid_from(&["Patient", "1.2.3|42"]);
        assert_eq!(a, super::uuid_from(&["Patient", "1.2.3|42"]));
        assert_ne!(a, super::uuid_from(&["Patient", "1.2.3|43"]));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
    }
}
