//! The function library: the arity table checked at parse time and the implementations.

use serde_json::Value;

use crate::ast::{Ast, TypeSpec};
use crate::error::EvalError;
use crate::eval::{
    Evaluator, Frame, Items, Res, contains_item, is_primitive_node, not_singleton, singleton_value,
    to_bool, type_error,
};
use crate::item::Item;
use crate::resolve::resolve;
use crate::scalar::scalar;
use crate::temporal;
use crate::types::{is_type, to_system};

/// Largest collection `repeat()` and `descendants()` may build.
const MAX_ITEMS: usize = 1_000_000;

/// Known functions and their accepted argument counts (min, max).
const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("where", 1, 1),
    ("select", 1, 1),
    ("repeat", 1, 1),
    ("exists", 0, 1),
    ("empty", 0, 0),
    ("first", 0, 0),
    ("last", 0, 0),
    ("tail", 0, 0),
    ("skip", 1, 1),
    ("take", 1, 1),
    ("single", 0, 0),
    ("count", 0, 0),
    ("distinct", 0, 0),
    ("isDistinct", 0, 0),
    ("all", 1, 1),
    ("allTrue", 0, 0),
    ("anyTrue", 0, 0),
    ("allFalse", 0, 0),
    ("anyFalse", 0, 0),
    ("not", 0, 0),
    ("iif", 2, 3),
    ("ofType", 1, 1),
    ("as", 1, 1),
    ("is", 1, 1),
    ("union", 1, 1),
    ("combine", 1, 1),
    ("intersect", 1, 1),
    ("exclude", 1, 1),
    ("subsetOf", 1, 1),
    ("supersetOf", 1, 1),
    ("children", 0, 0),
    ("descendants", 0, 0),
    ("extension", 1, 1),
    ("hasValue", 0, 0),
    ("getValue", 0, 0),
    ("trace", 1, 2),
    ("toString", 0, 0),
    ("toInteger", 0, 0),
    ("toDecimal", 0, 0),
    ("toBoolean", 0, 0),
    ("toDate", 0, 0),
    ("toDateTime", 0, 0),
    ("toTime", 0, 0),
    ("toQuantity", 0, 1),
    ("convertsToString", 0, 0),
    ("convertsToInteger", 0, 0),
    ("convertsToDecimal", 0, 0),
    ("convertsToBoolean", 0, 0),
    ("convertsToDate", 0, 0),
    ("convertsToDateTime", 0, 0),
    ("convertsToTime", 0, 0),
    ("convertsToQuantity", 0, 1),
    ("startsWith", 1, 1),
    ("endsWith", 1, 1),
    ("contains", 1, 1),
    ("matches", 1, 1),
    ("matchesFull", 1, 1),
    ("replace", 2, 2),
    ("replaceMatches", 2, 2),
    ("substring", 1, 2),
    ("length", 0, 0),
    ("lower", 0, 0),
    ("upper", 0, 0),
    ("indexOf", 1, 1),
    ("split", 1, 1),
    ("join", 0, 1),
    ("trim", 0, 0),
    ("toChars", 0, 0),
    ("abs", 0, 0),
    ("ceiling", 0, 0),
    ("floor", 0, 0),
    ("truncate", 0, 0),
    ("round", 0, 1),
    ("sqrt", 0, 0),
    ("ln", 0, 0),
    ("exp", 0, 0),
    ("log", 1, 1),
    ("power", 1, 1),
    ("now", 0, 0),
    ("today", 0, 0),
    ("timeOfDay", 0, 0),
    ("resolve", 0, 0),
    ("memberOf", 1, 1),
    ("conformsTo", 1, 1),
    ("subsumes", 1, 1),
    ("subsumedBy", 1, 1),
    ("htmlChecks", 0, 0),
    ("aggregate", 1, 2),
];

/// Checks a call's name and argument count (and type arguments) at parse time.
pub(crate) fn check_call(name: &str, args: &[Ast]) -> Result<(), String> {
    let Some((_, min, max)) = FUNCTIONS.iter().find(|(n, ..)| *n == name) else {
        return Err(format!("unknown function {name}()"));
    };
    if args.len() < *min || args.len() > *max {
        return Err(format!(
            "{name}() takes {} argument(s), got {}",
            arity_text(*min, *max),
            args.len()
        ));
    }
    if matches!(name, "ofType" | "as" | "is") && type_arg(&args[0]).is_none() {
        return Err(format!("{name}() takes a type name"));
    }
    Ok(())
}

