//! JSON Web Tokens signed with ES384 or RS384 (RFC 7515/7519), and JSON Web Keys (RFC 7517).
//!
//! Written on `ring` (the crypto backend of the whole tree) rather than on a JWT crate: the
//! server needs only two algorithms, and pinning them here is simpler to audit than a
//! general library's algorithm negotiation. A token is verified against one key with one
//! algorithm: `none`, `HS*` and any algorithm other than the key's are refused before any
//! signature check.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Value, json};

use crate::error::AuthError;

/// The longest token accepted (bytes); longer ones are refused unparsed.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A signature algorithm this server signs or checks with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
}

impl Alg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es384 => "ES384",
            Self::Rs384 => "RS384",
        }
    }

    /// The algorithm named `name`, if supported (exact, case-sensitive).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ES384" => Some(Self::Es384),
            "RS384" => Some(Self::Rs384),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    /// An uncompressed P-384 point (0x04 ‖ x ‖ y).
    Ec(Vec<u8>),
    /// Modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// A public key that checks signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    alg: Alg,
    kid: Option<String>,
    material: Material,
}

fn b64_field(jwk: &Value, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(jwk.get(name)?.as_str()?.trim_end_matches('='))
        .ok()
}

impl PublicKey {
    /// A key from a JWK: `kty` `EC` with `crv` `P-384`, or `kty` `RSA` (2048 bits or more).
    /// A JWK whose `alg` or `use` says it is not for ES384/RS384 signatures is `None`.
    pub fn from_jwk(jwk: &Value) -> Option<Self> {
        let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
        if jwk
            .get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            return None;
        }
        let (alg, material) = match jwk.get("kty")?.as_str()? {
            "EC" => {
                if jwk.get("crv")?.as_str()? != "P-384" {
                    return None;
                }
                let (x, y) = (b64_field(jwk, "x")?, b64_field(jwk, "y")?);
                if x.len() != 48 || y.len() != 48 {
                    return None;
                }
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                (Alg::Es384, Material::Ec(point))
            }
            "RSA" => {
                let strip = |mut v: Vec<u8>| {
                    let zeros = v.iter().take_while(|b| **b == 0).count();
                    v.drain(..zeros);
                    v
                };
                let n = strip(b64_field(jwk, "n")?);
                let e = strip(b64_field(jwk, "e")?);
                if n.len() < 256 || e.is_empty() {
                    return None;
                }
                (Alg::Rs384, Material::Rsa { n, e })
            }
            _ => return None,
        };
        if let Some(declared) = jwk.get("alg").and_then(Value::as_str)
            && declared != alg.as_str()
        {
            return None;
        }
        Some(Self { alg, kid, material })
    }

    /// The algorithm this key checks.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The key id, if the JWK had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether `sig` is a valid `alg` signature of `message` by this key.
    pub fn verify(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        if alg != self.alg {
            return false;
        }
        match &self.material {
            Material::Ec(point) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            Material::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA384, message, sig)
                .is_ok(),
        }
    }

    /// The public JWK (without `kid`, `alg`, `use`), members in RFC 7638 order.
    fn bare_jwk(&self) -> Value {
        match &self.material {
            Material::Ec(point) => json!({
                "crv": "P-384",
                "kty": "EC",
                "x": URL_SAFE_NO_PAD.encode(point.get(1..49).unwrap_or_default()),
                "y": URL_SAFE_NO_PAD.encode(point.get(49..).unwrap_or_default()),
            }),
            Material::Rsa { n, e } => json!({
                "e": URL_SAFE_NO_PAD.encode(e),
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(n),
            }),
        }
    }

    /// The RFC 7638 thumbprint (SHA-256, base64url).
    pub fn thumbprint(&self) -> String {
        crate::secret::digest(&self.bare_jwk().to_string())
    }

    /// The public JWK with `kid`, `alg` and `use`.
    pub fn to_jwk(&self) -> Value {
        let mut jwk = self.bare_jwk();
        if let Some(o) = jwk.as_object_mut() {
            o.insert("alg".into(), self.alg.as_str().into());
            o.insert("use".into(), "sig".into());
            if let Some(kid) = &self.kid {
                o.insert("kid".into(), kid.clone().into());
            }
        }
        jwk
    }
}

