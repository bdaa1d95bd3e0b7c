//! # script — channel filters and transformers in sandboxed JavaScript
//!
//! Plexus channels can filter and transform messages with JavaScript, as Mirth Connect's
//! JavaScript steps do, but in a sandbox: each script runs in [QuickJS] (through `rquickjs`)
//! with only the standard built-ins and the Plexus API — `msg`, `channelMap`, `responseMap`,
//! `sourceMap`, `logger` — and no files, network, modules or `require`. Each run has a memory
//! limit and a wall-clock deadline; a script that loops forever or allocates without end is
//! stopped with [`ScriptErrorKind::Timeout`] or [`ScriptErrorKind::OutOfMemory`], and the
//! same [`Sandbox`] keeps working for the next message.
//!
//! Scripts are compiled once and run many times. `msg` calls into Rust on the working
//! [`Data`] (an HL7 v2 [`hl7v2::MessageBuf`], JSON, XML or raw text): reading or setting a
//! field does not copy the message into JavaScript. [`Sandbox`] is one runtime for one
//! thread; [`ScriptPool`] is a `Send + Sync` handle to worker threads for async code. The
//! script API is documented for script authors in `docs/scripting.md`.
//!
//! ```
//! use script::{Context, Data, DataType, Limits, Outcome, Sandbox, ScriptKind};
//!
//! let mut sandbox = Sandbox::new(Limits::default())?;
//! let id = sandbox.compile(
//!     "adt/transformer",
//!     r#"msg.set("PID-5-1", msg.get("PID-5-1").toUpperCase());
//! channelMap.mrn = msg.get("PID-3-1");"#,
//!     ScriptKind::Transformer,
//! )?;
//! let data = Data::parse(DataType::Hl7v2, b"MSH|^~\\&|A|B|C|D|202601011200||ADT^A01|1|P|2.5\rPID|1||123||Doe^Jane\r")?;
//! let mut cx = Context::new(data);
//! assert_eq!(sandbox.run(id, &mut cx)?, Outcome::Accept);
//! assert!(String::from_utf8(cx.data.encode())?.ends_with("PID|1||123||DOE^Jane\r"));
//! assert_eq!(cx.channel_map["mrn"], "123");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Unsafe code
//!
//! `rquickjs` wraps QuickJS in a safe API, and this crate uses it everywhere but in one
//! place: when a run's deadline passes, the interrupt handler lifts the runtime's memory
//! limit (one call to `JS_SetMemoryLimit`) so that QuickJS can allocate the uncatchable
//! "interrupted" error. Without it, a script that filled memory and catches errors in a loop
//! would get a catchable `null` instead and never stop. The safe `Runtime::set_memory_limit`
//! cannot be called there, since the running script holds the runtime's lock. Hence
//! `unsafe_code` is `deny` here (the workspace forbids it), with one `allow`.
//!
//! ## Limits of the sandbox
//!
//! QuickJS runs in the engine's process. The limits stop runaway scripts, but a defect in
//! QuickJS itself (it has `abort()` calls on some paths it considers unreachable, a few of
//! them near allocation failures) would still end the process; running scripts in separate
//! processes would be the next step if scripts come from people the operator does not trust.
//!
//! [QuickJS]: https://github.com/quickjs-ng/quickjs

#![deny(unsafe_code)]

mod api;
mod context;
mod data;
mod error;
mod pool;
mod sandbox;

pub use context::{Context, LogLevel, LogLine, Outcome};
pub use data::{Data, DataError, DataType, UnknownDataType};
pub use error::{ScriptError, ScriptErrorKind};
pub use pool::ScriptPool;
pub use sandbox::{Limits, Sandbox, ScriptId, ScriptKind, ScriptSource};
