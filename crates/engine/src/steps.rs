//! Filter rules and transformer steps, compiled from a channel file and run on one message.
//!
//! Declarative steps run inline; JavaScript steps run on the channel's [`ScriptPool`]. Each
//! step works on a [`script::Context`]: the message data and the channel, response and source
//! maps.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use connectors::{Fields, Template};
use script::{Context, Data, ScriptKind, ScriptPool, ScriptSource};

use crate::config::StepConfig;
use crate::error::ConfigError;

/// A compiled step.
#[derive(Debug)]
enum Op {
    MessageType(Vec<(String, Option<String>)>),
    Field {
        path: String,
        test: FieldTest,
        not: bool,
    },
    Set {
        path: String,
        value: Template,
    },
    Copy {
        from: String,
        to: String,
    },
    Clear {
        path: String,
    },
    Map {
        path: String,
        table: Arc<CodeTable>,
        default: Option<String>,
        required: bool,
    },
    RemoveSegments(String),
    AddSegment {
        text: Template,
        after: Option<String>,
    },
    Template(Template),
    ToJson,
    ToFhir(crate::to_fhir::ToFhir),
    /// Index of the script in the channel's pool.
    Script(usize),
}

#[derive(Debug)]
enum FieldTest {
    Equals(String),
    OneOf(Vec<String>),
    StartsWith(String),
    Exists(bool),
}

/// A list of steps: a filter (all rules must accept) or a transformer (run in order).
#[derive(Debug, Default)]
pub struct Steps {
    ops: Vec<Op>,
    role: &'static str,
}

/// Why a step failed: the message goes to ERROR with this text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{role} step {step} ({kind}): {message}")]
pub struct StepError {
    /// `filter`, `transformer`, `preprocessor`, ...
    pub role: &'static str,
    /// 1-based step number.
    pub step: usize,
    /// The step's type.
    pub kind: &'static str,
    /// What went wrong (for a script: its error with line).
    pub message: String,
}

/// Scripts found while compiling a channel's steps; they are compiled into one pool.
#[derive(Debug, Default)]
pub struct ScriptCollector {
    /// Sources in [`script::ScriptId`] order.
    pub sources: Vec<ScriptSource>,
}

/// Code tables read once per channel deployment and shared by its steps.
#[derive(Debug, Default)]
pub struct CodeTable {
    map: HashMap<String, String>,
    file: String,
}

impl CodeTable {
    /// Reads a CSV of `from,to` rows (a header row `from,to` is skipped if present).
    pub fn load(path: &Path) -> Result<Self, String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(false)
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| format!("code table {}: {e}", path.display()))?;
        let mut map = HashMap::new();
        for (n, row) in reader.records().enumerate() {
            let row = row.map_err(|e| format!("code table {}: {e}", path.display()))?;
            if row.len() != 2 {
                return Err(format!(
                    "code table {} line {}: expected 2 columns (from,to), found {}",
                    path.display(),
                    n + 1,
                    row.len()
                ));
            }
            if n == 0 && row[0].eq_ignore_ascii_case("from") && row[1].eq_ignore_ascii_case("to") {
                continue;
            }
            if map.insert(row[0].to_owned(), row[1].to_owned()).is_some() {
                return Err(format!(
                    "code table {} line {}: {:?} is mapped twice",
                    path.display(),
                    n + 1,
                    &row[0]
                ));
            }
        }
        Ok(Self {
            map,
            file: path.display().to_string(),
        })
    }
}

