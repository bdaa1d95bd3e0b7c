//! # engine — Plexus' channel engine
//!
//! A channel takes a message from its source, filters and transforms it, and delivers it to
//! one or more destinations, reliably. This crate reads channel files ([`config`]), compiles
//! their steps ([`steps`]: declarative rules and JavaScript run by the `script` crate) into a
//! [`Pipeline`] that needs no IO (so `plexus test` runs it offline), and runs deployed
//! channels on a store ([`Engine`]):
//!
//! ```text
//! source ──▶ preprocessor → filter → transformer
//!             → per destination: filter → transformer → ENCODED
//!        ──▶ journal row + content + destination queues   (one transaction) ──commit──▶ ACK
//!   destination worker(s): send → response transformer → SENT/RESPONSE, status  (one transaction)
//!        failures: retry with exponential backoff, then ERROR (dead letter)
//! ```
//!
//! Every step's result is written in the transaction that completes its queue item, so a
//! crash anywhere means the step is done again (at-least-once), never lost. A destination
//! with one worker (the default) delivers in order: a failing message holds back only its
//! own destination, and only while it has attempts left.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<store::AnyStore>) -> Result<(), engine::EngineError> {
//! use engine::{ChannelConfig, Engine, EngineConfig};
//! let engine = Engine::new(store, EngineConfig::default());
//! let channel = ChannelConfig::load(std::path::Path::new("channels/adt-router.toml"))?;
//! engine.deploy(channel).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod intake;
pub mod metrics;
pub mod ops;
pub mod pipeline;
mod runtime;
mod sender;
pub mod source;
pub mod steps;
pub mod testing;
pub mod to_fhir;
mod worker;

pub use config::{ChannelConfig, load_dir};
pub use error::{ConfigError, EngineError, Result};
pub use pipeline::{Pipeline, Processed, Routed};
pub use runtime::{Channel, ChannelState, Engine, EngineConfig, Finished, is_final, queue_name};
