//! SMART on FHIR scopes (App Launch 1.0 and 2.x) and what they allow.
//!
//! A token carries a [`ScopeSet`]: resource scopes such as `patient/Observation.rs`,
//! `user/*.read` or `patient/Observation.rs?category=laboratory`, and other scopes
//! (`openid`, `fhirUser`, `launch/patient`, `offline_access`, …). Version 1 permissions
//! (`read`, `write`, `*`) are read as their version 2 equivalents (`rs`, `cud`, `cruds`).
//!
//! [`ScopeSet::access`] answers, for one resource type and one [`Perm`], whether any scope
//! grants it and under which restrictions: a patient-level scope confines the caller to the
//! patient compartment of the token's patient, a granular scope to resources that match its
//! query. A resource is visible when it satisfies at least one granting scope.

use std::fmt;
use std::fmt::Write as _;

/// Who a scope speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// `patient/`: the data of the patient in the token's launch context.
    Patient,
    /// `user/`: whatever the signed-in user may see.
    User,
    /// `system/`: a backend service, no user.
    System,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::User => "user",
            Self::System => "system",
        }
    }
}

/// One SMART v2 permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Perm {
    /// `c`: create.
    Create,
    /// `r`: read and vread (and an instance's history).
    Read,
    /// `u`: update and patch.
    Update,
    /// `d`: delete.
    Delete,
    /// `s`: search (and type or system history).
    Search,
}

impl Perm {
    const ALL: [Self; 5] = [
        Self::Create,
        Self::Read,
        Self::Update,
        Self::Delete,
        Self::Search,
    ];

    fn bit(self) -> u8 {
        match self {
            Self::Create => 1,
            Self::Read => 2,
            Self::Update => 4,
            Self::Delete => 8,
            Self::Search => 16,
        }
    }

    fn letter(self) -> char {
        match self {
            Self::Create => 'c',
            Self::Read => 'r',
            Self::Update => 'u',
            Self::Delete => 'd',
            Self::Search => 's',
        }
    }
}

/// A bad scope string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope `{scope}`: {reason}")]
pub struct ScopeError {
    /// The offending scope.
    pub scope: String,
    /// Why it is refused.
    pub reason: String,
}

/// One resource scope: `level/Type.perms[?query]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// `patient`, `user` or `system`.
    pub level: Level,
    /// The resource type, or `None` for `*`.
    pub resource_type: Option<String>,
    perms: u8,
    /// Granular restriction (`?category=laboratory`), as decoded name/value pairs.
    pub query: Vec<(String, String)>,
    /// Written in the version 1 syntax (`read`/`write`).
    pub v1: bool,
}

impl Scope {
    /// Whether this scope grants `perm`.
    pub fn grants(&self, perm: Perm) -> bool {
        self.perms & perm.bit() != 0
    }

    /// Whether this scope covers `resource_type`.
    pub fn covers(&self, resource_type: &str) -> bool {
        self.resource_type
            .as_deref()
            .is_none_or(|t| t == resource_type)
    }

    /// Whether everything `other` grants, this scope grants too (same or wider level
    /// is not assumed: levels must be equal).
    pub fn includes(&self, other: &Scope) -> bool {
        self.level == other.level
            && (self.resource_type.is_none() || self.resource_type == other.resource_type)
            && other.perms & !self.perms == 0
            && self.query.iter().all(|q| other.query.contains(q))
    }

    fn parse(text: &str) -> Result<Option<Self>, ScopeError> {
        let err = |reason: &str| ScopeError {
            scope: text.to_owned(),
            reason: reason.to_owned(),
        };
        let Some((level, rest)) = text.split_once('/') else {
            return Ok(None);
        };
        let level = match level {
            "patient" => Level::Patient,
            "user" => Level::User,
            "system" => Level::System,
            _ => return Ok(None),
        };
        // `launch/patient` and `launch/encounter` are not resource scopes.
        let (body, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let Some((ty, perms)) = body.rsplit_once('.') else {
            return Err(err("expected `Type.permissions`"));
        };
        let resource_type = match ty {
            "*" => None,
            t if !t.is_empty()
                && t.starts_with(|c: char| c.is_ascii_uppercase())
                && t.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                Some(t.to_owned())
            }
            _ => return Err(err("the resource type must be `*` or a FHIR resource type")),
        };
        let (perms, v1) = match perms {
            "read" => (Perm::Read.bit() | Perm::Search.bit(), true),
            "write" => (
                Perm::Create.bit() | Perm::Update.bit() | Perm::Delete.bit(),
                true,
            ),
            "*" => (0x1f, true),
            p => (parse_v2_perms(p).ok_or_else(|| {
                err("permissions must be `read`, `write`, `*` or letters of `cruds` in that order")
            })?, false),
        };
        let query = match query {
            None => Vec::new(),
            Some(_) if v1 => return Err(err("a query restriction needs the v2 syntax")),
            Some("") => return Err(err("empty query restriction")),
            Some(q) => {
                let pairs: Vec<(String, String)> = form_pairs(q);
                if pairs.iter().any(|(k, v)| k.is_empty() || v.is_empty()) {
                    return Err(err("a query restriction is `name=value` pairs"));
                }
                pairs
            }
        };
        Ok(Some(Self {
            level,
            resource_type,
            perms,
            query,
            v1,
        }))
    }
}