impl Steps {
    /// Compiles the steps of one role (`filter`, `transformer`, ...) of a channel.
    #[allow(clippy::too_many_lines)] // one arm per step type
    pub fn compile(
        configs: &[StepConfig],
        role: &'static str,
        where_: &str,
        base_dir: &Path,
        file: &Path,
        scripts: &mut ScriptCollector,
        tables: &mut HashMap<std::path::PathBuf, Arc<CodeTable>>,
    ) -> Result<Self, ConfigError> {
        let is_filter = role.ends_with("filter");
        let mut ops = Vec::with_capacity(configs.len());
        for (i, c) in configs.iter().enumerate() {
            let err = |m: String| {
                ConfigError::at(
                    file,
                    format!("{where_}{role} step {} ({}): {m}", i + 1, c.kind()),
                )
            };
            let filter_only =
                matches!(c, StepConfig::MessageType { .. } | StepConfig::Field { .. });
            if filter_only != is_filter && !matches!(c, StepConfig::Javascript { .. }) {
                return Err(err(if is_filter {
                    "is a transformer step; a filter takes message-type, field or javascript".into()
                } else {
                    "is a filter rule; put it under a filter".into()
                }));
            }
            let template = |t: &str| Template::parse(t).map_err(|e| err(e.to_string()));
            let op = match c {
                StepConfig::MessageType { accept } => Op::MessageType(
                    accept
                        .iter()
                        .map(|t| match t.split_once('^') {
                            Some((ty, ev)) => (ty.to_owned(), Some(ev.to_owned())),
                            None => (t.clone(), None),
                        })
                        .collect(),
                ),
                StepConfig::Field {
                    path,
                    equals,
                    one_of,
                    starts_with,
                    exists,
                    not,
                } => {
                    let tests = [
                        equals.clone().map(FieldTest::Equals),
                        one_of.clone().map(FieldTest::OneOf),
                        starts_with.clone().map(FieldTest::StartsWith),
                        exists.map(FieldTest::Exists),
                    ];
                    let mut given = tests.into_iter().flatten();
                    let (Some(test), None) = (given.next(), given.next()) else {
                        return Err(err(
                            "give exactly one of equals, in, starts_with, exists".into()
                        ));
                    };
                    Op::Field {
                        path: path.clone(),
                        test,
                        not: *not,
                    }
                }
                StepConfig::Set { path, value } => Op::Set {
                    path: path.clone(),
                    value: template(value)?,
                },
                StepConfig::Copy { from, to } => Op::Copy {
                    from: from.clone(),
                    to: to.clone(),
                },
                StepConfig::Clear { path } => Op::Clear { path: path.clone() },
                StepConfig::Map {
                    path,
                    table,
                    default,
                    required,
                } => {
                    let full = base_dir.join(table);
                    let t = if let Some(t) = tables.get(&full) {
                        Arc::clone(t)
                    } else {
                        let t = Arc::new(CodeTable::load(&full).map_err(err)?);
                        tables.insert(full, Arc::clone(&t));
                        t
                    };
                    Op::Map {
                        path: path.clone(),
                        table: t,
                        default: default.clone(),
                        required: *required,
                    }
                }
                StepConfig::RemoveSegments { segment } => Op::RemoveSegments(segment.clone()),
                StepConfig::AddSegment { text, after } => Op::AddSegment {
                    text: template(text)?,
                    after: after.clone(),
                },
                StepConfig::Template { template: t } => Op::Template(template(t)?),
                StepConfig::ToJson {} => Op::ToJson,
                StepConfig::ToFhir(c) => Op::ToFhir(c.build()),
                StepConfig::Javascript { script, file: f } => {
                    let (name, source) = match (script, f) {
                        (Some(s), None) => (format!("{where_}{role} step {}", i + 1), s.clone()),
                        (None, Some(f)) => {
                            let full = base_dir.join(f);
                            let s = std::fs::read_to_string(&full)
                                .map_err(|e| err(format!("{}: {e}", full.display())))?;
                            (f.display().to_string(), s)
                        }
                        _ => return Err(err("give either script or file".into())),
                    };
                    let id = scripts.sources.len();
                    scripts.sources.push(ScriptSource {
                        name,
                        source,
                        kind: if is_filter {
                            ScriptKind::Filter
                        } else {
                            ScriptKind::Transformer
                        },
                    });
                    Op::Script(id)
                }
            };
            ops.push(op);
        }
        Ok(Self { ops, role })
    }

    /// No steps.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Runs the steps on `ctx`. For a filter, `Ok(false)` means a rule rejected the message.
    pub async fn run(
        &self,
        mut ctx: Context,
        env: &Env<'_>,
        pool: Option<&ScriptPool>,
    ) -> (Context, Result<bool, StepError>) {
        for (i, op) in self.ops.iter().enumerate() {
            let fail = |message: String| StepError {
                role: self.role,
                step: i + 1,
                kind: op.kind(),
                message,
            };
            if let Op::Script(id) = op {
                let Some(pool) = pool else {
                    return (ctx, Err(fail("no script runtime".into())));
                };
                let Some(id) = pool.ids().nth(*id) else {
                    return (ctx, Err(fail("script missing from the pool".into())));
                };
                let (back, result) = pool.run(id, ctx).await;
                ctx = back;
                match result {
                    Ok(script::Outcome::Accept) => {}
                    Ok(script::Outcome::Reject) => return (ctx, Ok(false)),
                    Err(e) => return (ctx, Err(fail(e.to_string()))),
                }
                continue;
            }
            match op.apply(&mut ctx, env) {
                Ok(true) => {}
                Ok(false) => return (ctx, Ok(false)),
                Err(m) => return (ctx, Err(fail(m))),
            }
        }
        (ctx, Ok(true))
    }
}

/// What templates may refer to besides the message's fields.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The message id.
    pub message_id: &'a str,
    /// The channel name.
    pub channel: &'a str,
}

