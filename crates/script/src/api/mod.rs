//! The objects a script gets: `msg` and `logger` (built once per compiled script), and the
//! per-run state they work on.

mod convert;
pub(crate) mod hl7;
pub(crate) mod json_path;
mod msg;

use std::cell::RefCell;
use std::rc::Rc;

use rquickjs::function::{IntoJsFunc, Rest};
use rquickjs::{CatchResultExt, Coerced, Ctx, Exception, FromJs, Function, Object, Value};

pub(crate) use convert::{js_to_map, map_to_js};

use crate::context::{LogLevel, LogLine};
use crate::data::Data;

/// The `name` of errors thrown by the API, so they can be told from the script's own.
pub(crate) const API_ERROR_NAME: &str = "PlexusError";
/// At most this many log lines are kept per run.
pub(crate) const MAX_LOG_LINES: usize = 1_000;
/// At most this many bytes of log text are kept per run.
pub(crate) const MAX_LOG_BYTES: usize = 1 << 20;

/// What the API works on during one run; shared by every function of a sandbox.
#[derive(Debug)]
pub(crate) struct RunState {
    /// The message, moved in from the [`Context`](crate::Context) for the run.
    pub data: Data,
    pub logs: Vec<LogLine>,
    log_bytes: usize,
    logs_dropped: usize,
    /// Bytes the API stored on the Rust side since the data's size was last measured.
    written: usize,
    /// How large the data may grow ([`Limits::memory_bytes`](crate::Limits::memory_bytes)).
    memory_bytes: usize,
    /// The data grew past `memory_bytes`: the run fails with OutOfMemory.
    pub over_budget: bool,
}

pub(crate) type Shared = Rc<RefCell<RunState>>;

impl RunState {
    pub fn new(memory_bytes: usize) -> Self {
        Self {
            data: Data::Raw(String::new()),
            logs: Vec::new(),
            log_bytes: 0,
            logs_dropped: 0,
            written: 0,
            memory_bytes,
            over_budget: false,
        }
    }

    /// Starts a run on `data`.
    pub fn begin(&mut self, data: Data) {
        self.data = data;
        self.logs.clear();
        self.log_bytes = 0;
        self.logs_dropped = 0;
        self.written = 0;
        self.over_budget = false;
    }

    /// Ends a run: gives back the data and the log lines.
    pub fn finish(&mut self) -> (Data, Vec<LogLine>) {
        let data = std::mem::replace(&mut self.data, Data::Raw(String::new()));
        let mut logs = std::mem::take(&mut self.logs);
        if self.logs_dropped > 0 {
            logs.push(LogLine {
                level: LogLevel::Warn,
                text: format!(
                    "{} more log lines were dropped (at most {MAX_LOG_LINES} lines and \
                     {MAX_LOG_BYTES} bytes per run)",
                    self.logs_dropped
                ),
            });
        }
        (data, logs)
    }

    /// Counts bytes the API just stored; past the budget, measures the data for real.
    fn charge(&mut self, bytes: usize) -> Result<(), String> {
        self.written = self.written.saturating_add(bytes);
        if self.written <= self.memory_bytes {
            return Ok(());
        }
        let size = self.data.encode().len();
        if size > self.memory_bytes {
            self.over_budget = true;
            return Err(format!(
                "out of memory: the message grew to {size} bytes, past the limit of {} bytes",
                self.memory_bytes
            ));
        }
        self.written = size;
        Ok(())
    }

    fn log(&mut self, level: LogLevel, text: String) {
        if self.logs.len() >= MAX_LOG_LINES || self.log_bytes + text.len() > MAX_LOG_BYTES {
            self.logs_dropped += 1;
            return;
        }
        self.log_bytes += text.len();
        self.logs.push(LogLine { level, text });
    }
}

/// A `PlexusError` to throw from an API function.
pub(crate) fn throw(ctx: &Ctx<'_>, message: &str) -> rquickjs::Error {
    match Exception::from_message(ctx.clone(), message) {
        Ok(e) => {
            let _ = e.as_object().set("name", API_ERROR_NAME);
            ctx.throw(e.into_value())
        }
        Err(e) => e,
    }
}

