//! [`Sandbox`]: one QuickJS runtime with compiled scripts, run under limits.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rquickjs::context::EvalOptions;
use rquickjs::context::intrinsic::{
    Date, Eval, Json, MapSet, Promise, Proxy, RegExp, RegExpCompiler, TypedArrays, WeakRef,
};
use rquickjs::{
    CatchResultExt, CaughtError, Coerced, Ctx, FromJs, Function, Object, Persistent, Runtime, Value,
};

use crate::api::{self, API_ERROR_NAME, RunState, Shared};
use crate::context::{Context, Outcome};
use crate::data::Data;
use crate::error::{ScriptError, ScriptErrorKind};

/// The standard built-ins a script gets (plus the base objects QuickJS always adds). No
/// `std`/`os` modules, no module loader, no console: the only way out is the Plexus API.
type Intrinsics = (
    Date,
    Eval,
    RegExpCompiler,
    RegExp,
    Json,
    Proxy,
    MapSet,
    TypedArrays,
    Promise,
    WeakRef,
);

/// The user's source goes right after this on the same line, so its line numbers are the
/// script's own (columns on line 1 are shifted back by its length).
const PREFIX: &str = "(function (msg, channelMap, responseMap, sourceMap, logger) {";
const SUFFIX: &str = "\n})";
/// Largest stack JavaScript may use (QuickJS throws a RangeError past it).
const MAX_STACK: usize = 512 * 1024;

/// Resource limits for each compile and each run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How much memory a script may allocate beyond what the compiled scripts hold; also
    /// caps how large the API lets the message grow.
    pub memory_bytes: usize,
    /// Wall-clock time one run may take.
    pub time: Duration,
}

impl Default for Limits {
    /// 32 MiB and one second.
    fn default() -> Self {
        Self {
            memory_bytes: 32 << 20,
            time: Duration::from_secs(1),
        }
    }
}

/// What a script is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScriptKind {
    /// Decides: a truthy return value accepts the message, anything else rejects it.
    Filter,
    /// Changes the message; its return value is ignored and it always accepts.
    Transformer,
}

/// A compiled script in a [`Sandbox`] (or a [`ScriptPool`](crate::ScriptPool)): ids count
/// from 0 in the order scripts were compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScriptId(pub(crate) usize);

impl ScriptId {
    /// The position of the script in compile order.
    pub fn index(self) -> usize {
        self.0
    }
}

/// A script to compile: its name (used in errors), source and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSource {
    /// Name shown in errors and stack traces, e.g. `adt-in/transformer`.
    pub name: String,
    /// The JavaScript: a function body (`return` works).
    pub source: String,
    /// Filter or transformer.
    pub kind: ScriptKind,
}

/// The deadline of the compile or run in progress; read by QuickJS' interrupt handler.
#[derive(Debug, Default)]
struct Clock {
    deadline: Cell<Option<Instant>>,
    fired: Cell<bool>,
}

impl Clock {
    fn arm(&self, time: Duration) {
        self.fired.set(false);
        self.deadline.set(Instant::now().checked_add(time));
    }

    fn disarm(&self) {
        self.deadline.set(None);
    }

    fn expired(&self) -> bool {
        if self.fired.get() {
            return true;
        }
        let late = self.deadline.get().is_some_and(|d| Instant::now() >= d);
        if late {
            self.fired.set(true);
        }
        late
    }
}

/// Removes the memory limit of the runtime whose interrupt handler is running.
///
/// When the deadline passes, QuickJS throws an uncatchable "interrupted" error, but it must
/// allocate that error first. A script that filled memory to the limit gets a catchable
/// `null` instead, and a script catching errors in a loop would then never stop. So the
/// handler lifts the limit just before the throw (the run ends right after, and
/// [`Sandbox::run`] sets the limit again). rquickjs offers no safe way to do this from the
/// handler: `Runtime::set_memory_limit` needs the runtime lock, which the running script holds.
#[allow(unsafe_code)]
fn lift_memory_limit(runtime: *mut rquickjs::qjs::JSRuntime) {
    // SAFETY: `runtime` comes from the runtime that owns the interrupt handler calling this,
    // so it is alive; QuickJS calls the handler on the thread running that runtime, and
    // JS_SetMemoryLimit only stores a size in the runtime's allocator state.
    unsafe { rquickjs::qjs::JS_SetMemoryLimit(runtime, 0) }
}

