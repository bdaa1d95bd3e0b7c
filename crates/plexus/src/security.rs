//! The security wiring of `plexus serve`: the built-in SMART authorization server, the
//! bearer-token check of the FHIR and admin APIs, and the audit trail every access, sign-in
//! and configuration change is written to.

use std::sync::Arc;

use anyhow::{Context, Result};
use auth::audit::{AuditFacts, Interaction as AuditInteraction, Outcome, What, Who};
use auth::{AuthEvent, AuthEvents, AuthServer, Principal};
use fhir_server::access::BoxFuture;
use fhir_server::{AccessEvent, AccessLog, AuthFailure, Authenticator, Interaction};
use store::{AnyStore, Audit as _, NewAuditRecord};
use tokio::sync::mpsc;
use tracing::error;

use crate::config::Config;

/// The audit trail: records written to the store, durably before the access is answered
/// (FHIR and admin accesses), or queued for a writer task (events of the authorization
/// server, which cannot wait).
pub struct AuditTrail {
    store: Arc<AnyStore>,
    node: String,
    queue: mpsc::Sender<NewAuditRecord>,
}

/// Events of the authorization server waiting for the writer task, at most.
const QUEUE: usize = 10_000;

impl AuditTrail {
    /// A trail on `store`, recording this `node` as the observer; spawns the writer task of
    /// queued records.
    pub fn start(store: Arc<AnyStore>, node: String) -> Arc<Self> {
        let (queue, mut rx) = mpsc::channel::<NewAuditRecord>(QUEUE);
        let writer_store = Arc::clone(&store);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                if let Err(e) = writer_store.audit_append(batch).await {
                    error!(error = %e, "audit records of the authorization server could not be written");
                }
            }
        });
        Arc::new(Self { store, node, queue })
    }

    /// Records `facts` durably.
    pub async fn record(&self, facts: AuditFacts<'_>) -> Result<(), String> {
        let record = auth::audit::record(&facts.observer(&self.node));
        self.store
            .audit_append(vec![record])
            .await
            .map_err(|e| e.to_string())
    }
}

impl AuthEvents for AuditTrail {
    fn record(&self, event: AuthEvent) {
        let record = auth::audit::record(&AuditFacts::auth_event(&event).observer(&self.node));
        if self.queue.try_send(record).is_err() {
            error!("the audit queue is full or closed; an authorization event was not recorded");
        }
    }
}

fn audit_interaction(i: Interaction) -> AuditInteraction {
    match i {
        Interaction::Read => AuditInteraction::Read,
        Interaction::Vread => AuditInteraction::Vread,
        Interaction::Update => AuditInteraction::Update,
        Interaction::Patch => AuditInteraction::Patch,
        Interaction::Delete => AuditInteraction::Delete,
        Interaction::HistoryInstance => AuditInteraction::HistoryInstance,
        Interaction::HistoryType => AuditInteraction::HistoryType,
        Interaction::HistorySystem => AuditInteraction::HistorySystem,
        Interaction::Create => AuditInteraction::Create,
        Interaction::SearchType => AuditInteraction::SearchType,
        Interaction::SearchSystem => AuditInteraction::SearchSystem,
        Interaction::Batch => AuditInteraction::Batch,
        Interaction::Capabilities => AuditInteraction::Capabilities,
        Interaction::Operation => AuditInteraction::Operation,
    }
}

impl AccessLog for AuditTrail {
    fn record(&self, event: AccessEvent) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let params: Vec<&str> = event.params.iter().map(String::as_str).collect();
            let what = match event.interaction {
                Interaction::SearchType | Interaction::SearchSystem => What::Search {
                    resource_type: event.resource_type.as_deref(),
                    params: &params,
                },
                _ => match &event.resource_type {
                    Some(t) => What::Resource {
                        resource_type: t,
                        id: event.id.as_deref(),
                        version: None,
                    },
                    None => What::Nothing,
                },
            };
            let who = event
                .principal
                .as_deref()
                .map_or(Who::Anonymous, Who::Principal);
            let source = event.source.map(|ip| ip.to_string());
            let status_text = format!("HTTP {}", event.status);
            let mut facts =
                AuditFacts::fhir_interaction(who, audit_interaction(event.interaction), what)
                    .patient(event.patient.as_deref())
                    .from_addr(source.as_deref());
            if event.status >= 400 {
                let reason = event.detail.as_deref().unwrap_or(&status_text);
                facts = facts.failed(Outcome::from_http_status(event.status), reason);
            }
            AuditTrail::record(self, facts).await
        })
    }
}

/// The authorization server as the FHIR API's token check.
pub struct Verifier(pub Arc<AuthServer>);

impl Authenticator for Verifier {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Principal, AuthFailure>> {
        Box::pin(async move {
            self.0.verify_bearer(token).await.map_err(|e| AuthFailure {
                description: e.to_string(),
            })
        })
    }
}

/// The authorization server of `config` on `store`, its events going to `events`. The
/// issuer is the FHIR base URL (`fhir_base`), the endpoints are at `{auth_base}/…`.
pub fn auth_server(
    config: &Config,
    store: Arc<AnyStore>,
    fhir_base: &str,
    auth_base: &str,
    events: Arc<dyn AuthEvents>,
) -> Result<Arc<AuthServer>> {
    let mut c = auth::AuthConfig::new(fhir_base, auth_base, config.security.key_dir(&config.store));
    c.signing_key.clone_from(&config.security.signing_key);
    c.access_token_lifetime = config.security.access_token_lifetime;
    let server = AuthServer::new(c, store, events).context("starting the authorization server")?;
    Ok(server)
}