fn parse_v2_perms(p: &str) -> Option<u8> {
    if p.is_empty() {
        return None;
    }
    let mut bits = 0u8;
    let mut next = 0usize;
    for c in p.chars() {
        let i = Perm::ALL.iter().position(|perm| perm.letter() == c)?;
        if i < next {
            return None;
        }
        bits |= Perm::ALL[i].bit();
        next = i + 1;
    }
    Some(bits)
}

/// `a=b&c=d` with percent-decoding and `+` as space.
fn form_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}.",
            self.level.as_str(),
            self.resource_type.as_deref().unwrap_or("*")
        )?;
        if self.v1 {
            let read = Perm::Read.bit() | Perm::Search.bit();
            let write = Perm::Create.bit() | Perm::Update.bit() | Perm::Delete.bit();
            let word = match self.perms {
                p if p == read => "read",
                p if p == write => "write",
                _ => "*",
            };
            return f.write_str(word);
        }
        for perm in Perm::ALL {
            if self.grants(perm) {
                write!(f, "{}", perm.letter())?;
            }
        }
        for (i, (k, v)) in self.query.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(f, "{sep}{}={}", encode(k), encode(v))?;
        }
        Ok(())
    }
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~|:/,".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The scopes of a token or a request: resource scopes and the others (`openid`,
/// `fhirUser`, `launch`, `launch/patient`, `offline_access`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet {
    /// The resource scopes, in the order given.
    pub resources: Vec<Scope>,
    /// Every other scope, in the order given.
    pub other: Vec<String>,
}

/// Where a granted access is confined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    /// Only resources in this patient's compartment (`Patient/{id}`'s id).
    pub patient: Option<String>,
    /// Only resources that match this search (name/value pairs of a FHIR query).
    pub query: Vec<(String, String)>,
}

/// What a [`ScopeSet`] allows for one resource type and permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No scope grants it.
    Deny,
    /// A scope grants it without restriction.
    All,
    /// Only resources that satisfy at least one of these.
    Restricted(Vec<Restriction>),
}

impl Decision {
    /// Whether anything at all is allowed.
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Self::Deny)
    }
}