/// A compiled script: its function and the API objects of its own context.
struct Compiled {
    // Persistent values must be released before the context and runtime: fields drop in order.
    run: Persistent<Function<'static>>,
    msg: Persistent<Object<'static>>,
    logger: Persistent<Object<'static>>,
    deep_freeze: Persistent<Function<'static>>,
    empty: Persistent<Object<'static>>,
    context: rquickjs::Context,
    name: String,
    /// The name as given to QuickJS (control characters replaced), as stack traces show it.
    file: String,
    kind: ScriptKind,
    /// Lines in the user's source.
    lines: u32,
}

/// A runtime and its compiled scripts.
struct Engine {
    // compiled scripts (their persistent values and contexts) go before the runtime
    scripts: Vec<Compiled>,
    runtime: Runtime,
}

impl Engine {
    fn new(clock: &Rc<Clock>) -> Result<Self, ScriptError> {
        let runtime = Runtime::new().map_err(|e| {
            ScriptError::new(
                ScriptErrorKind::Api,
                "(sandbox)",
                format!("cannot create a JavaScript runtime: {e}"),
            )
        })?;
        runtime.set_max_stack_size(MAX_STACK);
        let raw = rquickjs::Context::base(&runtime)
            .map_err(|e| {
                ScriptError::new(
                    ScriptErrorKind::Api,
                    "(sandbox)",
                    format!("cannot create a JavaScript context: {e}"),
                )
            })?
            .get_runtime_ptr();
        let clock = clock.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let stop = clock.expired();
            if stop {
                lift_memory_limit(raw);
            }
            stop
        })));
        Ok(Self {
            scripts: Vec::new(),
            runtime,
        })
    }

    fn memory_in_use(&self) -> usize {
        usize::try_from(self.runtime.memory_usage().malloc_size).unwrap_or(0)
    }

    /// Lets the next compile or run allocate `memory_bytes` beyond what is in use now.
    fn reset_memory_limit(&self, memory_bytes: usize) {
        let limit = self.memory_in_use().saturating_add(memory_bytes);
        self.runtime.set_memory_limit(limit);
    }

    fn compile(
        &mut self,
        source: &ScriptSource,
        shared: &Shared,
        clock: &Clock,
        limits: Limits,
    ) -> Result<ScriptId, ScriptError> {
        let file: String = source
            .name
            .chars()
            .map(|c| if c.is_control() { '_' } else { c })
            .collect();
        let lines = u32::try_from(source.source.lines().count().max(1)).unwrap_or(u32::MAX);
        let failed = |kind, message: String| ScriptError::new(kind, &source.name, message);
        self.reset_memory_limit(limits.memory_bytes);
        clock.arm(limits.time);
        let context = rquickjs::Context::custom::<Intrinsics>(&self.runtime).map_err(|e| {
            failed(
                ScriptErrorKind::OutOfMemory,
                format!("cannot create a JavaScript context: {e}"),
            )
        });
        let compiled = context.and_then(|context| {
            context
                .with(|ctx| {
                    let api = api::install(&ctx, shared).catch(&ctx).map_err(|e| {
                        failed(
                            ScriptErrorKind::Api,
                            format!("cannot install the script API: {e}"),
                        )
                    })?;
                    let mut options = EvalOptions::default();
                    options.strict = true;
                    options.filename = Some(file.clone());
                    let wrapped = format!("{PREFIX}{}{SUFFIX}", source.source);
                    let value: Value = ctx
                        .eval_with_options(wrapped.as_bytes(), options)
                        .catch(&ctx)
                        .map_err(|e| {
                            let f = Failure::from_caught(&ctx, e);
                            f.into_error(
                                &source.name,
                                &file,
                                lines,
                                ScriptErrorKind::Compile,
                                clock,
                                limits,
                            )
                        })?;
                    // a source that closes the wrapper (`}); ...`) gives another function, or none
                    let whole = &wrapped[1..wrapped.len() - 1];
                    let Some(run) = value.into_function().filter(|f| {
                        Coerced::<String>::from_js(&ctx, f.clone().into_value())
                            .catch(&ctx)
                            .is_ok_and(|text| text.0 == whole)
                    }) else {
                        return Err(failed(
                            ScriptErrorKind::Compile,
                            "the source closes the function it is wrapped in; a script is a \
                         function body"
                                .into(),
                        ));
                    };
                    Ok((
                        Persistent::save(&ctx, run),
                        Persistent::save(&ctx, api.msg),
                        Persistent::save(&ctx, api.logger),
                        Persistent::save(&ctx, api.deep_freeze),
                        Persistent::save(&ctx, api.empty),
                    ))
                })
                .map(|p| (p, context))
        });
        clock.disarm();
        // also after a failure: a compile that timed out had the limit lifted
        self.reset_memory_limit(limits.memory_bytes);
        let ((run, msg, logger, deep_freeze, empty), context) = compiled?;
        self.scripts.push(Compiled {
            run,
            msg,
            logger,
            deep_freeze,
            empty,
            context,
            name: source.name.clone(),
            file,
            kind: source.kind,
            lines,
        });
        self.reset_memory_limit(limits.memory_bytes);
        Ok(ScriptId(self.scripts.len() - 1))
    }
}

