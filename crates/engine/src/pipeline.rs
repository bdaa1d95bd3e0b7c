//! A channel's processing, without IO: preprocessor → source filter → source transformer →
//! for each destination filter → transformer → encoded bytes, then the postprocessor.
//!
//! The same [`Pipeline`] runs in the server (its results then go to the store and the
//! destination queues) and in `plexus test` (its results are compared with expected files).

use std::collections::HashMap;

use script::{Context, Data, DataType, Limits, ScriptPool};
use serde_json::{Map, Value};
use store::{Destination, Status};

use crate::config::{ChannelConfig, QueueConfig};
use crate::error::{EngineError, Result};
use crate::steps::{Env, ScriptCollector, StepError, Steps};

/// One destination's processing steps.
#[derive(Debug)]
pub struct DestinationPlan {
    /// Its number (1-based, file order).
    pub number: Destination,
    /// Its name.
    pub name: String,
    filter: Steps,
    transformer: Steps,
    response_transformer: Steps,
    /// Its queue settings.
    pub queue: QueueConfig,
}

/// A compiled channel pipeline.
pub struct Pipeline {
    /// The channel's name.
    pub channel: String,
    /// What the source receives.
    pub data_type: DataType,
    /// Metadata name → path.
    pub metadata: Vec<(String, String)>,
    preprocessor: Steps,
    filter: Steps,
    transformer: Steps,
    /// The destinations, in number order.
    pub destinations: Vec<DestinationPlan>,
    postprocessor: Steps,
    pool: Option<ScriptPool>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("channel", &self.channel)
            .field("destinations", &self.destinations.len())
            .finish_non_exhaustive()
    }
}

/// What happened to a message at one destination during source processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// The destination's filter rejected it.
    Filtered,
    /// Ready to send: the encoded bytes.
    Encoded(Vec<u8>),
    /// A step failed.
    Error(String),
    /// Not among the destinations a reprocessing asked for.
    Skipped,
}

/// The result of processing one message on the source side.
#[derive(Debug, Clone)]
pub struct Processed {
    /// The message's new status.
    pub status: Status,
    /// Why it is in ERROR.
    pub error: Option<String>,
    /// The source transformer's output, when there is a transformer.
    pub transformed: Option<Vec<u8>>,
    /// Per destination, in number order.
    pub routed: Vec<(Destination, String, Routed)>,
    /// Script log lines (may hold PHI: log at debug only).
    pub logs: Vec<script::LogLine>,
    /// The channel map after the postprocessor.
    pub channel_map: Map<String, Value>,
}

impl Pipeline {
    /// Compiles a channel's steps and starts its script threads (if it has scripts).
    pub fn compile(config: &ChannelConfig) -> Result<Self> {
        let mut scripts = ScriptCollector::default();
        let mut tables = HashMap::new();
        let base = &config.base_dir;
        let file = &config.file;
        let mut steps = |c, role, where_: &str| {
            Steps::compile(c, role, where_, base, file, &mut scripts, &mut tables)
        };
        let preprocessor = steps(&config.preprocessor, "preprocessor", "")?;
        let filter = steps(&config.filter, "filter", "")?;
        let transformer = steps(&config.transformer, "transformer", "")?;
        let postprocessor = steps(&config.postprocessor, "postprocessor", "")?;
        let mut destinations = Vec::new();
        for (number, d) in config.numbered() {
            let at = format!("destination {:?} ", d.name);
            destinations.push(DestinationPlan {
                number,
                name: d.name.clone(),
                filter: steps(&d.filter, "filter", &at)?,
                transformer: steps(&d.transformer, "transformer", &at)?,
                response_transformer: steps(&d.response_transformer, "response transformer", &at)?,
                queue: d.queue.clone(),
            });
        }
        let pool = if scripts.sources.is_empty() {
            None
        } else {
            let limits = Limits {
                memory_bytes: config.script.memory_mb.saturating_mul(1 << 20),
                time: config.script.time_limit,
            };
            Some(
                ScriptPool::new(config.script.threads, limits, scripts.sources).map_err(
                    |source| EngineError::Script {
                        channel: config.name.clone(),
                        source,
                    },
                )?,
            )
        };
        Ok(Self {
            channel: config.name.clone(),
            data_type: config.data_type,
            metadata: config
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            preprocessor,
            filter,
            transformer,
            destinations,
            postprocessor,
            pool,
        })
    }

    /// The destination numbered `n`.
    pub fn destination(&self, n: Destination) -> Option<&DestinationPlan> {
        self.destinations.iter().find(|d| d.number == n)
    }