/// Template lookups on a message: HL7 paths (`PID-3-1`), JSON paths (`json:a.b`),
/// `messageId`, `channel`, `map:KEY` (channel map).
pub struct MessageFields<'a> {
    /// The message and maps.
    pub ctx: &'a Context,
    /// Ids.
    pub env: &'a Env<'a>,
}

impl Fields for MessageFields<'_> {
    fn field(&self, name: &str) -> Option<String> {
        match name {
            "messageId" => return Some(self.env.message_id.to_owned()),
            "channel" => return Some(self.env.channel.to_owned()),
            _ => {}
        }
        if let Some(key) = name.strip_prefix("map:") {
            return self
                .ctx
                .channel_map
                .get(key)
                .or_else(|| self.ctx.source_map.get(key))
                .map(json_text);
        }
        get_text(&self.ctx.data, name).ok().flatten()
    }
}

/// Field values made safe to put inside HL7 v2 text (templates of segments and messages):
/// delimiters in a value are escaped, so a name like `A|B` cannot add a field.
struct Escaped<'a>(MessageFields<'a>);

impl Fields for Escaped<'_> {
    fn field(&self, name: &str) -> Option<String> {
        let v = self.0.field(name)?;
        let d = hl7v2::Delimiters::default();
        let escaped = hl7v2::escape::escape(&v, &d, hl7v2::Charset::Utf8).ok()?;
        Some(String::from_utf8_lossy(&escaped).into_owned())
    }
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The text at `path` in the message: an HL7 path for HL7 v2 data, a dotted path for JSON.
pub fn get_text(data: &Data, path: &str) -> Result<Option<String>, String> {
    match data {
        Data::Hl7v2(m) => {
            let Some(e) = m.get(path).map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            let t = e.text().map_err(|e| e.to_string())?;
            Ok((!t.is_empty()).then(|| t.into_owned()))
        }
        Data::Json(v) => {
            let mut cur = v;
            for part in path.strip_prefix("json:").unwrap_or(path).split('.') {
                cur = match cur {
                    serde_json::Value::Object(o) => match o.get(part) {
                        Some(c) => c,
                        None => return Ok(None),
                    },
                    serde_json::Value::Array(a) => {
                        match part.parse::<usize>().ok().and_then(|i| a.get(i)) {
                            Some(c) => c,
                            None => return Ok(None),
                        }
                    }
                    _ => return Ok(None),
                };
            }
            Ok(match cur {
                serde_json::Value::Null => None,
                other => Some(json_text(other)),
            })
        }
        Data::Xml(_) | Data::Raw(_) => Err(format!(
            "{} data has no fields; only HL7V2 and JSON are addressed by path",
            data.data_type()
        )),
    }
}

fn hl7(data: &mut Data) -> Result<&mut hl7v2::MessageBuf, String> {
    match data {
        Data::Hl7v2(m) => Ok(m),
        other => Err(format!(
            "needs HL7V2 data, the message is {}",
            other.data_type()
        )),
    }
}

