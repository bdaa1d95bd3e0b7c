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
    if config.admin.enabled {
        spawn_admin(&config, &engine, stop_rx.clone()).await?;
    }
    if config.fhir.enabled {
        spawn_fhir(&config, &store, stop_rx.clone()).await?;
    }
    let mut servers = tokio::task::JoinSet::new();
    let mut reloaders = Vec::new();
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

/// Starts the admin API; it stops when `stop` turns true.
async fn spawn_admin(
    config: &Config,
    engine: &Arc<engine::Engine>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(config.admin.bind)
        .await
        .with_context(|| format!("admin API: cannot listen on {}", config.admin.bind))?;
    info!(addr = %listener.local_addr()?, "admin API listening");
    let app = crate::admin::router(crate::admin::AdminState {
        engine: Arc::clone(engine),
        channels_dir: config.channels.clone(),
    });
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            error!(error = %e, "admin API failed");
        }
    });
    Ok(())
}

/// Starts the FHIR API at `/fhir`; it stops when `stop` turns true.
async fn spawn_fhir(
    config: &Config,
    store: &Arc<AnyStore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(config.fhir.bind)
        .await
        .with_context(|| format!("FHIR API: cannot listen on {}", config.fhir.bind))?;
    let addr = listener.local_addr()?;
    let fhir = config.fhir.server_config(addr);
    info!(%addr, base = %fhir.base_url, "FHIR API listening");
    let app = fhir_server::mount("/fhir", Arc::clone(store), fhir);
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            error!(error = %e, "FHIR API failed");
        }
    });
    Ok(())
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
