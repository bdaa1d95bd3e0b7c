//! Functions on one value: conversions, strings, regular expressions, math.

use crate::error::EvalError;
use crate::eval::{Items, Res, singleton_value, type_error};
use crate::item::Item;
use crate::temporal::Temporal;

#[allow(clippy::unnecessary_wraps)]
fn boolean<'a>(b: bool) -> Res<'a> {
    Ok(vec![Item::Boolean(b)])
}

#[allow(clippy::unnecessary_wraps)]
fn one(item: Option<Item<'_>>) -> Res<'_> {
    Ok(item.into_iter().collect())
}

/// An argument evaluator: argument index → its value.
pub(crate) type ArgFn<'f, 'a, T> = &'f dyn Fn(usize) -> Result<T, EvalError>;

/// Functions on a single value: conversions, strings, math.
#[allow(clippy::too_many_lines)]
pub(crate) fn scalar<'a>(
    name: &str,
    value: &Item<'a>,
    arg: ArgFn<'_, 'a, Items<'a>>,
    string_arg: ArgFn<'_, 'a, Option<String>>,
    int_arg: ArgFn<'_, 'a, Option<i64>>,
) -> Res<'a> {
    let text = match value {
        Item::String(s) => Some(s.as_str()),
        _ => None,
    };
    let need_text =
        || text.ok_or_else(|| type_error(name, format!("expects a string, got {value}")));
    match name {
        "toString" | "convertsToString" => {
            let s = match value {
                Item::Node(_) => None,
                other => Some(other.to_string()),
            };
            conv(name, s.map(Item::String))
        }
        "toInteger" | "convertsToInteger" => conv(
            name,
            match value {
                Item::Integer(_) => Some(value.clone()),
                Item::Boolean(b) => Some(Item::Integer(i64::from(*b))),
                Item::String(s) => s.parse().ok().map(Item::Integer),
                _ => None,
            },
        ),
        "toDecimal" | "convertsToDecimal" => conv(
            name,
            match value {
                #[allow(clippy::cast_precision_loss)]
                Item::Integer(i) => Some(Item::Decimal(*i as f64)),
                Item::Decimal(_) => Some(value.clone()),
                Item::Boolean(b) => Some(Item::Decimal(if *b { 1.0 } else { 0.0 })),
                Item::String(s) => s
                    .parse::<f64>()
                    .ok()
                    .filter(|d| d.is_finite() && !s.contains(['e', 'E', 'i', 'n', 'N']))
                    .map(Item::Decimal),
                _ => None,
            },
        ),
        "toBoolean" | "convertsToBoolean" => conv(
            name,
            match value {
                Item::Boolean(_) => Some(value.clone()),
                Item::Integer(0) => Some(Item::Boolean(false)),
                Item::Integer(1) => Some(Item::Boolean(true)),
                Item::String(s) => match s.to_lowercase().as_str() {
                    "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(Item::Boolean(true)),
                    "false" | "f" | "no" | "n" | "0" | "0.0" => Some(Item::Boolean(false)),
                    _ => None,
                },
                _ => None,
            },
        ),
        "toDate" | "convertsToDate" => conv(
            name,
            match value {
                Item::Date(_) => Some(value.clone()),
                Item::DateTime(s) | Item::String(s) => {
                    let date = s.split('T').next().unwrap_or_default();
                    Temporal::parse_date_time(date).map(|_| Item::Date(date.to_owned()))
                }
                _ => None,
            },
        ),
        "toDateTime" | "convertsToDateTime" => conv(
            name,
            match value {
                Item::Date(s) | Item::DateTime(s) | Item::String(s) => {
                    Temporal::parse_date_time(s).map(|_| Item::DateTime(s.clone()))
                }
                _ => None,
            },
        ),
        "toTime" | "convertsToTime" => conv(
            name,
            match value {
                Item::Time(_) => Some(value.clone()),
                Item::String(s) => Temporal::parse_time(s).map(|_| Item::Time(s.clone())),
                _ => None,
            },
        ),
        "toQuantity" | "convertsToQuantity" => conv(
            name,
            match value {
                Item::Quantity { .. } => Some(value.clone()),
                #[allow(clippy::cast_precision_loss)]
                Item::Integer(i) => Some(Item::Quantity {
                    value: *i as f64,
                    unit: "1".into(),
                }),
                Item::Decimal(d) => Some(Item::Quantity {
                    value: *d,
                    unit: "1".into(),
                }),
                Item::String(s) => parse_quantity(s),
                _ => None,
            },
        ),
        "startsWith" | "endsWith" | "contains" => {
            let s = need_text()?;
            let Some(p) = string_arg(0)? else {
                return Ok(Vec::new());
            };
            boolean(match name {
                "startsWith" => s.starts_with(&p),
                "endsWith" => s.ends_with(&p),
                _ => s.contains(&p),
            })
        }
        // The whole string must match, as HAPI does and R4's invariants (`name.matches('[A-Z]…')`)
        // intend; FHIRPath 3.0 calls this matchesFull().
        "matches" | "matchesFull" => {
            let s = need_text()?;
            let Some(p) = string_arg(0)? else {
                return Ok(Vec::new());
            };
            boolean(regex(&format!("^(?s:{p})$"), &p)?.is_match(s))
        }
        "replaceMatches" => {
            let s = need_text()?;
            let (Some(p), Some(r)) = (string_arg(0)?, string_arg(1)?) else {
                return Ok(Vec::new());
            };
            Ok(vec![Item::String(
                regex(&p, &p)?.replace_all(s, r.as_str()).into_owned(),
            )])
        }
        "replace" => {
            let s = need_text()?;
            let (Some(p), Some(r)) = (string_arg(0)?, string_arg(1)?) else {
                return Ok(Vec::new());
            };
            Ok(vec![Item::String(if p.is_empty() {
                // Spec: an empty pattern inserts the replacement around every character.
                let mut out = r.clone();
                for c in s.chars() {
                    out.push(c);
                    out.push_str(&r);
                }
                out
            } else {
                s.replace(&p, &r)
            })])
        }
        "substring" => {
            let chars: Vec<char> = need_text()?.chars().collect();
            let Some(start) = int_arg(0)? else {
                return Ok(Vec::new());
            };
            let Ok(start) = usize::try_from(start) else {
                return Ok(Vec::new());
            };
            if start >= chars.len() {
                return Ok(Vec::new());
            }
            let len = match int_arg(1)? {
                Some(n) => usize::try_from(n.max(0)).unwrap_or(0),
                None => chars.len(),
            };
            Ok(vec![Item::String(
                chars[start..].iter().take(len).collect(),
            )])
        }
        "length" => Ok(vec![Item::Integer(
            i64::try_from(need_text()?.chars().count()).unwrap_or(i64::MAX),
        )]),
        "lower" => Ok(vec![Item::String(need_text()?.to_lowercase())]),
        "upper" => Ok(vec![Item::String(need_text()?.to_uppercase())]),
        "trim" => Ok(vec![Item::String(need_text()?.trim().to_owned())]),
        "toChars" => Ok(need_text()?
            .chars()
            .map(|c| Item::String(c.to_string()))
            .collect()),
        "indexOf" => {
            let s = need_text()?;
            let Some(p) = string_arg(0)? else {
                return Ok(Vec::new());
            };
            let index = s
                .find(&p)
                .map_or(-1, |b| i64::try_from(s[..b].chars().count()).unwrap_or(-1));
            Ok(vec![Item::Integer(index)])
        }
        "split" => {
            let s = need_text()?;
            let Some(sep) = string_arg(0)? else {
                return Ok(Vec::new());
            };
            Ok(s.split(sep.as_str())
                .map(|p| Item::String(p.to_owned()))
                .collect())
        }
        _ => math(name, value, arg),
    }
}

