//! `${...}` templates for file names, HTTP headers and SQL parameters.
//!
//! A template is text with placeholders:
//!
//! | placeholder | renders as |
//! | --- | --- |
//! | `${PID-3-1}`, `${messageId}` | the value [`Fields::field`] gives for the name (empty if none) |
//! | `${date}` | the time of rendering, local time, as `%Y%m%d%H%M%S` (an HL7 DTM) |
//! | `${date:FORMAT}` | the time of rendering, local time, in `FORMAT` |
//! | `${utcdate}`, `${utcdate:FORMAT}` | the same in UTC |
//! | `$${` | a literal `${` |
//!
//! `FORMAT` is a strftime-like subset: `%Y` (4-digit year), `%m`, `%d`, `%H`, `%M`, `%S` (2
//! digits each), `%3f` (milliseconds, 3 digits), `%z` (offset from UTC as `+hhmm`, as HL7
//! writes it) and `%%`; any other character stands for itself. A template is parsed once, so
//! an unknown `%` directive or an unclosed `${` is found when the configuration is read, with
//! the column where it is.
//!
//! Dates are computed with `chrono`, which reads the local time zone (the `TZ` variable or
//! `/etc/localtime`) correctly in a multi-threaded process; the formatting subset is ours so
//! that every directive is checked at parse time and cannot fail while rendering.

use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;
use std::time::SystemTime;

use chrono::{DateTime, Datelike, Local, Offset, TimeZone, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Fields;

/// The date format of `${date}` without a format: an HL7 DTM to the second.
pub const DEFAULT_DATE_FORMAT: &str = "%Y%m%d%H%M%S";

/// A parsed `${...}` template (see the [module documentation](self)).
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(String),
    Date { utc: bool, format: Vec<DatePart> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DatePart {
    Literal(char),
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Millis,
    Offset,
}

/// A template that does not parse: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template column {column}: {reason}")]
pub struct TemplateError {
    /// 1-based position (in characters) of the offending part.
    pub column: usize,
    /// What is wrong there.
    pub reason: String,
}

impl Template {
    /// Parses a template.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let chars: Vec<char> = source.chars().collect();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '$' && chars.get(i + 1) == Some(&'$') && chars.get(i + 2) == Some(&'{') {
                literal.push_str("${");
                i += 3;
                continue;
            }
            if c != '$' || chars.get(i + 1) != Some(&'{') {
                literal.push(c);
                i += 1;
                continue;
            }
            let start = i;
            let Some(len) = chars[i + 2..].iter().position(|&c| c == '}') else {
                return Err(TemplateError {
                    column: start + 1,
                    reason: "`${` is not closed by `}`".into(),
                });
            };
            let inner: String = chars[i + 2..i + 2 + len].iter().collect();
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(placeholder(&inner, start + 3)?);
            i += len + 3;
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True if the template has no placeholders.
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The field names the template looks up, in order (dates are not fields).
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Renders the template; `now` is the time `${date}` shows.
    pub fn render(&self, fields: &dyn Fields, now: SystemTime) -> String {
        self.render_escaped(fields, now, |v| Cow::Borrowed(v))
    }

    /// Renders the template, passing every field value (not the literal text, not dates)
    /// through `escape` first, e.g. to keep `/` out of file names.
    pub fn render_escaped(
        &self,
        fields: &dyn Fields,
        now: SystemTime,
        escape: impl Fn(&str) -> Cow<'_, str>,
    ) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field(name) => {
                    if let Some(value) = fields.field(name) {
                        out.push_str(&escape(&value));
                    }
                }
                Part::Date { utc: true, format } => {
                    format_date(&DateTime::<Utc>::from(now), format, &mut out);
                }
                Part::Date { utc: false, format } => {
                    format_date(&DateTime::<Local>::from(now), format, &mut out);
                }
            }
        }
        out
    }
}

/// Parses the inside of `${...}`; `column` is where it starts (1-based).
fn placeholder(inner: &str, column: usize) -> Result<Part, TemplateError> {
    let (name, format) = match inner.split_once(':') {
        Some((name, format)) => (name, Some(format)),
        None => (inner, None),
    };
    let error = |reason: String| Err(TemplateError { column, reason });
    if name.trim().is_empty() {
        return error("empty `${}`: name a field, e.g. `${PID-3-1}`".into());
    }
    if name.trim() != name {
        return error(format!("spaces around the field name {name:?}"));
    }
    if name.contains(['$', '{']) {
        return error(format!("`{{` or `$` inside a placeholder ({name:?})"));
    }
    let utc = match name {
        "date" => false,
        "utcdate" => true,
        _ if format.is_some() => {
            return error(format!(
                "only `date` and `utcdate` take a `:format`, not {name:?}"
            ));
        }
        _ => return Ok(Part::Field(name.to_owned())),
    };
    let format_column = column + name.chars().count() + 1;
    let format = parse_date_format(format.unwrap_or(DEFAULT_DATE_FORMAT), format_column)?;
    Ok(Part::Date { utc, format })
}