/// Runs `f` on the run state; its error becomes a `PlexusError` prefixed with `op`.
///
/// Never call back into JavaScript inside `f`: the state is borrowed.
pub(crate) fn with_state<R>(
    ctx: &Ctx<'_>,
    shared: &Shared,
    op: &str,
    f: impl FnOnce(&mut RunState) -> Result<R, String>,
) -> rquickjs::Result<R> {
    let mut st = shared
        .try_borrow_mut()
        .map_err(|_| throw(ctx, &format!("{op}: called while another API call runs")))?;
    f(&mut st).map_err(|m| throw(ctx, &format!("{op}: {m}")))
}

/// Adds a method to an object.
pub(crate) fn method<'js, P, F>(
    ctx: &Ctx<'js>,
    obj: &Object<'js>,
    name: &str,
    f: F,
) -> rquickjs::Result<()>
where
    F: IntoJsFunc<'js, P> + 'js,
{
    obj.set(name, Function::new(ctx.clone(), f)?.with_name(name)?)
}

/// The objects built once per compiled script.
pub(crate) struct Api<'js> {
    pub msg: Object<'js>,
    pub logger: Object<'js>,
    /// Freezes an object and everything in it (captured before user code runs, so a script
    /// replacing `Object.freeze` cannot undo it).
    pub deep_freeze: Function<'js>,
    /// A frozen `{}`, the `sourceMap` of runs that have none.
    pub empty: Object<'js>,
}

const DEEP_FREEZE: &str = r#"(function (freeze, names) {
  return function deepFreeze(o) {
    if (o !== null && (typeof o === "object" || typeof o === "function")) {
      var keys = names(o);
      for (var i = 0; i < keys.length; i++) {
        var d = Object.getOwnPropertyDescriptor(o, keys[i]);
        if (d && "value" in d) deepFreeze(d.value);
      }
      freeze(o);
    }
    return o;
  };
})(Object.freeze, Object.getOwnPropertyNames)"#;

/// Builds `msg` and `logger` in a fresh context, frozen.
pub(crate) fn install<'js>(ctx: &Ctx<'js>, shared: &Shared) -> rquickjs::Result<Api<'js>> {
    let deep_freeze: Function = ctx.eval(DEEP_FREEZE)?;
    let msg = msg::build(ctx, shared)?;
    let logger = logger(ctx, shared)?;
    let empty = Object::new(ctx.clone())?;
    for o in [&msg, &logger, &empty] {
        deep_freeze.call::<_, Value>((o.clone(),))?;
    }
    Ok(Api {
        msg,
        logger,
        deep_freeze,
        empty,
    })
}

fn logger<'js>(ctx: &Ctx<'js>, shared: &Shared) -> rquickjs::Result<Object<'js>> {
    let logger = Object::new(ctx.clone())?;
    for (name, level) in [
        ("debug", LogLevel::Debug),
        ("info", LogLevel::Info),
        ("warn", LogLevel::Warn),
        ("error", LogLevel::Error),
    ] {
        let shared = shared.clone();
        method(
            ctx,
            &logger,
            name,
            move |ctx: Ctx<'js>, args: Rest<Value<'js>>| -> rquickjs::Result<()> {
                let mut text = String::new();
                for (i, v) in args.0.into_iter().enumerate() {
                    if i > 0 {
                        text.push(' ');
                    }
                    text.push_str(&log_text(&ctx, v)?);
                }
                with_state(&ctx, &shared, "logger", |st| {
                    st.log(level, text);
                    Ok(())
                })
            },
        )?;
    }
    Ok(logger)
}

/// A logged value as text: strings as they are, plain objects and arrays as JSON, anything
/// else as `String(value)`.
fn log_text<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> rquickjs::Result<String> {
    if let Some(s) = v.as_string() {
        return s.to_string();
    }
    if (v.is_object() || v.is_array()) && !v.is_function() && !v.is_error() {
        let plain = v
            .as_object()
            .and_then(Object::get_prototype)
            .is_none_or(|p| p.get_prototype().is_none());
        if plain || v.is_array() {
            // a value JSON cannot hold (a BigInt, a cycle) falls back to String(value)
            if let Ok(Some(s)) = ctx.json_stringify(v.clone()).catch(ctx) {
                return s.to_string();
            }
        }
    }
    Ok(Coerced::<String>::from_js(ctx, v)?.0)
}