fn conv<'a>(name: &str, converted: Option<Item<'a>>) -> Res<'a> {
    if name.starts_with("convertsTo") {
        boolean(converted.is_some())
    } else {
        one(converted)
    }
}

fn parse_quantity<'a>(s: &str) -> Option<Item<'a>> {
    let s = s.trim();
    let (number, unit) = match s.find(' ') {
        Some(i) => (&s[..i], s[i + 1..].trim()),
        None => (s, "'1'"),
    };
    let value: f64 = number.parse().ok().filter(|v: &f64| v.is_finite())?;
    let unit = unit
        .strip_prefix('\'')
        .and_then(|u| u.strip_suffix('\''))
        .unwrap_or(unit);
    Some(Item::Quantity {
        value,
        unit: unit.to_owned(),
    })
}

fn regex(pattern: &str, original: &str) -> Result<regex::Regex, EvalError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| EvalError::Regex {
            pattern: original.to_owned(),
            message: e.to_string(),
        })
}

#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn math<'a>(name: &str, value: &Item<'a>, arg: ArgFn<'_, 'a, Items<'a>>) -> Res<'a> {
    let x = match value {
        Item::Integer(i) => *i as f64,
        Item::Decimal(d) => *d,
        Item::Quantity { value: v, unit } if name == "abs" => {
            return Ok(vec![Item::Quantity {
                value: v.abs(),
                unit: unit.clone(),
            }]);
        }
        other => return Err(type_error(name, format!("expects a number, got {other}"))),
    };
    let number_arg = || -> Result<Option<f64>, EvalError> {
        Ok(match singleton_value(&arg(0)?, name)? {
            Some(Item::Integer(i)) => Some(i as f64),
            Some(Item::Decimal(d)) => Some(d),
            _ => None,
        })
    };
    let int = |f: f64| -> Item<'a> {
        if f.is_finite() && f.abs() < 9.0e15 {
            Item::Integer(f as i64)
        } else {
            Item::Decimal(f)
        }
    };
    let decimal = |f: f64| (f.is_finite()).then_some(Item::Decimal(f));
    Ok(match name {
        "abs" => Some(match value {
            Item::Integer(i) => i
                .checked_abs()
                .map_or(Item::Decimal(x.abs()), Item::Integer),
            _ => Item::Decimal(x.abs()),
        }),
        "ceiling" => Some(int(x.ceil())),
        "floor" => Some(int(x.floor())),
        "truncate" => Some(int(x.trunc())),
        "round" => {
            let digits = number_arg().ok().flatten().unwrap_or(0.0).clamp(0.0, 15.0);
            let scale = 10f64.powi(digits as i32);
            Some(Item::Decimal((x * scale).round() / scale))
        }
        "sqrt" => decimal(x.sqrt()),
        "ln" => decimal(x.ln()),
        "exp" => decimal(x.exp()),
        "log" => number_arg()?.and_then(|b| decimal(x.log(b))),
        "power" => match (value, number_arg()?) {
            (Item::Integer(i), Some(e)) if e >= 0.0 && e.fract() == 0.0 && e < 64.0 => {
                i.checked_pow(e as u32).map(Item::Integer)
            }
            (_, Some(e)) => decimal(x.powf(e)),
            _ => None,
        },
        _ => {
            return Err(EvalError::UnknownFunction {
                name: name.to_owned(),
            });
        }
    }
    .into_iter()
    .collect())
}