/// One QuickJS runtime holding compiled scripts, for one worker thread.
///
/// A sandbox is not `Send` (QuickJS values live in it); use [`ScriptPool`](crate::ScriptPool)
/// from async code. Each script gets its own JavaScript context, so scripts do not share
/// globals or built-ins; runs of one script do, and globals a script sets survive between
/// its runs on this sandbox (do not rely on it: pools have many sandboxes, and a sandbox is
/// rebuilt after running out of memory).
pub struct Sandbox {
    engine: Engine,
    sources: Vec<ScriptSource>,
    shared: Shared,
    clock: Rc<Clock>,
    limits: Limits,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("scripts", &self.sources.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// A sandbox with no scripts.
    pub fn new(limits: Limits) -> Result<Self, ScriptError> {
        let clock = Rc::new(Clock::default());
        Ok(Self {
            engine: Engine::new(&clock)?,
            sources: Vec::new(),
            shared: Rc::new(RefCell::new(RunState::new(limits.memory_bytes))),
            clock,
            limits,
        })
    }

    /// The limits every compile and run is held to.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Compiles a script once, to run many times. `source` is the body of a function:
    /// `return` works, and errors report lines of `source` itself.
    pub fn compile(
        &mut self,
        name: &str,
        source: &str,
        kind: ScriptKind,
    ) -> Result<ScriptId, ScriptError> {
        let source = ScriptSource {
            name: name.to_owned(),
            source: source.to_owned(),
            kind,
        };
        let id = self
            .engine
            .compile(&source, &self.shared, &self.clock, self.limits);
        if id
            .as_ref()
            .is_err_and(|e| e.kind == ScriptErrorKind::OutOfMemory)
        {
            let _ = self.rebuild();
        }
        let id = id?;
        self.sources.push(source);
        Ok(id)
    }

    /// The name a script was compiled with.
    pub fn name(&self, id: ScriptId) -> Option<&str> {
        self.sources.get(id.0).map(|s| s.name.as_str())
    }

    /// How many scripts are compiled.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether no script is compiled.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Runs a script on `cx`: `msg` works on `cx.data`, the maps are copied in and (after a
    /// successful run) back, log lines are appended to `cx.logs`.
    ///
    /// A run that times out or runs out of memory leaves the sandbox usable for the next
    /// run (after running out of memory the runtime is rebuilt and the scripts recompiled).
    pub fn run(&mut self, id: ScriptId, cx: &mut Context) -> Result<Outcome, ScriptError> {
        let Some(script) = self.engine.scripts.get(id.0) else {
            return Err(ScriptError::new(
                ScriptErrorKind::Api,
                "(sandbox)",
                format!("no script with id {} in this sandbox", id.0),
            ));
        };
        let data = std::mem::replace(&mut cx.data, Data::Raw(String::new()));
        self.shared.borrow_mut().begin(data);
        self.clock.arm(self.limits.time);
        let result = script
            .context
            .with(|ctx| invoke(&ctx, script, cx, &self.clock));
        self.clock.disarm();
        if self.clock.fired.get() {
            // the interrupt handler lifted the limit
            self.engine.reset_memory_limit(self.limits.memory_bytes);
        }
        let over_budget = self.shared.borrow().over_budget;
        let (data, logs) = self.shared.borrow_mut().finish();
        cx.data = data;
        cx.logs.extend(logs);
        let result = result.map_err(|f| {
            let f = if over_budget { Failure::OverBudget } else { f };
            f.into_error(
                &script.name,
                &script.file,
                script.lines,
                ScriptErrorKind::Exception,
                &self.clock,
                self.limits,
            )
        });
        let rebuild = match &result {
            Err(e) if e.kind == ScriptErrorKind::OutOfMemory => true,
            // a job left behind by an interrupted script would run in the next one's time
            Err(e) if e.kind == ScriptErrorKind::Timeout => self.engine.runtime.is_job_pending(),
            _ => false,
        };
        if rebuild {
            // on failure the old runtime stays; the next out-of-memory error tries again
            let _ = self.rebuild();
        }
        result
    }

    /// Replaces the runtime with a fresh one and recompiles every script, keeping ids.
    fn rebuild(&mut self) -> Result<(), ScriptError> {
        let mut engine = Engine::new(&self.clock)?;
        for s in &self.sources {
            engine.compile(s, &self.shared, &self.clock, self.limits)?;
        }
        self.engine = engine;
        Ok(())
    }
}

/// Calls the script's function inside its context.
fn invoke(
    ctx: &Ctx<'_>,
    script: &Compiled,
    cx: &mut Context,
    clock: &Clock,
) -> Result<Outcome, Failure> {
    let caught = |e: rquickjs::Error| Failure::from_caught(ctx, CaughtError::from_error(ctx, e));
    let run = script.run.clone().restore(ctx).map_err(caught)?;
    let msg = script.msg.clone().restore(ctx).map_err(caught)?;
    let logger = script.logger.clone().restore(ctx).map_err(caught)?;
    let channel = api::map_to_js(ctx, &cx.channel_map).map_err(caught)?;
    let response = api::map_to_js(ctx, &cx.response_map).map_err(caught)?;
    let source = if cx.source_map.is_empty() {
        script.empty.clone().restore(ctx).map_err(caught)?
    } else {
        let freeze = script.deep_freeze.clone().restore(ctx).map_err(caught)?;
        let map = api::map_to_js(ctx, &cx.source_map).map_err(caught)?;
        freeze.call((map,)).map_err(caught)?
    };
    let returned: Value = run
        .call((msg, channel.clone(), response.clone(), source, logger))
        .catch(ctx)
        .map_err(|e| Failure::from_caught(ctx, e))?;
    // promise callbacks the script queued run now, within the same deadline
    while !clock.expired() && ctx.execute_pending_job() {}
    if clock.expired() {
        return Err(Failure::Thrown {
            name: None,
            message: "interrupted".into(),
            stack: None,
        });
    }
    let outcome = match script.kind {
        ScriptKind::Transformer => Outcome::Accept,
        ScriptKind::Filter => {
            let accept = Coerced::<bool>::from_js(ctx, returned).is_ok_and(|b| b.0);
            if accept {
                Outcome::Accept
            } else {
                Outcome::Reject
            }
        }
    };
    let channel = api::js_to_map(ctx, channel)
        .catch(ctx)
        .map_err(|e| Failure::map("channelMap", ctx, e))?
        .map_err(|e| Failure::Map(format!("channelMap: {e}")))?;
    let response = api::js_to_map(ctx, response)
        .catch(ctx)
        .map_err(|e| Failure::map("responseMap", ctx, e))?
        .map_err(|e| Failure::Map(format!("responseMap: {e}")))?;
    cx.channel_map = channel;
    cx.response_map = response;
    Ok(outcome)
}

/// A failed compile or run, taken out of QuickJS as plain data.
#[derive(Debug)]
enum Failure {
    /// An exception: an Error object (with name and stack) or another thrown value.
    Thrown {
        name: Option<String>,
        message: String,
        stack: Option<String>,
    },
    /// `null` was thrown: what QuickJS throws when it cannot even allocate the error.
    ThrownNull,
    /// An error on the Rust side of rquickjs.
    Rust(rquickjs::Error),
    /// A map could not be copied back.
    Map(String),
    /// The API refused to grow the message further.
    OverBudget,
}

impl Failure {
    fn from_caught<'js>(ctx: &Ctx<'js>, e: CaughtError<'js>) -> Self {
        match e {
            CaughtError::Exception(ex) => {
                let obj = ex.as_object();
                let text = |key: &str| {
                    obj.get::<_, Option<Coerced<String>>>(key)
                        .ok()
                        .flatten()
                        .map(|c| c.0)
                };
                Self::Thrown {
                    name: text("name"),
                    message: ex.message().unwrap_or_default(),
                    stack: ex.stack(),
                }
            }
            CaughtError::Value(v) if v.is_null() => Self::ThrownNull,
            CaughtError::Value(v) => Self::Thrown {
                name: None,
                message: value_text(ctx, v),
                stack: None,
            },
            CaughtError::Error(e) => Self::Rust(e),
        }
    }

