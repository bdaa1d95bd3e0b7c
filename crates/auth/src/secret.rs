//! Random values, SHA-256 digests of secrets, and argon2id password hashes.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::AuthError;

/// `n` random bytes from the operating system, base64url without padding.
pub fn random_token(n: usize) -> Result<String, AuthError> {
    let mut bytes = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthError::Key("the system random generator failed".to_owned()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of `value`, base64url without padding: the key under which a secret is stored.
pub fn digest(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        value.as_bytes(),
    ))
}

/// Compares two digests in constant time.
pub fn same_digest(a: &str, b: &str) -> bool {
    #[allow(deprecated)]
    ring::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// Hashes a password to an argon2id PHC string (random salt, the crate's default cost).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Password(e.to_string()))
}

/// A hash of no one's password, verified against when the user does not exist, so a
/// failed login takes about as long whether or not the name is known.
static DUMMY_HASH: LazyLock<Option<String>> =
    LazyLock::new(|| hash_password("plexus-no-such-user").ok());

/// Whether `password` matches the PHC string `hash` (`None`: no such user or no password;
/// the work of a verification is done anyway).
pub fn verify_password(password: &str, hash: Option<&str>) -> bool {
    let (hash, real) = match hash {
        Some(h) => (h.to_owned(), true),
        None => (DUMMY_HASH.clone().unwrap_or_default(), false),
    };
    let Ok(parsed) = PasswordHash::new(&hash) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// The PKCE S256 challenge of a verifier: base64url(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    digest(verifier)
}

/// Whether `s` is a PKCE code verifier: 43 to 128 unreserved characters (RFC 7636 §4.1).
pub fn is_code_verifier(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_pkce() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", Some(&h)));
        assert!(!verify_password("s3cret!", Some(&h)));
        assert!(!verify_password("s3cret", None));
        assert!(!verify_password("x", Some("not a phc string")));
        // RFC 7636 appendix B
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_code_verifier(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!is_code_verifier("short"));
        assert_eq!(random_token(32).unwrap().len(), 43);
        assert!(same_digest(&digest("a"), &digest("a")));
        assert!(!same_digest(&digest("a"), &digest("b")));
    }
}