fn parse_date_format(format: &str, column: usize) -> Result<Vec<DatePart>, TemplateError> {
    let mut parts = Vec::new();
    let mut chars = format.chars().enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '%' {
            parts.push(DatePart::Literal(c));
            continue;
        }
        let part = match chars.next().map(|(_, c)| c) {
            Some('Y') => DatePart::Year,
            Some('m') => DatePart::Month,
            Some('d') => DatePart::Day,
            Some('H') => DatePart::Hour,
            Some('M') => DatePart::Minute,
            Some('S') => DatePart::Second,
            Some('z') => DatePart::Offset,
            Some('%') => DatePart::Literal('%'),
            Some('3') if chars.next_if(|&(_, c)| c == 'f').is_some() => DatePart::Millis,
            other => {
                let shown = other.map_or_else(|| "%".to_owned(), |c| format!("%{c}"));
                return Err(TemplateError {
                    column: column + i,
                    reason: format!(
                        "unknown date directive {shown:?} (known: %Y %m %d %H %M %S %3f %z %%)"
                    ),
                });
            }
        };
        parts.push(part);
    }
    Ok(parts)
}

fn format_date<Tz: TimeZone>(at: &DateTime<Tz>, format: &[DatePart], out: &mut String) {
    for part in format {
        // Writing to a String cannot fail.
        let _ = match part {
            DatePart::Literal(c) => {
                out.push(*c);
                Ok(())
            }
            DatePart::Year => write!(out, "{:04}", at.year()),
            DatePart::Month => write!(out, "{:02}", at.month()),
            DatePart::Day => write!(out, "{:02}", at.day()),
            DatePart::Hour => write!(out, "{:02}", at.hour()),
            DatePart::Minute => write!(out, "{:02}", at.minute()),
            DatePart::Second => write!(out, "{:02}", at.second()),
            // A leap second shows as 999 ms rather than a 4-digit field.
            DatePart::Millis => write!(out, "{:03}", (at.nanosecond() / 1_000_000).min(999)),
            DatePart::Offset => {
                let seconds = at.offset().fix().local_minus_utc();
                let sign = if seconds < 0 { '-' } else { '+' };
                let minutes = seconds.unsigned_abs() / 60;
                write!(out, "{sign}{:02}{:02}", minutes / 60, minutes % 60)
            }
        };
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Template {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        // The error names the column, not the text: a header template may hold a secret.
        Self::parse(&source).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn fields() -> HashMap<String, String> {
        HashMap::from([
            ("PID-3-1".to_owned(), "12345".to_owned()),
            ("messageId".to_owned(), "01ABC".to_owned()),
            ("slash".to_owned(), "a/b".to_owned()),
        ])
    }

    /// 2026-03-04 05:06:07.089 UTC.
    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_772_600_767_089)
    }

    #[test]
    fn renders_fields_and_dates() {
        let t =
            Template::parse("${PID-3-1}_${utcdate:%Y%m%d%H%M%S.%3f%z}_${messageId}.hl7").unwrap();
        assert_eq!(
            t.render(&fields(), at()),
            "12345_20260304050607.089+0000_01ABC.hl7"
        );
        assert_eq!(
            t.field_names().collect::<Vec<_>>(),
            ["PID-3-1", "messageId"]
        );
        assert!(!t.is_constant());
    }

    #[test]
    fn default_date_is_hl7_dtm() {
        let t = Template::parse("${utcdate}").unwrap();
        assert_eq!(t.render(&fields(), at()), "20260304050607");
        // Local time: same shape, whatever the zone.
        let local = Template::parse("${date}").unwrap().render(&fields(), at());
        assert_eq!(local.len(), 14, "{local}");
        assert!(local.chars().all(|c| c.is_ascii_digit()));
    }

    #[test]
    fn missing_fields_render_empty_and_literals_stay() {
        let t = Template::parse("a$b ${nope}-$${x}-%Y-}").unwrap();
        assert_eq!(t.render(&fields(), at()), "a$b -${x}-%Y-}");
        assert!(Template::parse("plain").unwrap().is_constant());
    }

    #[test]
    fn escape_applies_to_values_only() {
        let t = Template::parse("dir/${slash}").unwrap();
        let out = t.render_escaped(&fields(), at(), |v| Cow::Owned(v.replace('/', "_")));
        assert_eq!(out, "dir/a_b");
    }

    #[test]
    fn errors_name_the_column() {
        let e = Template::parse("ab${PID-3").unwrap_err();
        assert_eq!(e.column, 3, "{e}");
        let e = Template::parse("x${}").unwrap_err();
        assert_eq!(e.column, 4, "{e}");
        let e = Template::parse("${date:%Y%q}").unwrap_err();
        assert_eq!(e.column, 10, "{e}");
        assert!(e.to_string().contains("%q"), "{e}");
        let e = Template::parse("${date:%3}").unwrap_err();
        assert_eq!(e.column, 8, "{e}");
        let e = Template::parse("${PID-3:x}").unwrap_err();
        assert!(e.to_string().contains("only `date`"), "{e}");
        assert!(Template::parse("${date:%}").is_err());
        assert!(Template::parse("${ PID-3}").is_err());
        assert!(Template::parse("${a${b}").is_err());
    }

    #[test]
    fn serde_round_trip() {
        let t: Template = serde_json::from_str(r#""${messageId}.hl7""#).unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""${messageId}.hl7""#);
        let e = serde_json::from_str::<Template>(r#""${secret""#).unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