fn arity_text(min: usize, max: usize) -> &'static str {
    match (min, max) {
        (0, 0) => "0",
        (0, 1) => "0 or 1",
        (1, 1) => "1",
        (1, 2) => "1 or 2",
        (2, 2) => "2",
        _ => "2 or 3",
    }
}

fn type_arg(arg: &Ast) -> Option<TypeSpec> {
    match arg {
        Ast::Identifier(name) => Some(TypeSpec {
            namespace: None,
            name: name.clone(),
        }),
        Ast::Member(ns, name) => match ns.as_ref() {
            Ast::Identifier(ns) => Some(TypeSpec {
                namespace: Some(ns.clone()),
                name: name.clone(),
            }),
            _ => None,
        },
        _ => None,
    }
}

#[allow(clippy::unnecessary_wraps)]
fn boolean<'a>(b: bool) -> Res<'a> {
    Ok(vec![Item::Boolean(b)])
}

/// Calls function `name` on `input`; `frame` is the scope the arguments are evaluated in.
/// The parser has checked the name and argument count; a missing argument evaluates as `{}`.
///
/// Functions that evaluate expressions per item get their own small functions, so nested
/// calls (`where(… where(…))`) do not stack the large frame of [`call_plain`].
pub(crate) fn call<'a>(
    ev: &Evaluator<'_, 'a>,
    name: &str,
    args: &[Ast],
    input: &[Item<'a>],
    frame: &Frame<'a>,
) -> Res<'a> {
    match (name, args) {
        ("where" | "select" | "all" | "repeat" | "exists", [body]) => lambda(ev, name, body, input),
        ("iif", [cond, then, rest @ ..]) => iif(ev, [cond, then], rest.first(), input, frame),
        ("aggregate", [body, init @ ..]) => {
            let mut total = match init.first() {
                Some(init) => ev.eval(init, &frame.this, frame)?,
                None => Vec::new(),
            };
            for (i, item) in input.iter().enumerate() {
                let scope = Frame {
                    this: vec![item.clone()],
                    index: Some(i),
                    total: Some(total),
                };
                total = ev.eval(body, std::slice::from_ref(item), &scope)?;
            }
            Ok(total)
        }
        _ => call_plain(ev, name, args, input, frame),
    }
}

/// `iif()`: its arguments see the input as `$this`, and the caller's `$index` and `$total`.
fn iif<'a>(
    ev: &Evaluator<'_, 'a>,
    [cond, then]: [&Ast; 2],
    otherwise: Option<&Ast>,
    input: &[Item<'a>],
    frame: &Frame<'a>,
) -> Res<'a> {
    let this_frame = Frame {
        this: input.to_vec(),
        index: frame.index,
        total: frame.total.clone(),
    };
    if to_bool(&ev.eval(cond, input, &this_frame)?, "iif()")? == Some(true) {
        ev.eval(then, input, &this_frame)
    } else if let Some(otherwise) = otherwise {
        ev.eval(otherwise, input, &this_frame)
    } else {
        Ok(Vec::new())
    }
}

