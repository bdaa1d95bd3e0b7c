//! Access control: who is calling ([`Authenticator`]), what their SMART scopes allow on each
//! interaction ([`Guard`]), and the record of every access ([`AccessLog`]).
//!
//! The model: a scope grants a permission (`c r u d s`) on a resource type, either for all
//! resources of the type or under restrictions — the patient compartment of the token's
//! patient (patient-level scopes) and/or a search (granular scopes such as
//! `patient/Observation.rs?category=laboratory`). A resource is visible when it satisfies at
//! least one granting scope. Restrictions are enforced with the store's own search: a
//! restricted search gets the restriction's filters added (so paging and totals stay exact),
//! a restricted read is a search for that id under the restriction, and included resources
//! are checked the same way before they are returned. Writes are checked on the resource's
//! content before it is stored (its compartment references and, for granular scopes, its
//! token, string and reference values) and, for updates and deletes, on the stored version.
//!
//! Types outside the Patient compartment (Medication, Practitioner, Organization, …) hold no
//! one patient's data: a patient-level scope grants them subject only to its query.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use auth::Principal;
use auth::scopes::{Decision, Perm, Restriction};
use fhir::index::IndexValue;
use fhir::search::{Filter, Predicate, SearchRequest, Test, TotalMode};
use serde_json::Value;
use store::resources::{Precondition, ResourceWrite, Resources as _, WriteOp};

use crate::error::FhirError;
use crate::rest::FhirState;

/// A boxed future, for the object-safe traits below.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// What the client is told (no secrets, no token contents).
    pub description: String,
}

/// Turns a bearer token into a [`Principal`] (the SMART authorization server's verifier, or
/// an API token lookup).
pub trait Authenticator: Send + Sync {
    /// Verifies `token` (without the `Bearer ` prefix).
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Principal, AuthFailure>>;
}

/// The FHIR interaction of a request, as named in the FHIR specification (and in
/// `AuditEvent.subtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    /// `GET [type]/[id]`.
    Read,
    /// `GET [type]/[id]/_history/[vid]`.
    Vread,
    /// `PUT [type]/[id]`.
    Update,
    /// `PATCH [type]/[id]`.
    Patch,
    /// `DELETE [type]/[id]` or a conditional delete.
    Delete,
    /// `GET [type]/[id]/_history`.
    HistoryInstance,
    /// `GET [type]/_history`.
    HistoryType,
    /// `GET /_history`.
    HistorySystem,
    /// `POST [type]`.
    Create,
    /// `GET [type]?…`, `POST [type]/_search`.
    SearchType,
    /// `GET /?…`.
    SearchSystem,
    /// `POST /` with a batch or transaction Bundle.
    Batch,
    /// `GET /metadata`.
    Capabilities,
    /// `$everything`, `$validate`, …
    Operation,
}

impl Interaction {
    /// The code of <http://hl7.org/fhir/restful-interaction> (`read`, `search-type`, …).
    pub fn code(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Vread => "vread",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::HistoryInstance => "history-instance",
            Self::HistoryType => "history-type",
            Self::HistorySystem => "history-system",
            Self::Create => "create",
            Self::SearchType => "search-type",
            Self::SearchSystem => "search-system",
            Self::Batch => "batch",
            Self::Capabilities => "capabilities",
            Self::Operation => "operation",
        }
    }

    /// The AuditEvent action: C(reate), R(ead), U(pdate), D(elete) or E(xecute).
    pub fn action(self) -> &'static str {
        match self {
            Self::Create => "C",
            Self::Update | Self::Patch => "U",
            Self::Delete => "D",
            Self::Batch | Self::Operation => "E",
            _ => "R",
        }
    }
}

/// One access to the FHIR API, for the audit trail.
#[derive(Debug, Clone)]
pub struct AccessEvent {
    /// The caller, if authenticated.
    pub principal: Option<Arc<Principal>>,
    /// The caller's address.
    pub source: Option<IpAddr>,
    /// The interaction.
    pub interaction: Interaction,
    /// The resource type, if any.
    pub resource_type: Option<String>,
    /// The resource id, if any.
    pub id: Option<String>,
    /// The patient whose data it was, when known (a Patient id).
    pub patient: Option<String>,
    /// The names (never the values) of the search parameters.
    pub params: Vec<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// Why it failed (no PHI).
    pub detail: Option<String>,
}

