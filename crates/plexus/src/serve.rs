//! `plexus serve`: receive HL7 v2 over MLLP, store every message durably, then acknowledge.
//!
//! A message is ACKed (AA/CA) only after the store has committed it; a store failure answers
//! AE/CE so the sender keeps the message and resends it. A payload that does not parse is still
//! stored, with status ERROR and the parse error, and answered AR/CR with an ERR segment.

use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use hl7v2::ack::Outcome;
use mllp::{FrameError, Handler, HandlerReply, MllpServer, PeerInfo};
use store::{AnyStore, Journal as _, NewMessage, Status, Store as _};
use tracing::{debug, error, info, warn};

use crate::config::{AcceptAck, Config};
use crate::security::AuditTrail;
use engine::intake::{frame_error_reply, inspect, unix_now};

/// Receives the messages of one listener into the store.
pub struct Intake {
    store: Arc<AnyStore>,
    channel: String,
    as_requested: bool,
}

impl Intake {
    /// A handler that stores into `store` under `channel`.
    pub fn new(store: Arc<AnyStore>, channel: String, accept_ack: AcceptAck) -> Self {
        Self {
            store,
            channel,
            as_requested: accept_ack == AcceptAck::AsRequested,
        }
    }
}

impl Handler for Intake {
    async fn handle(&self, payload: Bytes, peer: &PeerInfo) -> HandlerReply {
        let inspection = inspect(&payload);
        let h = &inspection.header;
        let mut new = NewMessage::new(self.channel.clone(), payload.to_vec());
        new.peer_addr = Some(peer.addr.to_string());
        new.tls_subject.clone_from(&peer.tls_subject);
        inspection.fill_header(&mut new);
        if inspection.outcome != Outcome::Accept {
            new.status = Status::Error;
            new.error = inspection.error.as_ref().map(|e| e.text.clone());
        }
        let (ack_id, stored) = match self.store.append(new).await {
            Ok(id) => {
                debug!(channel = %self.channel, id = %id, connection = peer.connection_id, message_type = h.message_type.as_deref().unwrap_or(""), event = h.trigger_event.as_deref().unwrap_or(""), outcome = ?inspection.outcome, "stored");
                (id.to_string(), true)
            }
            Err(e) => {
                error!(channel = %self.channel, connection = peer.connection_id, error = %e, "store failed; answering AE so the sender retries");
                (format!("ERR{}", unix_now()), false)
            }
        };
        match inspection.ack(&ack_id, unix_now(), stored, self.as_requested) {
            Some(ack) => HandlerReply::Send(Bytes::from(ack)),
            None => HandlerReply::NoReply,
        }
    }

    fn on_frame_error(&self, err: &FrameError, head: &[u8], peer: &PeerInfo) -> Option<Bytes> {
        warn!(channel = %self.channel, connection = peer.connection_id, peer = %peer.addr, error = %err, "framing error");
        frame_error_reply(err, head).map(Bytes::from)
    }
}

/// Runs the listeners of `config` until SIGINT or SIGTERM; SIGHUP reloads TLS certificates.
pub async fn run(config: Config) -> Result<()> {
    let store = Arc::new(
        AnyStore::open(&config.store)
            .await
            .context("opening the store")?,
    );
    info!(store = store.kind(), "store open");
    let engine = engine::Engine::new(
        Arc::clone(&store),
        engine::EngineConfig {
            node: config.node_name(),
            ..engine::EngineConfig::default()
        },
    );
    deploy_channels(&config, &engine).await?;
    let retention = engine.spawn_retention(config.retention_interval);
    let alerts = crate::alerts::spawn(
        &engine,
        config.alerts.clone(),
        std::time::Duration::from_secs(10),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut reloaders = start_apis(&config, &store, &engine, &stop_rx).await?;
    let mut servers = tokio::task::JoinSet::new();
    for listener in config.listeners {
        let handler = Intake::new(
            Arc::clone(&store),
            listener.channel.clone(),
            listener.accept_ack,
        );
        let server = MllpServer::bind(listener.mllp, handler)
            .with_context(|| format!("starting listener of channel {}", listener.channel))?;
        info!(channel = %listener.channel, addr = %server.local_addr(), tls = server.tls().is_some(), "listening");
        reloaders.extend(server.tls());
        let mut stop = stop_rx.clone();
        servers.spawn(async move {
            server
                .serve(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        });
    }
    let reload_engine = Arc::clone(&engine);
    let signals = tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            error!("cannot install signal handlers");
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = hup.recv() => reload_tls(&reloaders, &reload_engine),
            }
        }
        info!("shutting down: finishing messages in flight");
        let _ = stop_tx.send(true);
    });
    // serve until told to stop, also when there is no plain listener
    let mut stop = stop_rx.clone();
    servers.spawn(async move {
        let _ = stop.wait_for(|s| *s).await;
        Ok(())
    });
    let mut result = Ok(());
    while let Some(done) = servers.join_next().await {
        if let Ok(Err(e)) = done {
            error!(error = %e, "listener failed");
            result = Err(anyhow::anyhow!(e));
        }
    }
    engine.shutdown().await;
    retention.abort();
    if let Some(a) = alerts {
        a.abort();
    }
    signals.abort();
    store.close().await.context("closing the store")?;
    result
}