    fn map<'js>(which: &str, ctx: &Ctx<'js>, e: CaughtError<'js>) -> Self {
        match Self::from_caught(ctx, e) {
            Self::Thrown { name, message, .. } => Self::Map(format!(
                "{which} holds a value that is not JSON: {}{message}",
                name.map(|n| format!("{n}: ")).unwrap_or_default()
            )),
            other => other,
        }
    }

    /// The error to report; `thrown` is the kind of an ordinary exception (Compile while
    /// compiling, Exception while running).
    fn into_error(
        self,
        script: &str,
        file: &str,
        lines: u32,
        thrown: ScriptErrorKind,
        clock: &Clock,
        limits: Limits,
    ) -> ScriptError {
        let oom = || {
            ScriptError::new(
                ScriptErrorKind::OutOfMemory,
                script,
                format!(
                    "out of memory (the limit is {} bytes beyond the compiled scripts)",
                    limits.memory_bytes
                ),
            )
        };
        if clock.fired.get() {
            // no line: QuickJS places the interrupt at the last position it recorded, often
            // the start of the function rather than the loop that ran away
            return ScriptError::new(
                ScriptErrorKind::Timeout,
                script,
                format!("timed out: the run took longer than {:?}", limits.time),
            );
        }
        match self {
            Self::OverBudget => {
                let mut e = oom();
                e.message = format!(
                    "out of memory: the message grew past the limit of {} bytes",
                    limits.memory_bytes
                );
                e
            }
            Self::ThrownNull | Self::Rust(rquickjs::Error::Allocation) => oom(),
            Self::Thrown { name, message, .. }
                if name.as_deref() == Some("InternalError") && message == "out of memory" =>
            {
                oom()
            }
            Self::Thrown {
                name,
                message,
                stack,
            } => {
                let (kind, message) = match name {
                    Some(n) if n == API_ERROR_NAME => (ScriptErrorKind::Api, message),
                    Some(n) if !n.is_empty() => (thrown, format!("{n}: {message}")),
                    _ => (thrown, message),
                };
                let mut e = ScriptError::new(kind, script, message);
                locate(&mut e, stack.as_deref(), file, lines);
                e
            }
            Self::Rust(e) => ScriptError::new(
                if thrown == ScriptErrorKind::Compile {
                    thrown
                } else {
                    ScriptErrorKind::Api
                },
                script,
                e.to_string(),
            ),
            Self::Map(message) => ScriptError::new(ScriptErrorKind::Api, script, message),
        }
    }
}

