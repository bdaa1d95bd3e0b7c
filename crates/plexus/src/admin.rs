//! The admin REST API (JSON over HTTP, described by `openapi.json` served at
//! `/openapi.json`), `/metrics` in the Prometheus format, and `/healthz` / `/readyz`.
//!
//! It binds 127.0.0.1 by default: until role-based access control lands, anyone who can
//! reach it can deploy channels and read messages.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::{ChannelConfig, Engine, EngineError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{Journal as _, MessageFilter, MessageId, Queues as _, Status, Timestamp};

/// The OpenAPI 3.1 description of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The folder of channel files (for `deploy`).
    pub channels_dir: Option<PathBuf>,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .route("/api/channels", get(list_channels))
        .route("/api/channels/{name}", get(show_channel))
        .route("/api/channels/{name}/{action}", post(channel_action))
        .route(
            "/api/channels/{name}/destinations/{destination}/{action}",
            post(destination_action),
        )
        .route("/api/messages", get(search_messages))
        .route("/api/messages/reprocess", post(reprocess_matching))
        .route("/api/messages/{id}", get(show_message))
        .route("/api/messages/{id}/reprocess", post(reprocess_one))
        .route("/api/queues", get(queues))
        .with_state(state)
}

/// An error answered as `{"error": "..."}` with a status.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match &e {
            EngineError::UnknownChannel(_)
            | EngineError::UnknownDestination { .. }
            | EngineError::UnknownMessage(_) => StatusCode::NOT_FOUND,
            EngineError::Config(_) | EngineError::Script { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            EngineError::State { .. } | EngineError::Connector { .. } => StatusCode::CONFLICT,
            EngineError::Store(_) | EngineError::Io { .. } => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self(status, e.to_string())
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        Self(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

fn bad_request(m: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, m.into())
}

type ApiResult<T> = Result<T, ApiError>;

async fn readyz(State(s): State<AdminState>) -> Response {
    let probe = MessageFilter {
        limit: Some(1),
        ..MessageFilter::default()
    };
    match s.engine.store().list(&probe).await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")).into_response(),
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let depths = s.engine.queue_depths().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.engine.metrics().render(&depths),
    )
        .into_response()
}

#[derive(Serialize)]
struct ChannelView {
    name: String,
    description: String,
    state: engine::ChannelState,
    source: Option<String>,
    file: String,
    destinations: Vec<DestinationView>,
    stats: Option<engine::metrics::ChannelStats>,
}

#[derive(Serialize)]
struct DestinationView {
    number: u16,
    name: String,
    paused: bool,
    queue: Option<store::QueueDepth>,
}

async fn channel_view(engine: &Engine, ch: &engine::Channel) -> ChannelView {
    let mut destinations = Vec::new();
    for d in &ch.pipeline.destinations {
        destinations.push(DestinationView {
            number: d.number,
            name: d.name.clone(),
            paused: ch.destination_paused(d.number),
            queue: engine.store().queue_depth(&ch.queue(d.number)).await.ok(),
        });
    }
    ChannelView {
        name: ch.name().to_owned(),
        description: ch.config.description.clone(),
        state: ch.state(),
        source: ch.source_addr().map(|a| a.to_string()),
        file: ch.config.file.display().to_string(),
        destinations,
        stats: engine.metrics().stats(ch.name()),
    }
}

async fn list_channels(State(s): State<AdminState>) -> Json<Vec<ChannelView>> {
    let mut out = Vec::new();
    for ch in s.engine.channels() {
        out.push(channel_view(&s.engine, &ch).await);
    }
    Json(out)
}

async fn show_channel(
    State(s): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ChannelView>> {
    let ch = s.engine.channel(&name)?;
    Ok(Json(channel_view(&s.engine, &ch).await))
}

/// Finds the file of channel `name` in the channels folder: `name.toml`, or the file whose
/// `name` key says so.
fn channel_file(dir: &std::path::Path, name: &str) -> ApiResult<ChannelConfig> {
    let direct = dir.join(format!("{name}.toml"));
    if direct.is_file() {
        let c = ChannelConfig::load(&direct)
            .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
        if c.name == name {
            return Ok(c);
        }
    }
    let all = engine::load_dir(dir)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    all.into_iter().find(|c| c.name == name).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no channel named {name:?} in {}", dir.display()),
        )
    })
}

async fn channel_action(
    State(s): State<AdminState>,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let e = &s.engine;
    match action.as_str() {
        "deploy" => {
            let Some(dir) = &s.channels_dir else {
                return Err(ApiError(
                    StatusCode::CONFLICT,
                    "no channels folder is configured (plexus.toml `channels`)".into(),
                ));
            };
            let config = channel_file(dir, &name)?;
            e.deploy(config).await?;
        }
        "undeploy" => e.undeploy(&name).await?,
        "start" => e.start(&name)?,
        "stop" => e.stop(&name).await?,
        "pause" => e.pause(&name).await?,
        "prune" => {
            let ch = e.channel(&name)?;
            let report = e.prune(&name, &ch.config.retention).await?;
            return Ok(Json(serde_json::to_value(report).unwrap_or_default()));
        }
        other => return Err(bad_request(format!("unknown action {other:?}"))),
    }
    let state = e.channel(&name).map(|c| c.state()).ok();
    Ok(Json(json!({ "channel": name, "state": state })))
}