/// Where access events go (the audit trail). A failure to record makes the request fail:
/// patient data is not served unaudited.
pub trait AccessLog: Send + Sync {
    /// Records `event` durably.
    fn record(&self, event: AccessEvent) -> BoxFuture<'_, Result<(), String>>;
}

/// The access rights of one request.
#[derive(Clone, Default)]
pub struct Guard {
    /// The caller; `None` when unauthenticated.
    pub principal: Option<Arc<Principal>>,
    /// Whether scopes are enforced (false when the server runs without authorization, and
    /// for the server's own internal requests).
    pub enforced: bool,
    /// The caller's address.
    pub source: Option<IpAddr>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("subject", &self.principal.as_ref().map(|p| &p.subject))
            .field("enforced", &self.enforced)
            .finish_non_exhaustive()
    }
}

fn perm_name(perm: Perm) -> &'static str {
    match perm {
        Perm::Create => "create",
        Perm::Read => "read",
        Perm::Update => "update",
        Perm::Delete => "delete",
        Perm::Search => "search",
    }
}

/// The most filters a combination of restrictions may expand to.
const MAX_RESTRICTION_FILTERS: usize = 256;

impl Guard {
    /// No enforcement (a server without authorization, or an internal request).
    pub fn open() -> Self {
        Self::default()
    }

    /// The patient of the caller's launch context.
    pub fn patient(&self) -> Option<&str> {
        self.principal.as_ref().and_then(|p| p.patient.as_deref())
    }

    /// What the caller may do with `perm` on `resource_type`; 403 when nothing.
    pub fn decide(&self, resource_type: &str, perm: Perm) -> Result<Decision, FhirError> {
        if !self.enforced {
            return Ok(Decision::All);
        }
        let Some(principal) = &self.principal else {
            return Err(FhirError::unauthorized("a bearer token is required"));
        };
        match principal.access(resource_type, perm) {
            Decision::Deny => Err(FhirError::forbidden(format!(
                "the token's scopes do not allow {} on {resource_type}",
                perm_name(perm)
            ))),
            d => Ok(d),
        }
    }

    /// Whether the caller may use system-wide interactions (system search and history):
    /// only with an unrestricted scope on every type (`user/*.rs`, `system/*.rs`).
    pub fn require_all_types(&self, perm: Perm) -> Result<(), FhirError> {
        if !self.enforced {
            return Ok(());
        }
        let Some(principal) = &self.principal else {
            return Err(FhirError::unauthorized("a bearer token is required"));
        };
        let unrestricted = principal.scopes.resources.iter().any(|s| {
            s.resource_type.is_none()
                && s.grants(perm)
                && s.query.is_empty()
                && s.level != auth::Level::Patient
        });
        if unrestricted {
            Ok(())
        } else {
            Err(FhirError::forbidden(format!(
                "{} across all resource types needs an unrestricted `*` scope",
                perm_name(perm)
            )))
        }
    }

    /// Adds the filters that confine `request` (a search of `resource_type`) to what
    /// `decision` allows.
    pub fn restrict(
        &self,
        resource_type: &str,
        decision: &Decision,
        request: &mut SearchRequest,
    ) -> Result<(), FhirError> {
        let Decision::Restricted(restrictions) = decision else {
            return Ok(());
        };
        let mut alternatives: Vec<Vec<Filter>> = Vec::new();
        for r in restrictions {
            match restriction_filters(resource_type, r) {
                Some(filters) if filters.is_empty() => return Ok(()),
                Some(filters) => alternatives.push(filters),
                // This restriction cannot apply to the type: it grants nothing here.
                None => {}
            }
        }
        if alternatives.is_empty() {
            return Err(FhirError::forbidden(format!(
                "the token's scopes do not apply to {resource_type}"
            )));
        }
        // (A1 ∧ A2) ∨ (B1 ∧ B2) as a conjunction of disjunctions: one filter per choice of
        // one conjunct from each alternative.
        let mut cnf: Vec<Vec<Predicate>> = vec![Vec::new()];
        for alt in &alternatives {
            if cnf.len() * alt.len() > MAX_RESTRICTION_FILTERS {
                return Err(FhirError::forbidden(
                    "the token's scope restrictions are too many to combine",
                ));
            }
            let mut next = Vec::with_capacity(cnf.len() * alt.len());
            for partial in &cnf {
                for f in alt {
                    let mut any = partial.clone();
                    any.extend(f.any.iter().cloned());
                    next.push(any);
                }
            }
            cnf = next;
        }
        request
            .filters
            .extend(cnf.into_iter().map(|any| Filter { any }));
        Ok(())
    }

