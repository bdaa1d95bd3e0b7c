//! Channel sources: the MLLP listener (acknowledging after the commit or after the
//! destinations), and the HTTP listener and file reader of `connectors`, all handing messages
//! to [`Engine::accept`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use connectors::{Inbound, Receipt, Submit};
use futures_util::future::BoxFuture;
use hl7v2::ack::Outcome;
use mllp::{FrameError, Handler, HandlerReply, MllpServer, PeerInfo};
use script::DataType;
use store::{NewMessage, Status};
use tokio::sync::watch;
use tracing::{debug, error, warn};

use crate::config::AckTiming;
use crate::error::{EngineError, Result};
use crate::intake::{Inspection, frame_error_reply, inspect, unix_now};
use crate::runtime::{Channel, Engine, Finished};

/// Fills a new message's header fields from its bytes when they are HL7 v2.
pub fn fill_header(m: &mut NewMessage, bytes: &[u8]) {
    if bytes.starts_with(b"MSH") {
        let i = inspect(bytes);
        apply_inspection(m, &i, &[]);
    }
}

fn apply_inspection(m: &mut NewMessage, i: &Inspection<'_>, metadata: &[(String, String)]) {
    i.fill_header(m);
    for (name, path) in metadata {
        if let Some(v) = i.value(path) {
            m.metadata.push((name.clone(), v));
        }
    }
}

/// What every source does with a received payload: store it (rejecting HL7 v2 that does not
/// parse, JSON that is not JSON), wait for the destinations if the channel says so, and
/// decide the answer.
pub(crate) struct Intake {
    engine: Arc<Engine>,
    channel: Arc<Channel>,
}

/// The result of handing one payload to a channel.
pub(crate) struct Handed<'a> {
    pub inspection: Option<Inspection<'a>>,
    pub id: Option<store::MessageId>,
    pub stored: bool,
    pub finished: Option<Finished>,
    pub rejected: Option<String>,
}

impl Intake {
    pub(crate) fn new(engine: Arc<Engine>, channel: Arc<Channel>) -> Self {
        Self { engine, channel }
    }

    pub(crate) async fn hand<'a>(
        &self,
        payload: &'a [u8],
        peer_addr: Option<String>,
        tls_subject: Option<String>,
        hl7: bool,
    ) -> Handed<'a> {
        let cfg = &self.channel.config;
        let mut m = NewMessage::new(cfg.name.clone(), payload.to_vec());
        m.peer_addr = peer_addr;
        m.tls_subject = tls_subject;
        let mut rejected = None;
        let inspection = if hl7 {
            let i = inspect(payload);
            apply_inspection(&mut m, &i, &self.channel.pipeline.metadata);
            if i.outcome != Outcome::Accept {
                rejected = i.error.as_ref().map(|e| e.text.clone());
            }
            Some(i)
        } else {
            match script::Data::parse(cfg.data_type, payload) {
                Err(e) => {
                    rejected = Some(format!("the message is not valid {}: {e}", cfg.data_type));
                }
                // metadata paths of JSON channels are dotted paths
                Ok(data @ script::Data::Json(_)) => {
                    for (name, path) in &self.channel.pipeline.metadata {
                        if let Ok(Some(v)) = crate::steps::get_text(&data, path) {
                            m.metadata.push((name.clone(), v));
                        }
                    }
                }
                Ok(_) => {}
            }
            None
        };
        if let Some(r) = &rejected {
            m.status = Status::Error;
            m.error = Some(r.clone());
        }
        let wait = cfg.source.ack == AckTiming::AfterDestinations && rejected.is_none();
        let result = if wait {
            self.engine.accept_and_wait(m, cfg.source.ack_wait).await
        } else {
            self.engine.accept(m).await.map(|id| (id, None))
        };
        match result {
            Ok((id, finished)) => {
                debug!(channel = %cfg.name, id = %id, "stored");
                Handed {
                    inspection,
                    id: Some(id),
                    stored: true,
                    finished: if wait {
                        Some(finished.unwrap_or(Finished {
                            status: Status::Queued,
                            error: Some(format!(
                                "stored, but not delivered within {}; it stays queued",
                                mllp::duration::format(cfg.source.ack_wait)
                            )),
                        }))
                    } else {
                        None
                    },
                    rejected,
                }
            }
            Err(e) => {
                error!(channel = %cfg.name, error = %e, "store failed; answering with an error so the sender retries");
                Handed {
                    inspection,
                    id: None,
                    stored: false,
                    finished: None,
                    rejected,
                }
            }
        }
    }
}

impl Handed<'_> {
    /// The HL7 ACK for this payload (`None`: none is wanted).
    fn ack(self, as_requested: bool) -> Option<Vec<u8>> {
        let mut i = self.inspection?;
        if let Some(f) = &self.finished
            && matches!(f.status, Status::Error | Status::Queued)
        {
            i = i.fail(f.error.clone().unwrap_or_else(|| "delivery failed".into()));
        }
        let control = self
            .id
            .map_or_else(|| format!("ERR{}", unix_now()), |id| id.to_string());
        i.ack(&control, unix_now(), self.stored, as_requested)
    }
}