impl ScopeSet {
    /// Parses a space-separated scope string. Unknown non-resource scopes are kept in
    /// [`ScopeSet::other`]; malformed resource scopes are errors.
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        let mut set = Self::default();
        for word in text.split_ascii_whitespace() {
            match Scope::parse(word)? {
                Some(scope) => {
                    if !set.resources.contains(&scope) {
                        set.resources.push(scope);
                    }
                }
                None => {
                    if !set.other.iter().any(|o| o == word) {
                        set.other.push(word.to_owned());
                    }
                }
            }
        }
        Ok(set)
    }

    /// Whether the non-resource scope `name` (`openid`, `launch/patient`, …) is present.
    pub fn has(&self, name: &str) -> bool {
        self.other.iter().any(|o| o == name)
    }

    /// Whether every scope of `other` is granted by this set: a refresh or a client's
    /// request may narrow scopes, never widen them.
    pub fn includes(&self, other: &ScopeSet) -> bool {
        other
            .resources
            .iter()
            .all(|s| self.resources.iter().any(|mine| mine.includes(s)))
            && other.other.iter().all(|o| self.has(o))
    }

    /// The scopes of `requested` that this set (what a client is registered for) allows:
    /// resource scopes this set includes, other scopes this set names. What is dropped is
    /// simply not granted, as OAuth allows.
    #[must_use]
    pub fn grantable(&self, requested: &ScopeSet) -> ScopeSet {
        ScopeSet {
            resources: requested
                .resources
                .iter()
                .filter(|s| self.resources.iter().any(|mine| mine.includes(s)))
                .cloned()
                .collect(),
            other: requested
                .other
                .iter()
                .filter(|o| self.has(o))
                .cloned()
                .collect(),
        }
    }

    /// Whether any resource scope is at `level`.
    pub fn has_level(&self, level: Level) -> bool {
        self.resources.iter().any(|s| s.level == level)
    }

    /// What these scopes allow for `perm` on `resource_type`, for a token whose patient
    /// context is `patient` (patient-level scopes grant nothing without one).
    pub fn access(&self, resource_type: &str, perm: Perm, patient: Option<&str>) -> Decision {
        let mut restrictions = Vec::new();
        for scope in &self.resources {
            if !scope.grants(perm) || !scope.covers(resource_type) {
                continue;
            }
            let confined_to = match scope.level {
                Level::Patient => match patient {
                    Some(p) => Some(p.to_owned()),
                    None => continue,
                },
                Level::User | Level::System => None,
            };
            if confined_to.is_none() && scope.query.is_empty() {
                return Decision::All;
            }
            let r = Restriction {
                patient: confined_to,
                query: scope.query.clone(),
            };
            if !restrictions.contains(&r) {
                restrictions.push(r);
            }
        }
        if restrictions.is_empty() {
            Decision::Deny
        } else {
            Decision::Restricted(restrictions)
        }
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in self
            .resources
            .iter()
            .map(ToString::to_string)
            .chain(self.other.iter().cloned())
        {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(&s)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> ScopeSet {
        ScopeSet::parse(s).unwrap()
    }

    #[test]
    fn v1_and_v2_mean_the_same() {
        let v1 = set("patient/Observation.read");
        let v2 = set("patient/Observation.rs");
        assert_eq!(v1.resources[0].perms, v2.resources[0].perms);
        assert!(v1.includes(&v2) && v2.includes(&v1));
        assert_eq!(v1.to_string(), "patient/Observation.read");
        assert_eq!(set("user/*.write").resources[0].perms, 1 | 4 | 8);
        assert_eq!(set("system/*.*").resources[0].perms, 0x1f);
    }

    #[test]
    fn v2_letters_must_be_in_order() {
        assert!(ScopeSet::parse("patient/Observation.sr").is_err());
        assert!(ScopeSet::parse("patient/Observation.rr").is_err());
        assert!(ScopeSet::parse("patient/Observation.x").is_err());
        assert!(ScopeSet::parse("patient/Observation.").is_err());
        assert!(ScopeSet::parse("patient/observation.rs").is_err());
        assert!(ScopeSet::parse("patient/Observation.read?category=x").is_err());
        assert!(ScopeSet::parse("patient/Observation.rs?").is_err());
        assert!(ScopeSet::parse("patient/Observation.rs?category").is_err());
        assert_eq!(set("patient/Observation.cruds").resources[0].perms, 0x1f);
    }

    #[test]
    fn other_scopes_are_kept() {
        let s = set("openid fhirUser launch/patient offline_access patient/*.rs");
        assert!(s.has("openid") && s.has("launch/patient") && s.has("offline_access"));
        assert_eq!(s.resources.len(), 1);
        assert_eq!(
            s.to_string(),
            "patient/*.rs openid fhirUser launch/patient offline_access"
        );
    }

    #[test]
    fn granular_query_restricts() {
        let s = set("patient/Observation.rs?category=laboratory");
        assert_eq!(
            s.access("Observation", Perm::Search, Some("p1")),
            Decision::Restricted(vec![Restriction {
                patient: Some("p1".into()),
                query: vec![("category".into(), "laboratory".into())],
            }])
        );
        assert_eq!(s.to_string(), "patient/Observation.rs?category=laboratory");
        // Encoded values decode, and print back encoded.
        let s = set("user/Observation.rs?code=http%3A%2F%2Floinc.org%7C1234-5");
        assert_eq!(s.resources[0].query[0].1, "http://loinc.org|1234-5");
    }

    #[test]
    fn access_decisions() {
        let s = set("patient/Observation.rs user/Patient.r");
        assert_eq!(s.access("Patient", Perm::Read, Some("p1")), Decision::All);
        assert_eq!(
            s.access("Patient", Perm::Search, Some("p1")),
            Decision::Deny
        );
        assert_eq!(
            s.access("Condition", Perm::Read, Some("p1")),
            Decision::Deny
        );
        assert_eq!(
            s.access("Observation", Perm::Read, None),
            Decision::Deny,
            "a patient scope without a patient context grants nothing"
        );
        assert!(matches!(
            s.access("Observation", Perm::Read, Some("p1")),
            Decision::Restricted(r) if r[0].patient.as_deref() == Some("p1")
        ));
        assert_eq!(
            s.access("Observation", Perm::Create, Some("p1")),
            Decision::Deny
        );
        // An unrestricted scope wins over a restricted one.
        let s = set("patient/*.rs system/Observation.rs");
        assert_eq!(
            s.access("Observation", Perm::Search, Some("p1")),
            Decision::All
        );
    }

    #[test]
    fn narrowing_and_escalation() {
        let granted = set("patient/*.read offline_access");
        assert!(granted.includes(&set("patient/Observation.rs")));
        assert!(granted.includes(&set("patient/Observation.rs?category=vital-signs")));
        assert!(!granted.includes(&set("patient/Observation.c")));
        assert!(!granted.includes(&set("user/Observation.rs")));
        assert!(!granted.includes(&set("openid")));
        let narrow = set("patient/Observation.rs?category=laboratory");
        assert!(!narrow.includes(&set("patient/Observation.rs")));
        let g = granted.grantable(&set(
            "patient/Observation.rs user/*.cruds openid offline_access",
        ));
        assert_eq!(g.to_string(), "patient/Observation.rs offline_access");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(s in "\\PC{0,60}") {
            if let Ok(parsed) = ScopeSet::parse(&s) {
                let again = ScopeSet::parse(&parsed.to_string()).unwrap();
                proptest::prop_assert_eq!(again, parsed);
            }
        }
    }
}