async fn destination_action(
    State(s): State<AdminState>,
    Path((name, destination, action)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let paused = match action.as_str() {
        "pause" => true,
        "resume" => false,
        other => return Err(bad_request(format!("unknown action {other:?}"))),
    };
    s.engine.pause_destination(&name, &destination, paused)?;
    Ok(Json(
        json!({ "channel": name, "destination": destination, "paused": paused }),
    ))
}

/// Builds a search filter from query parameters; `meta.KEY=VALUE` filters on metadata.
fn filter_from(q: &HashMap<String, String>) -> ApiResult<MessageFilter> {
    let mut f = MessageFilter::default();
    let time = |v: &str| -> ApiResult<Timestamp> {
        v.parse::<Timestamp>()
            .map_err(|e| bad_request(format!("{v:?}: {e}")))
    };
    for (k, v) in q {
        match k.as_str() {
            "channel" => f.channel = Some(v.clone()),
            "status" => {
                f.status = Some(
                    v.to_uppercase()
                        .parse::<Status>()
                        .map_err(|e| bad_request(e.to_string()))?,
                );
            }
            "type" => f.message_type = Some(v.clone()),
            "event" => f.trigger_event = Some(v.clone()),
            "control_id" => f.control_id = Some(v.clone()),
            "from" => f.received_from = Some(time(v)?),
            "to" => f.received_to = Some(time(v)?),
            "original" => {
                f.original_id = Some(
                    v.parse::<MessageId>()
                        .map_err(|e| bad_request(e.to_string()))?,
                );
            }
            "limit" => {
                f.limit = Some(
                    v.parse()
                        .map_err(|_| bad_request(format!("bad limit {v:?}")))?,
                );
            }
            "before" => {
                f.before_id = Some(
                    v.parse::<MessageId>()
                        .map_err(|e| bad_request(e.to_string()))?,
                );
            }
            "destinations" => {}
            other => match other.strip_prefix("meta.") {
                Some(key) => f.metadata.push((key.to_owned(), v.clone())),
                None => return Err(bad_request(format!("unknown search parameter {other:?}"))),
            },
        }
    }
    f.metadata.sort();
    Ok(f)
}

async fn search_messages(
    State(s): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let f = filter_from(&q)?;
    let rows = s.engine.store().list(&f).await?;
    let next = rows.last().map(|r| r.id.to_string());
    Ok(Json(json!({ "messages": rows, "next_before": next })))
}

async fn show_message(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id: MessageId = id
        .parse()
        .map_err(|e: store::ParseValueError| bad_request(e.to_string()))?;
    let m = s
        .engine
        .store()
        .get(id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no message {id}")))?;
    let content: Vec<Value> = m
        .content
        .iter()
        .map(|c| {
            let (encoding, data) = match std::str::from_utf8(&c.bytes) {
                Ok(t) => ("text", t.to_owned()),
                Err(_) => ("hex", engine::ops::hex(&c.bytes)),
            };
            json!({ "destination": c.destination, "stage": c.stage.to_string(), "created_at": c.created_at, "encoding": encoding, "data": data })
        })
        .collect();
    Ok(Json(json!({
        "summary": m.summary,
        "metadata": m.metadata,
        "destinations": m.destinations,
        "content": content,
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ReprocessBody {
    /// Only to these destinations (names or numbers).
    destinations: Option<Vec<String>>,
}

async fn reprocess_one(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    body: Option<Json<ReprocessBody>>,
) -> ApiResult<Json<engine::ops::Reprocessed>> {
    let id: MessageId = id
        .parse()
        .map_err(|e: store::ParseValueError| bad_request(e.to_string()))?;
    let body = body.map(|b| b.0).unwrap_or_default();
    Ok(Json(
        s.engine.reprocess(id, body.destinations.as_deref()).await?,
    ))
}

async fn reprocess_matching(
    State(s): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
    body: Option<Json<ReprocessBody>>,
) -> ApiResult<Json<Value>> {
    let f = filter_from(&q)?;
    if f == MessageFilter::default() {
        return Err(bad_request(
            "give at least one search parameter (e.g. channel, from, to); refusing to reprocess everything",
        ));
    }
    let body = body.map(|b| b.0).unwrap_or_default();
    let done = s
        .engine
        .reprocess_matching(&f, body.destinations.as_deref())
        .await?;
    Ok(Json(
        json!({ "count": done.reprocessed.len(), "reprocessed": done.reprocessed, "failed": done.failed }),
    ))
}

async fn queues(State(s): State<AdminState>) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    for ch in s.engine.channels() {
        for d in &ch.pipeline.destinations {
            let q = ch.queue(d.number);
            let depth = s.engine.store().queue_depth(&q).await?;
            out.push(json!({ "channel": ch.name(), "destination": d.name, "queue": q, "paused": ch.destination_paused(d.number), "depth": depth }));
        }
    }
    Ok(Json(json!({ "queues": out })))
}