/// The keys of a JWK Set that this server can use (others are skipped).
pub fn keys_of_set(set: &Value) -> Vec<PublicKey> {
    set.get("keys")
        .and_then(Value::as_array)
        .map(|keys| keys.iter().filter_map(PublicKey::from_jwk).collect())
        .unwrap_or_default()
}

enum Pair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// The server's private key: signs access tokens and ID tokens.
pub struct SigningKey {
    pair: Pair,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.public.alg)
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

fn key_err(what: impl std::fmt::Display) -> AuthError {
    AuthError::Key(what.to_string())
}

impl SigningKey {
    fn from_pair(pair: Pair) -> Self {
        let (alg, material) = match &pair {
            Pair::Ec(k) => (Alg::Es384, Material::Ec(k.public_key().as_ref().to_vec())),
            Pair::Rsa(k) => {
                let c: RsaPublicKeyComponents<Vec<u8>> = k.public().into();
                (Alg::Rs384, Material::Rsa { n: c.n, e: c.e })
            }
        };
        let mut public = PublicKey {
            alg,
            kid: None,
            material,
        };
        public.kid = Some(public.thumbprint());
        Self { pair, public }
    }

    /// A key from PEM: a PKCS#8 P-384 EC key (ES384) or a PKCS#8 or PKCS#1 RSA key (RS384).
    pub fn from_pem(pem: &[u8]) -> Result<Self, AuthError> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| key_err(format!("no private key in the PEM: {e}")))?;
        let rng = SystemRandom::new();
        let pair = match &der {
            PrivateKeyDer::Pkcs8(p) => {
                let bytes = p.secret_pkcs8_der();
                match EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                    bytes,
                    &rng,
                ) {
                    Ok(k) => Pair::Ec(k),
                    Err(ec) => Pair::Rsa(RsaKeyPair::from_pkcs8(bytes).map_err(|rsa| {
                        key_err(format!(
                            "a PKCS#8 key that is neither P-384 EC ({ec}) nor RSA ({rsa})"
                        ))
                    })?),
                }
            }
            PrivateKeyDer::Pkcs1(p) => Pair::Rsa(
                RsaKeyPair::from_der(p.secret_pkcs1_der())
                    .map_err(|e| key_err(format!("RSA key refused: {e}")))?,
            ),
            _ => {
                return Err(key_err(
                    "an EC key must be PKCS#8 (openssl pkcs8 -topk8 -nocrypt) on P-384",
                ));
            }
        };
        Ok(Self::from_pair(pair))
    }

    /// A new P-384 key, and its PKCS#8 PEM.
    pub fn generate() -> Result<(Self, String), AuthError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            .map_err(|_| key_err("cannot generate a P-384 key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            doc.as_ref(),
            &rng,
        )
        .map_err(|e| key_err(format!("generated key refused: {e}")))?;
        let body = STANDARD.encode(doc.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok((Self::from_pair(Pair::Ec(pair)), pem))
    }

    /// The key in `configured` if given; else the key file `generated` (in the data
    /// directory), created with mode 0600 on first use.
    pub fn load_or_generate(
        configured: Option<&Path>,
        generated: &Path,
    ) -> Result<Self, AuthError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| key_err(format!("{}: {e}", path.display())))
        };
        if let Some(path) = configured {
            return Self::from_pem(&read(path)?);
        }
        if generated.exists() {
            return Self::from_pem(&read(generated)?);
        }
        if let Some(dir) = generated.parent() {
            std::fs::create_dir_all(dir).map_err(|e| key_err(format!("{}: {e}", dir.display())))?;
        }
        let (key, pem) = Self::generate()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        match options.open(generated) {
            Ok(mut file) => {
                file.write_all(pem.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| key_err(format!("{}: {e}", generated.display())))?;
                tracing::info!(path = %generated.display(), "generated the token signing key");
                Ok(key)
            }
            // another process created it first: use theirs
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::from_pem(&read(generated)?)
            }
            Err(e) => Err(key_err(format!("{}: {e}", generated.display()))),
        }
    }

    /// The algorithm of this key.
    pub fn alg(&self) -> Alg {
        self.public.alg
    }

    /// The key id (its RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        self.public.kid.as_deref().unwrap_or_default()
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// A signed JWT with `claims` (a JSON object) and a header `{alg, kid, typ}`.
    pub fn sign(&self, typ: &str, claims: &Value) -> Result<String, AuthError> {
        let header = json!({"alg": self.alg().as_str(), "kid": self.kid(), "typ": typ});
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        sign_input(self, &token)
    }
}