    /// Processes a received message up to the destination queues. `route_only` limits the
    /// destinations (reprocessing); `source_map` carries what the source knows (peer, file).
    #[allow(clippy::too_many_lines)] // the steps in their documented order, in one place
    pub async fn process(
        &self,
        raw: &[u8],
        message_id: &str,
        source_map: Map<String, Value>,
        route_only: Option<&[Destination]>,
    ) -> Processed {
        let env = Env {
            message_id,
            channel: &self.channel,
        };
        let mut out = Processed {
            status: Status::Error,
            error: None,
            transformed: None,
            routed: Vec::new(),
            logs: Vec::new(),
            channel_map: Map::new(),
        };
        let fail = |mut out: Processed, ctx: Option<Context>, e: String| {
            if let Some(ctx) = ctx {
                out.logs = ctx.logs;
                out.channel_map = ctx.channel_map;
            }
            out.status = Status::Error;
            out.error = Some(e);
            out
        };

        let mut bytes = std::borrow::Cow::Borrowed(raw);
        let mut maps = (Map::new(), Map::new());
        let mut logs = Vec::new();
        if !self.preprocessor.is_empty() {
            let Ok(text) = std::str::from_utf8(raw) else {
                return fail(out, None, "the preprocessor needs UTF-8 input".into());
            };
            let ctx = context(Data::Raw(text.to_owned()), source_map.clone());
            let (ctx, r) = self.preprocessor.run(ctx, &env, self.pool.as_ref()).await;
            if let Err(e) = r {
                return fail(out, Some(ctx), e.to_string());
            }
            bytes = std::borrow::Cow::Owned(ctx.data.encode());
            maps = (ctx.channel_map, ctx.response_map);
            logs = ctx.logs;
        }
        let data = match Data::parse(self.data_type, &bytes) {
            Ok(d) => d,
            Err(e) => {
                return fail(
                    out,
                    None,
                    format!("the message is not valid {}: {e}", self.data_type),
                );
            }
        };
        let mut ctx = context(data, source_map);
        (ctx.channel_map, ctx.response_map, ctx.logs) = (maps.0, maps.1, logs);

        let (c, r) = self.filter.run(ctx, &env, self.pool.as_ref()).await;
        ctx = c;
        match r {
            Err(e) => return fail(out, Some(ctx), e.to_string()),
            Ok(false) => {
                out.status = Status::Filtered;
                out.logs = ctx.logs;
                out.channel_map = ctx.channel_map;
                return out;
            }
            Ok(true) => {}
        }
        if !self.transformer.is_empty() {
            let (c, r) = self.transformer.run(ctx, &env, self.pool.as_ref()).await;
            ctx = c;
            if let Err(e) = r {
                return fail(out, Some(ctx), e.to_string());
            }
            out.transformed = Some(ctx.data.encode());
        }

        let mut first_error = None;
        for d in &self.destinations {
            if route_only.is_some_and(|only| !only.contains(&d.number)) {
                out.routed.push((d.number, d.name.clone(), Routed::Skipped));
                continue;
            }
            let mut dctx = Context {
                data: ctx.data.clone(),
                channel_map: ctx.channel_map.clone(),
                response_map: ctx.response_map.clone(),
                source_map: ctx.source_map.clone(),
                logs: Vec::new(),
            };
            let (c, r) = run_destination(d, dctx, &env, self.pool.as_ref()).await;
            dctx = c;
            let routed = match r {
                Ok(Some(bytes)) => Routed::Encoded(bytes),
                Ok(None) => Routed::Filtered,
                Err(e) => {
                    let text = format!("destination {:?}: {e}", d.name);
                    first_error.get_or_insert_with(|| text.clone());
                    Routed::Error(text)
                }
            };
            // what destination steps put in the maps is seen by the postprocessor
            ctx.channel_map.extend(dctx.channel_map);
            ctx.response_map.extend(dctx.response_map);
            ctx.logs.extend(dctx.logs);
            let status = match &routed {
                Routed::Encoded(_) => "QUEUED",
                Routed::Filtered => "FILTERED",
                Routed::Error(_) => "ERROR",
                Routed::Skipped => "SKIPPED",
            };
            ctx.response_map
                .insert(d.name.clone(), Value::String(status.into()));
            out.routed.push((d.number, d.name.clone(), routed));
        }

        if !self.postprocessor.is_empty() {
            let (c, r) = self.postprocessor.run(ctx, &env, self.pool.as_ref()).await;
            ctx = c;
            if let Err(e) = r {
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
        out.logs = ctx.logs;
        out.channel_map = ctx.channel_map;
        let any = |f: fn(&Routed) -> bool| out.routed.iter().any(|(_, _, r)| f(r));
        out.status = if let Some(e) = first_error {
            out.error = Some(e);
            Status::Error
        } else if any(|r| matches!(r, Routed::Encoded(_))) {
            Status::Queued
        } else if self.destinations.is_empty() {
            Status::Transformed
        } else {
            Status::Filtered
        };
        out
    }

    /// Runs a destination's response transformer on the response it got; returns the
    /// transformed response (or the response itself without a transformer).
    pub async fn transform_response(
        &self,
        destination: Destination,
        message_id: &str,
        response: &[u8],
    ) -> std::result::Result<Vec<u8>, StepError> {
        let Some(d) = self.destination(destination) else {
            return Ok(response.to_vec());
        };
        if d.response_transformer.is_empty() {
            return Ok(response.to_vec());
        }
        let data = Data::parse(DataType::Hl7v2, response)
            .unwrap_or_else(|_| Data::Raw(String::from_utf8_lossy(response).into_owned()));
        let env = Env {
            message_id,
            channel: &self.channel,
        };
        let ctx = context(data, Map::new());
        let (ctx, r) = d
            .response_transformer
            .run(ctx, &env, self.pool.as_ref())
            .await;
        r.map(|_| ctx.data.encode())
    }

    /// The longest a script may run, for callers that bound a whole message's processing.
    pub fn has_scripts(&self) -> bool {
        self.pool.is_some()
    }
}

async fn run_destination(
    d: &DestinationPlan,
    ctx: Context,
    env: &Env<'_>,
    pool: Option<&ScriptPool>,
) -> (Context, std::result::Result<Option<Vec<u8>>, StepError>) {
    let (ctx, r) = d.filter.run(ctx, env, pool).await;
    match r {
        Err(e) => return (ctx, Err(e)),
        Ok(false) => return (ctx, Ok(None)),
        Ok(true) => {}
    }
    let (ctx, r) = d.transformer.run(ctx, env, pool).await;
    if let Err(e) = r {
        return (ctx, Err(e));
    }
    let bytes = ctx.data.encode();
    (ctx, Ok(Some(bytes)))
}

fn context(data: Data, source_map: Map<String, Value>) -> Context {
    Context {
        data,
        channel_map: Map::new(),
        response_map: Map::new(),
        source_map,
        logs: Vec::new(),
    }
}