impl Op {
    fn kind(&self) -> &'static str {
        match self {
            Self::MessageType(_) => "message-type",
            Self::Field { .. } => "field",
            Self::Set { .. } => "set",
            Self::Copy { .. } => "copy",
            Self::Clear { .. } => "clear",
            Self::Map { .. } => "map",
            Self::RemoveSegments(_) => "remove-segments",
            Self::AddSegment { .. } => "add-segment",
            Self::Template(_) => "template",
            Self::ToJson => "to-json",
            Self::ToFhir(_) => "to-fhir",
            Self::Script(_) => "javascript",
        }
    }

    /// Applies a declarative step; `Ok(false)` is a filter's rejection.
    fn apply(&self, ctx: &mut Context, env: &Env<'_>) -> Result<bool, String> {
        match self {
            Self::MessageType(accept) => {
                let ty = get_text(&ctx.data, "MSH-9-1")?.unwrap_or_default();
                let ev = get_text(&ctx.data, "MSH-9-2")?.unwrap_or_default();
                Ok(accept
                    .iter()
                    .any(|(t, e)| *t == ty && e.as_deref().is_none_or(|e| e == "*" || e == ev)))
            }
            Self::Field { path, test, not } => {
                let v = get_text(&ctx.data, path)?;
                let hit = match (test, v.as_deref()) {
                    (FieldTest::Exists(want), v) => v.is_some() == *want,
                    (_, None) => false,
                    (FieldTest::Equals(x), Some(v)) => v == x,
                    (FieldTest::OneOf(xs), Some(v)) => xs.iter().any(|x| x == v),
                    (FieldTest::StartsWith(x), Some(v)) => v.starts_with(x.as_str()),
                };
                Ok(hit != *not)
            }
            Self::Set { path, value } => {
                let text = value.render(&MessageFields { ctx, env }, SystemTime::now());
                set_text(&mut ctx.data, path, &text)?;
                Ok(true)
            }
            Self::Copy { from, to } => {
                let v = get_text(&ctx.data, from)?.unwrap_or_default();
                set_text(&mut ctx.data, to, &v)?;
                Ok(true)
            }
            Self::Clear { path } => {
                set_text(&mut ctx.data, path, "")?;
                Ok(true)
            }
            Self::Map {
                path,
                table,
                default,
                required,
            } => {
                let v = get_text(&ctx.data, path)?.unwrap_or_default();
                match table.map.get(&v).or(default.as_ref()) {
                    Some(mapped) => set_text(&mut ctx.data, path, mapped)?,
                    None if *required => {
                        return Err(format!(
                            "the value of {path} is not in {} and no default is set",
                            table.file
                        ));
                    }
                    None => {}
                }
                Ok(true)
            }
            Self::RemoveSegments(id) => {
                let m = hl7(&mut ctx.data)?;
                let doomed: Vec<usize> = m
                    .segments()
                    .iter()
                    .enumerate()
                    .filter(|(i, s)| *i > 0 && s.id() == id)
                    .map(|(i, _)| i)
                    .collect();
                for i in doomed.into_iter().rev() {
                    m.remove_segment(i).map_err(|e| e.to_string())?;
                }
                Ok(true)
            }
            Self::AddSegment { text, after } => {
                let rendered = text.render(&Escaped(MessageFields { ctx, env }), SystemTime::now());
                let m = hl7(&mut ctx.data)?;
                let at = match after {
                    Some(id) => m
                        .segments()
                        .iter()
                        .rposition(|s| s.id() == id)
                        .map(|i| i + 1)
                        .ok_or_else(|| format!("the message has no {id} segment to add after"))?,
                    None => m.segments().len(),
                };
                m.insert_segment_text(at, rendered.as_bytes())
                    .map_err(|e| e.to_string())?;
                Ok(true)
            }
            Self::Template(t) => {
                ctx.data = from_template(t, ctx, env)?;
                Ok(true)
            }
            Self::ToJson => {
                let m = hl7(&mut ctx.data)?;
                let bytes = m.encode();
                let parsed = hl7v2::Message::parse(&bytes).map_err(|e| e.to_string())?;
                let json = hl7v2::json::to_json(&parsed).map_err(|e| e.to_string())?;
                ctx.data = Data::Json(json);
                Ok(true)
            }
            Self::ToFhir(step) => step.apply(ctx).map(|()| true),
            Self::Script(_) => unreachable!("scripts run in Steps::run"),
        }
    }
}

/// Sets the text at `path`: an HL7 path (escaped as needed) or a dotted JSON path.
pub fn set_text(data: &mut Data, path: &str, text: &str) -> Result<(), String> {
    match data {
        Data::Hl7v2(m) => m.set(path, text).map_err(|e| e.to_string()),
        Data::Json(v) => {
            let mut cur = v;
            let parts: Vec<&str> = path
                .strip_prefix("json:")
                .unwrap_or(path)
                .split('.')
                .collect();
            for (n, part) in parts.iter().enumerate() {
                let last = n + 1 == parts.len();
                if !cur.is_object() {
                    if cur.is_null() {
                        *cur = serde_json::Value::Object(serde_json::Map::new());
                    } else {
                        return Err(format!(
                            "{path}: {part} is inside a value that is not an object"
                        ));
                    }
                }
                let obj = cur.as_object_mut().expect("made an object above");
                if last {
                    obj.insert(
                        (*part).to_owned(),
                        serde_json::Value::String(text.to_owned()),
                    );
                    return Ok(());
                }
                cur = obj
                    .entry((*part).to_owned())
                    .or_insert(serde_json::Value::Null);
            }
            Ok(())
        }
        other => Err(format!(
            "{} data has no fields; only HL7V2 and JSON are addressed by path",
            other.data_type()
        )),
    }
}

/// Builds a new HL7 v2 message from a template whose field values are escaped.
fn from_template(t: &Template, ctx: &Context, env: &Env<'_>) -> Result<Data, String> {
    let rendered = t.render(&Escaped(MessageFields { ctx, env }), SystemTime::now());
    // one segment per line; indentation and blank lines (TOML multi-line strings) are not
    // part of any segment
    let mut text = String::with_capacity(rendered.len() + 1);
    for line in rendered
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.trim().is_empty())
    {
        text.push_str(line);
        text.push('\r');
    }
    Data::parse(script::DataType::Hl7v2, text.as_bytes())
        .map_err(|e| format!("the template does not give a valid HL7 message: {e}"))
}