/// The MLLP source of a channel.
struct MllpIntake(Intake);

impl Handler for MllpIntake {
    async fn handle(&self, payload: Bytes, peer: &PeerInfo) -> HandlerReply {
        let handed = self
            .0
            .hand(
                &payload,
                Some(peer.addr.to_string()),
                peer.tls_subject.clone(),
                true,
            )
            .await;
        match handed.ack(false) {
            Some(ack) => HandlerReply::Send(Bytes::from(ack)),
            None => HandlerReply::NoReply,
        }
    }

    fn on_frame_error(&self, err: &FrameError, head: &[u8], peer: &PeerInfo) -> Option<Bytes> {
        warn!(channel = %self.0.channel.name(), connection = peer.connection_id, error = %err, "framing error");
        frame_error_reply(err, head).map(Bytes::from)
    }
}

impl Submit for Intake {
    fn submit(&self, inbound: Inbound) -> BoxFuture<'_, Receipt> {
        Box::pin(async move {
            let hl7 = self.channel.config.data_type == DataType::Hl7v2;
            let mut addr = inbound.peer_addr;
            if addr.is_none() {
                addr = inbound.origin.clone();
            }
            let handed = self
                .hand(&inbound.bytes, addr, inbound.tls_subject, hl7)
                .await;
            let id = handed.id.map(|i| i.to_string());
            let stored = handed.stored;
            let rejected = handed.rejected.clone();
            let failed = handed
                .finished
                .as_ref()
                .filter(|f| matches!(f.status, Status::Error | Status::Queued))
                .map(|f| f.error.clone().unwrap_or_default());
            let accepted = stored && rejected.is_none() && failed.is_none();
            let error = if stored {
                rejected.clone().or(failed.clone())
            } else {
                Some("the message could not be stored; send it again".into())
            };
            let configured = self.channel.config.source.response.as_ref();
            let (response, content_type) = if let (true, Some(r)) = (accepted, configured) {
                (Some(r.body.clone().into_bytes()), r.content_type.as_str())
            } else if hl7 {
                (handed.ack(false), "x-application/hl7-v2+er7")
            } else {
                let body = serde_json::json!({
                    "messageId": id,
                    "accepted": accepted,
                    "error": error,
                });
                (Some(body.to_string().into_bytes()), "application/json")
            };
            Receipt {
                accepted,
                message_id: id,
                error,
                response,
                response_content_type: Some(content_type.into()),
            }
        })
    }
}

/// Starts a channel's source connector, if it has one.
pub(crate) fn start(engine: &Arc<Engine>, ch: &Arc<Channel>) -> Result<()> {
    if ch.tasks.lock().expect("lock").source.is_some() {
        return Ok(());
    }
    let src = &ch.config.source;
    let (tx, mut rx) = watch::channel(false);
    let shutdown = async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let intake = Intake::new(Arc::clone(engine), Arc::clone(ch));
    let connector_error = |what: &str, e: String| EngineError::Connector {
        channel: ch.config.name.clone(),
        what: what.to_owned(),
        reason: e,
    };
    let handle = if let Some(c) = &src.mllp {
        let server = MllpServer::bind(c.clone(), MllpIntake(intake))
            .map_err(|e| connector_error("MLLP listener", e.to_string()))?;
        *ch.source_addr.lock().expect("lock") = Some(server.local_addr());
        *ch.source_tls.lock().expect("lock") = server.tls();
        let name = ch.config.name.clone();
        tokio::spawn(async move {
            if let Err(e) = server.serve(shutdown).await {
                error!(channel = %name, error = %e, "MLLP listener failed");
            }
        })
    } else if let Some(c) = &src.http {
        let listener = connectors::http::HttpListener::bind(c.clone(), Arc::new(intake))
            .map_err(|e| connector_error("HTTP listener", e.to_string()))?;
        *ch.source_addr.lock().expect("lock") = Some(listener.local_addr());
        *ch.source_tls.lock().expect("lock") = listener.tls();
        let name = ch.config.name.clone();
        tokio::spawn(async move {
            if let Err(e) = listener.run(shutdown).await {
                error!(channel = %name, error = %e, "HTTP listener failed");
            }
        })
    } else if let Some(c) = &src.file {
        let reader = c
            .clone()
            .build()
            .map_err(|e| connector_error("file reader", e.to_string()))?;
        let name = ch.config.name.clone();
        tokio::spawn(async move {
            reader.run(Arc::new(intake), shutdown).await;
            debug!(channel = %name, "file reader stopped");
        })
    } else {
        return Ok(());
    };
    ch.tasks.lock().expect("lock").source = Some((handle, tx));
    Ok(())
}

/// Stops a channel's source connector and waits until it has.
pub(crate) async fn stop(ch: &Channel) {
    // it no longer listens: the admin API must not show the address
    *ch.source_addr.lock().expect("lock") = None;
    *ch.source_tls.lock().expect("lock") = None;
    let source = ch.tasks.lock().expect("lock").source.take();
    if let Some((handle, tx)) = source {
        let _ = tx.send(true);
        if tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .is_err()
        {
            warn!(channel = %ch.name(), "source did not stop within 30 s");
        }
    }
}