/// Starts the admin API, and the FHIR API with the authorization server, with the audit
/// trail; returns their TLS settings, for SIGHUP.
async fn start_apis(
    config: &Config,
    store: &Arc<AnyStore>,
    engine: &Arc<engine::Engine>,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<mllp::ReloadableTls>> {
    let mut reloaders = Vec::new();
    let audit = config
        .security
        .audit
        .then(|| AuditTrail::start(Arc::clone(store), config.node_name()));
    // The FHIR listener is bound first: its address is the tokens' issuer.
    let fhir_listener = if config.fhir.enabled {
        Some(
            tokio::net::TcpListener::bind(config.fhir.bind)
                .await
                .with_context(|| format!("FHIR API: cannot listen on {}", config.fhir.bind))?,
        )
    } else {
        None
    };
    let fhir_addr = match &fhir_listener {
        Some(l) => l.local_addr()?,
        None => config.fhir.bind,
    };
    let fhir = config.fhir.server_config(fhir_addr);
    let auth_base = config.security.auth_base.clone().unwrap_or_else(|| {
        let scheme = if config.fhir.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{fhir_addr}/auth")
    });
    let events: Arc<dyn auth::AuthEvents> = match &audit {
        Some(a) => Arc::clone(a) as Arc<dyn auth::AuthEvents>,
        None => Arc::new(auth::NoEvents),
    };
    let auth = crate::security::auth_server(
        config,
        Arc::clone(store),
        &fhir.base_url,
        &auth_base,
        events,
    )?;
    // Expired codes, tokens and assertion ids are ignored anyway; this keeps the table small.
    let _purge = auth.spawn_purge(std::time::Duration::from_hours(1));
    if config.admin.enabled {
        let admin = AdminSecurity {
            auth: config.security.admin_auth.then(|| Arc::clone(&auth)),
            audit: audit.clone(),
            oidc: match &config.security.oidc {
                Some(c) if config.security.admin_auth => {
                    Some(Arc::new(crate::oidc::Oidc::new(c.clone())?))
                }
                _ => None,
            },
        };
        reloaders.extend(spawn_admin(config, engine, admin, stop_rx.clone()).await?);
    }
    if let Some(listener) = fhir_listener {
        let api = FhirApi {
            listener,
            config: fhir,
            auth_base,
            auth: Arc::clone(&auth),
            audit: audit.clone(),
        };
        reloaders.extend(spawn_fhir(config, store, api, stop_rx.clone())?);
    }
    Ok(reloaders)
}

/// How the admin API is protected.
pub struct AdminSecurity {
    /// Checks API tokens; `None` serves everyone.
    pub auth: Option<Arc<auth::AuthServer>>,
    /// Where message views, reprocessing and configuration changes are recorded.
    pub audit: Option<Arc<AuditTrail>>,
    /// Sign-in with an external OpenID Connect provider.
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
}

/// Starts the admin API; it stops when `stop` turns true. Returns its TLS, for SIGHUP.
async fn spawn_admin(
    config: &Config,
    engine: &Arc<engine::Engine>,
    security: AdminSecurity,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<mllp::ReloadableTls>> {
    let listener = tokio::net::TcpListener::bind(config.admin.bind)
        .await
        .with_context(|| format!("admin API: cannot listen on {}", config.admin.bind))?;
    let tls = config
        .admin
        .tls
        .clone()
        .map(mllp::ReloadableTls::new)
        .transpose()
        .context("admin API TLS")?;
    info!(addr = %listener.local_addr()?, tls = tls.is_some(), auth = security.auth.is_some(), "admin API listening");
    let app = crate::admin::router(crate::admin::AdminState {
        engine: Arc::clone(engine),
        channels_dir: config.channels.clone(),
        auth: security.auth,
        audit: security.audit,
        oidc: security.oidc,
    });
    let options = connectors::http::ServeOptions {
        tls: tls.clone(),
        allow: config.admin.allow.clone(),
        ..connectors::http::ServeOptions::default()
    };
    spawn_http(listener, app, options, stop);
    Ok(tls)
}

/// Serves `app` until `stop` turns true.
fn spawn_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    options: connectors::http::ServeOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        connectors::http::serve(listener, app, options, shutdown).await;
    });
}