    /// The ids among `ids` (of `resource_type`) that `decision` admits, by a search under
    /// its restrictions.
    pub async fn admitted(
        &self,
        state: &FhirState,
        resource_type: &str,
        ids: &[String],
        decision: &Decision,
    ) -> Result<HashSet<String>, FhirError> {
        match decision {
            Decision::All => return Ok(ids.iter().cloned().collect()),
            Decision::Deny => return Ok(HashSet::new()),
            Decision::Restricted(_) => {}
        }
        let mut found = HashSet::new();
        for chunk in ids.chunks(100) {
            let mut request = SearchRequest {
                resource_type: Some(resource_type.to_owned()),
                filters: vec![Filter {
                    any: chunk
                        .iter()
                        .map(|id| Predicate {
                            param: "_id".to_owned(),
                            test: Test::Token {
                                system: fhir::search::TokenSystem::Any,
                                code: Some(id.clone()),
                                negate: false,
                            },
                        })
                        .collect(),
                }],
                count: chunk.len(),
                total: TotalMode::None,
                ..SearchRequest::default()
            };
            if self
                .restrict(resource_type, decision, &mut request)
                .is_err()
            {
                return Ok(HashSet::new());
            }
            let page = state.store.search(&request).await?;
            found.extend(page.matches.into_iter().map(|r| r.id));
        }
        Ok(found)
    }

    /// Checks that the stored `resource_type/id` is one the caller may `perm`; 403 when not.
    /// A resource that does not exist passes (the interaction answers 404 itself).
    pub async fn check_stored(
        &self,
        state: &FhirState,
        resource_type: &str,
        id: &str,
        perm: Perm,
    ) -> Result<(), FhirError> {
        let decision = self.decide(resource_type, perm)?;
        if matches!(decision, Decision::All) {
            return Ok(());
        }
        let ids = [id.to_owned()];
        if self
            .admitted(state, resource_type, &ids, &decision)
            .await?
            .contains(id)
        {
            return Ok(());
        }
        // Not admitted: either outside the grant or not there at all.
        match state.store.read(resource_type, id, None).await? {
            Some(r) if !r.deleted => Err(FhirError::forbidden(format!(
                "{resource_type}/{id} is outside what the token's scopes allow"
            ))),
            _ => Ok(()),
        }
    }

    /// Checks a resource about to be written (`perm`: create or update) against the
    /// caller's grant, on its content.
    pub fn check_content(&self, resource: &Value, perm: Perm) -> Result<(), FhirError> {
        let resource_type = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let decision = self.decide(resource_type, perm)?;
        let Decision::Restricted(restrictions) = &decision else {
            return Ok(());
        };
        let entries = fhir::index::extract(resource).unwrap_or_default();
        let admitted = restrictions
            .iter()
            .any(|r| content_satisfies(resource_type, resource, &entries, r));
        if admitted {
            Ok(())
        } else {
            Err(FhirError::forbidden(format!(
                "this {resource_type} is outside what the token's scopes allow"
            )))
        }
    }

    /// Checks a write before it is stored: the new content against the caller's grant, the
    /// stored version of an update or delete, and confines the search of a conditional
    /// update or delete to what the caller may change.
    pub async fn check_write(
        &self,
        state: &FhirState,
        write: &mut ResourceWrite,
    ) -> Result<(), FhirError> {
        if !self.enforced {
            return Ok(());
        }
        let t = write.resource_type.clone();
        let perm = match write.op {
            WriteOp::Create => Perm::Create,
            WriteOp::Update => Perm::Update,
            WriteOp::Delete => Perm::Delete,
        };
        if let Some(resource) = &write.resource {
            self.check_content(resource, perm)?;
        }
        match &mut write.precondition {
            Precondition::Match(search) if perm != Perm::Create => {
                let decision = self.decide(&t, perm)?;
                self.restrict(&t, &decision, search)?;
            }
            _ if perm != Perm::Create && !write.id.is_empty() => {
                self.check_stored(state, &t, &write.id, perm).await?;
            }
            _ => {
                self.decide(&t, perm)?;
            }
        }
        Ok(())
    }

