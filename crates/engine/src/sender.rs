//! Destination connectors as the workers use them: one [`Sender`] per worker.

use std::sync::{Arc, Weak};

use connectors::{Delivered, SendError};
use script::{Context, Data, DataType};
use serde_json::Map;
use store::NewMessage;

use crate::config::DestinationConfig;
use crate::runtime::Engine;
use crate::steps::{Env, MessageFields};

/// A destination connector, built from its config.
pub(crate) enum Sender {
    Mllp(Box<mllp::MllpClient>),
    Http(Box<connectors::http::HttpSender>),
    File(connectors::file::FileWriter),
    Database(connectors::database::PgWriter),
    Fhir(Box<connectors::fhir::FhirSender>),
    Channel {
        engine: Weak<Engine>,
        target: String,
    },
}

impl Sender {
    /// Builds the connector of a destination (a database writer connects here).
    pub(crate) async fn build(
        config: &DestinationConfig,
        engine: &Arc<Engine>,
    ) -> Result<Self, String> {
        if let Some(c) = &config.mllp {
            return mllp::MllpClient::new(c.clone())
                .map(|c| Self::Mllp(Box::new(c)))
                .map_err(|e| e.to_string());
        }
        if let Some(c) = &config.http {
            return c
                .clone()
                .build()
                .map(|s| Self::Http(Box::new(s)))
                .map_err(|e| e.to_string());
        }
        if let Some(c) = &config.file {
            return c.clone().build().map(Self::File).map_err(|e| e.to_string());
        }
        if let Some(c) = &config.database {
            return connectors::database::PgWriter::connect(c.clone())
                .await
                .map(Self::Database)
                .map_err(|e| e.to_string());
        }
        if let Some(c) = &config.fhir {
            return c
                .build()
                .map(|s| Self::Fhir(Box::new(s)))
                .map_err(|e| e.to_string());
        }
        if let Some(c) = &config.channel {
            return Ok(Self::Channel {
                engine: Arc::downgrade(engine),
                target: c.name.clone(),
            });
        }
        Err("no connector configured".into())
    }

    /// Sends one message's encoded bytes.
    pub(crate) async fn send(
        &mut self,
        bytes: &[u8],
        message_id: &str,
        channel: &str,
    ) -> Result<Delivered, SendError> {
        match self {
            Self::Mllp(client) => {
                let ack = client
                    .send(bytes)
                    .await
                    .map_err(|e| SendError::Retryable(e.to_string()))?;
                check_ack(&ack)
            }
            Self::Http(s) => s.send(bytes, &fields(bytes, message_id, channel)).await,
            Self::File(s) => s.send(bytes, &fields(bytes, message_id, channel)).await,
            Self::Database(s) => s.send(&fields(bytes, message_id, channel)).await,
            Self::Fhir(s) => s.send(bytes).await,
            Self::Channel { engine, target } => {
                let Some(engine) = engine.upgrade() else {
                    return Err(SendError::Retryable("the engine is shutting down".into()));
                };
                let mut m = NewMessage::new(target.clone(), bytes.to_vec());
                m.peer_addr = Some(format!("channel:{channel}"));
                crate::source::fill_header(&mut m, bytes);
                let id = engine.accept(m).await.map_err(|e| match e {
                    crate::EngineError::UnknownChannel(_) => {
                        SendError::Retryable(format!("channel {target} is not deployed"))
                    }
                    other => SendError::Retryable(other.to_string()),
                })?;
                Ok(Delivered {
                    response: None,
                    content_type: None,
                    detail: format!("written to channel {target} as message {id}"),
                })
            }
        }
    }

    pub(crate) async fn close(&mut self) {
        if let Self::Mllp(c) = self {
            c.close().await;
        }
    }
}

/// Accepts AA/CA; anything else is a refusal by the receiver.
fn check_ack(ack: &[u8]) -> Result<Delivered, SendError> {
    let msg = hl7v2::Message::parse(ack)
        .map_err(|e| SendError::Permanent(format!("the response is not a valid ACK: {e}")))?;
    let code = msg
        .value("MSA-1")
        .ok()
        .flatten()
        .map(std::borrow::Cow::into_owned)
        .unwrap_or_default();
    let delivered = Delivered {
        response: Some(ack.to_vec()),
        content_type: Some("x-application/hl7-v2+er7".into()),
        detail: format!("ACK {code}"),
    };
    match code.as_str() {
        "AA" | "CA" => Ok(delivered),
        "" => Err(SendError::Permanent("the response has no MSA-1".into())),
        _ => {
            let text = hl7v2::ack::ack_text(&msg).unwrap_or_default();
            Err(SendError::Permanent(format!(
                "the receiver answered {code}{}{text}",
                if text.is_empty() { "" } else { ": " }
            )))
        }
    }
}

/// Reads outbound bytes back as data, for templates: HL7 v2, JSON, or text.
pub(crate) fn sniff(bytes: &[u8]) -> Data {
    if bytes.starts_with(b"MSH")
        && let Ok(d) = Data::parse(DataType::Hl7v2, bytes)
    {
        return d;
    }
    if matches!(bytes.first(), Some(b'{' | b'['))
        && let Ok(d) = Data::parse(DataType::Json, bytes)
    {
        return d;
    }
    Data::Raw(String::from_utf8_lossy(bytes).into_owned())
}

struct OwnedFields {
    ctx: Context,
    message_id: String,
    channel: String,
}

impl connectors::Fields for OwnedFields {
    fn field(&self, name: &str) -> Option<String> {
        let env = Env {
            message_id: &self.message_id,
            channel: &self.channel,
        };
        MessageFields {
            ctx: &self.ctx,
            env: &env,
        }
        .field(name)
    }
}

fn fields(bytes: &[u8], message_id: &str, channel: &str) -> OwnedFields {
    OwnedFields {
        ctx: Context {
            data: sniff(bytes),
            channel_map: Map::new(),
            response_map: Map::new(),
            source_map: Map::new(),
            logs: Vec::new(),
        },
        message_id: message_id.to_owned(),
        channel: channel.to_owned(),
    }
}