/// A thrown non-Error value as text.
fn value_text<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> String {
    if v.is_undefined() {
        return "undefined was thrown".into();
    }
    match Coerced::<String>::from_js(ctx, v).catch(ctx) {
        Ok(s) => s.0,
        Err(_) => "a value that cannot be shown was thrown".into(),
    }
}

/// Sets line and column from the first frame of the script's own file in a QuickJS stack
/// (`    at f (name:3:5)` or `    at name:3:5`), mapped back to the user's source.
fn locate(e: &mut ScriptError, stack: Option<&str>, file: &str, lines: u32) {
    let Some(stack) = stack else { return };
    for frame in stack.lines() {
        let frame = frame.trim();
        let Some(rest) = frame.strip_prefix("at ") else {
            continue;
        };
        // `name:L:C` at the start (a syntax error) or inside `(...)` at the end; the name
        // itself may hold spaces, parentheses and colons
        let needle = format!("{file}:");
        let Some(position) = rest
            .match_indices(&needle)
            .filter(|(i, _)| *i == 0 || rest[..*i].ends_with('('))
            .map(|(i, _)| &rest[i + needle.len()..])
            .map(|p| p.strip_suffix(')').unwrap_or(p))
            .filter(|p| p.split(':').all(|n| n.parse::<u32>().is_ok()))
            .last()
        else {
            continue;
        };
        let mut numbers = position.split(':').map(str::parse::<u32>);
        let (Some(Ok(line)), column) = (numbers.next(), numbers.next()) else {
            continue;
        };
        let mut column = column.and_then(Result::ok);
        if line == 1 {
            // QuickJS counts line 1's columns from 0, later lines' from 1
            column = column.map(|c| (c + 1).saturating_sub(PREFIX.len() as u32).max(1));
        }
        if line > lines {
            // the error is in the closing of the wrapper: the source ended too early
            e.line = Some(lines);
            e.column = None;
        } else {
            e.line = Some(line);
            e.column = column;
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_frames_of_the_script_only() {
        let mut e = ScriptError::new(ScriptErrorKind::Exception, "a (b)", "x");
        locate(
            &mut e,
            Some("    at get (native)\n    at <anonymous> (a (b):3:7)\n"),
            "a (b)",
            5,
        );
        assert_eq!((e.line, e.column), (Some(3), Some(7)));
        locate(&mut e, Some("    at s:1:70\n"), "s", 5);
        assert_eq!(
            (e.line, e.column),
            (Some(1), Some(71 - PREFIX.len() as u32))
        );
        locate(&mut e, Some("    at s:9:2\n"), "s", 5);
        assert_eq!((e.line, e.column), (Some(5), None));
    }
}