    /// Keeps, of a search's included resources, those the caller may read.
    pub async fn filter_included(
        &self,
        state: &FhirState,
        included: Vec<store::StoredResource>,
    ) -> Result<Vec<store::StoredResource>, FhirError> {
        if !self.enforced || included.is_empty() {
            return Ok(included);
        }
        let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &included {
            by_type
                .entry(r.resource_type.clone())
                .or_default()
                .push(r.id.clone());
        }
        let mut allowed: HashSet<(String, String)> = HashSet::new();
        for (t, ids) in by_type {
            let Ok(decision) = self.decide(&t, Perm::Read) else {
                continue;
            };
            for id in self.admitted(state, &t, &ids, &decision).await? {
                allowed.insert((t.clone(), id));
            }
        }
        Ok(included
            .into_iter()
            .filter(|r| allowed.contains(&(r.resource_type.clone(), r.id.clone())))
            .collect())
    }
}

/// The filters (a conjunction) that confine a search of `resource_type` to `r`; `None`
/// when `r` cannot apply to the type (its query names a parameter the type lacks).
fn restriction_filters(resource_type: &str, r: &Restriction) -> Option<Vec<Filter>> {
    let mut filters = Vec::new();
    if let Some(patient) = &r.patient {
        if resource_type == "Patient" {
            filters.push(Filter {
                any: vec![Predicate {
                    param: "_id".to_owned(),
                    test: Test::Token {
                        system: fhir::search::TokenSystem::Any,
                        code: Some(patient.clone()),
                        negate: false,
                    },
                }],
            });
        } else {
            let params = fhir::defs::patient_compartment(resource_type);
            if !params.is_empty() {
                filters.push(Filter {
                    any: params
                        .iter()
                        .map(|p| Predicate {
                            param: (*p).to_owned(),
                            test: Test::Reference {
                                target_type: Some("Patient".to_owned()),
                                id: patient.clone(),
                            },
                        })
                        .collect(),
                });
            }
        }
    }
    if !r.query.is_empty() {
        let options = fhir::search::SearchOptions {
            default_count: 1,
            max_count: 1,
        };
        let parsed = fhir::search::parse(Some(resource_type), &r.query, &options).ok()?;
        filters.extend(parsed.filters);
    }
    Some(filters)
}

/// Whether a resource's content satisfies a restriction (for writes).
fn content_satisfies(
    resource_type: &str,
    resource: &Value,
    entries: &[fhir::index::IndexEntry],
    r: &Restriction,
) -> bool {
    if let Some(patient) = &r.patient {
        let inside = if resource_type == "Patient" {
            resource.get("id").and_then(Value::as_str) == Some(patient.as_str())
        } else {
            let params = fhir::defs::patient_compartment(resource_type);
            params.is_empty()
                || entries.iter().any(|e| {
                    params.contains(&e.param.as_str())
                        && matches!(&e.value, IndexValue::Reference { target_type, target_id, .. }
                            if target_type.as_deref() == Some("Patient")
                                && target_id.as_deref() == Some(patient.as_str()))
                })
        };
        if !inside {
            return false;
        }
    }
    r.query.iter().all(|(name, value)| {
        value.split(',').any(|alt| {
            entries
                .iter()
                .filter(|e| &e.param == name)
                .any(|e| value_matches(&e.value, alt))
        })
    })
}

/// The plain (modifier-less) search semantics of a token, string or reference value, for
/// the query of a granular scope checked on a resource about to be written.
fn value_matches(value: &IndexValue, search: &str) -> bool {
    match value {
        IndexValue::Token { system, code, .. } => match search.split_once('|') {
            Some(("", c)) => system.is_none() && code.as_deref() == Some(c),
            Some((s, "")) => system.as_deref() == Some(s),
            Some((s, c)) => system.as_deref() == Some(s) && code.as_deref() == Some(c),
            None => code.as_deref() == Some(search),
        },
        IndexValue::String { normalized, .. } => {
            normalized.starts_with(&fhir::index::normalize(search))
        }
        IndexValue::Reference {
            target_type,
            target_id,
            ..
        } => match search.split_once('/') {
            Some((t, id)) => target_type.as_deref() == Some(t) && target_id.as_deref() == Some(id),
            None => target_id.as_deref() == Some(search),
        },
        _ => false,
    }
}