/// `signing_input` (`header.payload`, base64url) with this key's signature appended: for
/// callers that build their own header (client assertions in tests and tools).
pub fn sign_input(key: &SigningKey, signing_input: &str) -> Result<String, AuthError> {
    let mut token = signing_input.to_owned();
    {
        let rng = SystemRandom::new();
        let sig = match &key.pair {
            Pair::Ec(k) => k
                .sign(&rng, token.as_bytes())
                .map_err(|_| key_err("ECDSA signing failed"))?
                .as_ref()
                .to_vec(),
            Pair::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA384,
                    &rng,
                    token.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| key_err("RSA signing failed"))?;
                sig
            }
        };
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(token)
    }
}

/// A NumericDate claim value in whole seconds (an integer, or a finite number truncated).
pub fn numeric_date(value: Option<&Value>) -> Option<i64> {
    let v = value?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// A JWT split and decoded, its signature not checked yet.
#[derive(Debug, Clone)]
pub struct Unverified<'a> {
    /// The `alg` of the header, as sent.
    pub alg: String,
    /// The `kid` of the header.
    pub kid: Option<String>,
    /// The claims (a JSON object).
    pub claims: serde_json::Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

impl<'a> Unverified<'a> {
    /// Splits and decodes a compact JWS; `Err` says why it is not one.
    pub fn parse(token: &'a str) -> Result<Self, String> {
        if token.len() > MAX_TOKEN_LEN {
            return Err("token too long".into());
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a compact JWS (three parts)".into());
        };
        let decode = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| format!("{what} is not base64url"))
        };
        let header: Value = serde_json::from_slice(&decode(h, "header")?)
            .map_err(|_| "header is not JSON".to_owned())?;
        let claims: Value = serde_json::from_slice(&decode(c, "payload")?)
            .map_err(|_| "payload is not JSON".to_owned())?;
        let Value::Object(claims) = claims else {
            return Err("claims are not a JSON object".into());
        };
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or("header has no alg")?
            .to_owned();
        if header.get("crit").is_some() {
            return Err("critical header extensions are not supported".into());
        }
        let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
        let signing_input = token.get(..h.len() + 1 + c.len()).ok_or("bad token")?;
        Ok(Self {
            alg,
            kid,
            claims,
            signing_input,
            signature: decode(s, "signature")?,
        })
    }

    /// Whether the header's algorithm is the key's and the signature is the key's.
    pub fn verify(&self, key: &PublicKey) -> bool {
        Alg::parse(&self.alg)
            .is_some_and(|alg| key.verify(alg, self.signing_input.as_bytes(), &self.signature))
    }

    /// A string claim.
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A NumericDate claim, in whole seconds.
    pub fn time_claim(&self, name: &str) -> Option<i64> {
        numeric_date(self.claims.get(name))
    }

    /// Whether the `aud` claim is `expected` or an array holding it.
    pub fn has_audience(&self, expected: &str) -> bool {
        match self.claims.get("aud") {
            Some(Value::String(s)) => s == expected,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(expected)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_refusals() {
        let (key, pem) = SigningKey::generate().unwrap();
        let again = SigningKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(key.public(), again.public());
        let token = key.sign("JWT", &json!({"sub": "x"})).unwrap();
        let t = Unverified::parse(&token).unwrap();
        assert!(t.verify(key.public()));
        assert_eq!(t.str_claim("sub"), Some("x"));
        let jwk = key.public().to_jwk();
        let from_jwk = PublicKey::from_jwk(&jwk).unwrap();
        assert!(t.verify(&from_jwk));
        let (other, _) = SigningKey::generate().unwrap();
        assert!(!t.verify(other.public()));
        // tamper the payload
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"sub":"y"}"#);
        parts[1] = &forged;
        let forged = parts.join(".");
        assert!(!Unverified::parse(&forged).unwrap().verify(key.public()));
        // alg none
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#)
        );
        assert!(!Unverified::parse(&none).unwrap().verify(key.public()));
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(Unverified::parse(bad).is_err());
        }
    }
}