#[allow(clippy::too_many_lines)]
#[inline(never)]
fn call_plain<'a>(
    ev: &Evaluator<'_, 'a>,
    name: &str,
    args: &[Ast],
    input: &[Item<'a>],
    frame: &Frame<'a>,
) -> Res<'a> {
    // Plain arguments are evaluated in the caller's scope.
    let arg = |i: usize| -> Res<'a> {
        args.get(i)
            .map_or(Ok(Vec::new()), |a| ev.eval(a, &frame.this, frame))
    };
    let string_arg = |i: usize| -> Result<Option<String>, EvalError> {
        Ok(singleton_value(&arg(i)?, name)?.and_then(|v| match v {
            Item::String(s) => Some(s),
            _ => None,
        }))
    };
    let int_arg = |i: usize| -> Result<Option<i64>, EvalError> {
        match singleton_value(&arg(i)?, name)? {
            None => Ok(None),
            Some(Item::Integer(n)) => Ok(Some(n)),
            Some(other) => Err(type_error(name, format!("{other} is not an integer"))),
        }
    };
    match name {
        "exists" => boolean(!input.is_empty()),
        "empty" => boolean(input.is_empty()),
        "first" => Ok(input.first().cloned().into_iter().collect()),
        "last" => Ok(input.last().cloned().into_iter().collect()),
        "tail" => Ok(input.iter().skip(1).cloned().collect()),
        "skip" | "take" => {
            let n = usize::try_from(int_arg(0)?.unwrap_or(0).max(0)).unwrap_or(usize::MAX);
            Ok(if name == "skip" {
                input.iter().skip(n).cloned().collect()
            } else {
                input.iter().take(n).cloned().collect()
            })
        }
        "single" => match input {
            [] | [_] => Ok(input.to_vec()),
            _ => Err(not_singleton("single()", input.len())),
        },
        "count" => Ok(vec![Item::Integer(
            i64::try_from(input.len()).unwrap_or(i64::MAX),
        )]),
        "distinct" => Ok(distinct(input)),
        "isDistinct" => boolean(distinct(input).len() == input.len()),
        "allTrue" | "anyTrue" | "allFalse" | "anyFalse" => {
            let want = name.ends_with("True");
            let mut hits = input
                .iter()
                .map(|i| matches!(to_system(i), Item::Boolean(b) if b == want));
            boolean(if name.starts_with("all") {
                hits.all(|h| h)
            } else {
                hits.any(|h| h)
            })
        }
        "not" => Ok(to_bool(input, "not()")?
            .map(|b| Item::Boolean(!b))
            .into_iter()
            .collect()),
        "ofType" | "as" => Ok(args
            .first()
            .and_then(type_arg)
            .map(|t| ev.of_type(input.to_vec(), &t))
            .unwrap_or_default()),
        "is" => {
            let spec = args.first().and_then(type_arg);
            match (input, spec) {
                ([], _) | (_, None) => Ok(Vec::new()),
                ([item], Some(spec)) => boolean(is_type(item, &spec, ev.model())),
                _ => Err(not_singleton("is()", input.len())),
            }
        }
        "union" | "combine" | "intersect" | "exclude" | "subsetOf" | "supersetOf" => {
            let other = arg(0)?;
            Ok(set_op(name, input, &other))
        }
        "children" | "descendants" => {
            let mut out = Vec::new();
            for item in input {
                ev.all_children(item, &mut out);
            }
            if name == "descendants" {
                let mut i = 0;
                while i < out.len() {
                    if out.len() > MAX_ITEMS {
                        return Err(EvalError::TooLarge { limit: MAX_ITEMS });
                    }
                    let item = out[i].clone();
                    ev.all_children(&item, &mut out);
                    i += 1;
                }
            }
            Ok(out)
        }
        "extension" => {
            let Some(url) = string_arg(0)? else {
                return Ok(Vec::new());
            };
            let mut exts = Vec::new();
            for item in input {
                ev.children_named(item, "extension", &mut exts);
            }
            Ok(exts
                .into_iter()
                .filter(|e| {
                    e.as_json()
                        .and_then(|v| v.get("url"))
                        .and_then(Value::as_str)
                        == Some(url.as_str())
                })
                .collect())
        }
        "hasValue" => {
            boolean(matches!(input, [Item::Node(n)] if is_primitive_node(n) && !n.value.is_null()))
        }
        "getValue" => match input {
            [Item::Node(n)] if is_primitive_node(n) && !n.value.is_null() => {
                Ok(vec![to_system(&input[0])])
            }
            _ => Ok(Vec::new()),
        },
        "trace" => Ok(input.to_vec()),
        "join" => {
            let sep = if args.is_empty() {
                String::new()
            } else {
                string_arg(0)?.unwrap_or_default()
            };
            let parts: Vec<String> = input
                .iter()
                .map(|i| match to_system(i) {
                    Item::String(s) => Ok(s),
                    other => Err(type_error("join()", format!("{other} is not a string"))),
                })
                .collect::<Result<_, _>>()?;
            Ok(vec![Item::String(parts.join(&sep))])
        }
        "resolve" => Ok(input.iter().filter_map(|i| resolve(ev, i)).collect()),
        "memberOf" | "subsumes" | "subsumedBy" => Err(EvalError::Unsupported {
            name: name.to_owned(),
            reason: "needs a terminology service",
        }),
        "conformsTo" => Err(EvalError::Unsupported {
            name: name.to_owned(),
            reason: "needs profile validation",
        }),
        "htmlChecks" => boolean(true),
        "now" => Ok(vec![Item::DateTime(temporal::now())]),
        "today" => Ok(vec![Item::Date(temporal::today())]),
        "timeOfDay" => Ok(vec![Item::Time(temporal::now()[11..23].to_owned())]),
        "toString" | "toInteger" | "toDecimal" | "toBoolean" | "toDate" | "toDateTime"
        | "toTime" | "toQuantity" | "convertsToString" | "convertsToInteger"
        | "convertsToDecimal" | "convertsToBoolean" | "convertsToDate" | "convertsToDateTime"
        | "convertsToTime" | "convertsToQuantity" | "startsWith" | "endsWith" | "contains"
        | "matches" | "matchesFull" | "replaceMatches" | "replace" | "substring" | "length"
        | "lower" | "upper" | "trim" | "toChars" | "indexOf" | "split" | "abs" | "ceiling"
        | "floor" | "truncate" | "round" | "sqrt" | "ln" | "exp" | "log" | "power" => {
            let Some(value) = singleton_value(input, name)? else {
                return Ok(Vec::new());
            };
            scalar(name, &value, &arg, &string_arg, &int_arg)
        }
        _ => Err(match FUNCTIONS.iter().find(|(n, ..)| *n == name) {
            Some((_, min, max)) => EvalError::WrongArgumentCount {
                name: name.to_owned(),
                expected: arity_text(*min, *max),
                got: args.len(),
            },
            None => EvalError::UnknownFunction {
                name: name.to_owned(),
            },
        }),
    }
}