/// The FHIR listener and what it serves with.
struct FhirApi {
    listener: tokio::net::TcpListener,
    config: fhir_server::FhirConfig,
    auth_base: String,
    auth: Arc<auth::AuthServer>,
    audit: Option<Arc<AuditTrail>>,
}

/// Starts the FHIR API at `/fhir` and the authorization server at `/auth`; they stop when
/// `stop` turns true. Returns the TLS, for SIGHUP.
fn spawn_fhir(
    config: &Config,
    store: &Arc<AnyStore>,
    api: FhirApi,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<mllp::ReloadableTls>> {
    let FhirApi {
        listener,
        config: mut fhir,
        auth_base,
        auth,
        audit,
    } = api;
    let tls = config
        .fhir
        .tls
        .clone()
        .map(mllp::ReloadableTls::new)
        .transpose()
        .context("FHIR API TLS")?;
    let mut security = fhir_server::Security {
        authenticator: None,
        access_log: audit.map(|a| a as Arc<dyn fhir_server::AccessLog>),
        public_routes: None,
    };
    if config.security.fhir_auth {
        security.authenticator = Some(Arc::new(crate::security::Verifier(Arc::clone(&auth))));
        security.public_routes = Some(auth.smart_router());
        fhir.oauth = Some(fhir_server::OAuthUris {
            authorize: format!("{auth_base}/authorize"),
            token: format!("{auth_base}/token"),
            introspect: format!("{auth_base}/introspect"),
            revoke: format!("{auth_base}/revoke"),
        });
    }
    info!(addr = %listener.local_addr()?, base = %fhir.base_url, tls = tls.is_some(), auth = config.security.fhir_auth, "FHIR API listening");
    let app =
        fhir_server::mount_with("/fhir", Arc::clone(store), fhir, security).merge(auth.router());
    let options = connectors::http::ServeOptions {
        tls: tls.clone(),
        allow: config.fhir.allow.clone(),
        ..connectors::http::ServeOptions::default()
    };
    spawn_http(listener, app, options, stop);
    Ok(tls)
}

/// Deploys every channel file of the configured folder.
async fn deploy_channels(config: &Config, engine: &Arc<engine::Engine>) -> Result<()> {
    if let Some(dir) = &config.channels {
        let channels = engine::load_dir(dir)?;
        info!(folder = %dir.display(), channels = channels.len(), "channel files read");
        for c in channels {
            let name = c.name.clone();
            engine
                .deploy(c)
                .await
                .with_context(|| format!("deploying channel {name}"))?;
        }
    }
    Ok(())
}

/// SIGHUP: reloads the certificates of the plain listeners and of the channel sources; a
/// failed reload keeps the previous certificate.
fn reload_tls(listeners: &[mllp::ReloadableTls], engine: &engine::Engine) {
    for tls in listeners {
        match tls.reload() {
            Ok(()) => info!("TLS certificates reloaded"),
            Err(e) => error!(error = %e, "TLS reload failed; keeping the previous certificates"),
        }
    }
    let (reloaded, failed) = engine.reload_tls();
    if reloaded > 0 {
        info!(sources = reloaded, "channel TLS certificates reloaded");
    }
    for e in failed {
        error!(error = %e, "TLS reload failed; keeping the previous certificates");
    }
}