/// Functions with a lambda argument, evaluated once per input item with `$this` and `$index`.
fn lambda<'a>(ev: &Evaluator<'_, 'a>, name: &str, body: &Ast, input: &[Item<'a>]) -> Res<'a> {
    let run = |item: &Item<'a>, index: usize| -> Res<'a> {
        let frame = Frame {
            this: vec![item.clone()],
            index: Some(index),
            total: None,
        };
        ev.eval(body, std::slice::from_ref(item), &frame)
    };
    let mut out = Vec::new();
    match name {
        "where" | "exists" => {
            for (i, item) in input.iter().enumerate() {
                if to_bool(&run(item, i)?, name)? == Some(true) {
                    if name == "exists" {
                        return boolean(true);
                    }
                    out.push(item.clone());
                }
            }
            if name == "exists" {
                return boolean(false);
            }
        }
        "select" => {
            for (i, item) in input.iter().enumerate() {
                out.extend(run(item, i)?);
            }
        }
        "all" => {
            for (i, item) in input.iter().enumerate() {
                if to_bool(&run(item, i)?, name)? != Some(true) {
                    return boolean(false);
                }
            }
            return boolean(true);
        }
        _ => {
            // repeat(): breadth-first until nothing new appears.
            let mut frontier = input.to_vec();
            while !frontier.is_empty() {
                let mut next = Vec::new();
                for (i, item) in frontier.iter().enumerate() {
                    for found in run(item, i)? {
                        if !contains_item(&out, &found) {
                            out.push(found.clone());
                            next.push(found);
                        }
                    }
                    if out.len() > MAX_ITEMS {
                        return Err(EvalError::TooLarge { limit: MAX_ITEMS });
                    }
                }
                frontier = next;
            }
        }
    }
    Ok(out)
}

fn distinct<'a>(input: &[Item<'a>]) -> Items<'a> {
    let mut out = Vec::with_capacity(input.len());
    for item in input {
        if !contains_item(&out, item) {
            out.push(item.clone());
        }
    }
    out
}

fn set_op<'a>(name: &str, input: &[Item<'a>], other: &[Item<'a>]) -> Items<'a> {
    match name {
        "union" => distinct(&[input, other].concat()),
        "combine" => [input, other].concat(),
        "intersect" => distinct(input)
            .into_iter()
            .filter(|i| contains_item(other, i))
            .collect(),
        "exclude" => input
            .iter()
            .filter(|i| !contains_item(other, i))
            .cloned()
            .collect(),
        "subsetOf" => vec![Item::Boolean(input.iter().all(|i| contains_item(other, i)))],
        _ => vec![Item::Boolean(other.iter().all(|i| contains_item(input, i)))],
    }
}
