//! Validation against the HL7 definitions: every problem with its location.
//!
//! Checks: segment order against the message structure, required fields (MSH's included),
//! repetitions of non-repeating fields, data types (DTM/TS/DT/TM, NM, SI), values of coded
//! tables (errors for the key tables in [`STRICT_TABLES`], warnings for the others, which
//! sites extend), lengths where the definitions carry them, and
//! escape sequences that do not decode.

use std::fmt;

use crate::defs::{FieldDef, TableDef, VersionDefs};
use crate::error::Location;
use crate::generated::tables::{ErrorCondition, TABLES};
use crate::message::{Element, Message, Segment};
use crate::structure::{Problem, arrange, definitions, structure_for, structure_id};

/// How serious a finding is (HL7 table 0516).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// `I`: for information.
    Information,
    /// `W`: the message can be processed.
    Warning,
    /// `E`: the message does not conform.
    Error,
    /// `F`: processing cannot go on.
    Fatal,
}

impl Severity {
    /// The table 0516 code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Information => "I",
            Self::Warning => "W",
            Self::Error => "E",
            Self::Fatal => "F",
        }
    }
}

/// One validation finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// How serious.
    pub severity: Severity,
    /// The HL7 table 0357 condition (ERR-3).
    pub condition: ErrorCondition,
    /// Where.
    pub location: Location,
    /// What, for a person.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} [{} {}]: {}",
            self.severity.code(),
            self.location,
            self.condition.code(),
            self.condition.text(),
            self.message
        )
    }
}

/// The definitions used when MSH-12 is empty: the most widely deployed version.
pub const DEFAULT_VERSION: &str = "2.5.1";

/// Tables whose values a conforming message must use: a value outside them is an error. Other
/// tables give warnings, because sites extend them and the definitions we generate from
/// assign a few fields to the wrong table.
pub const STRICT_TABLES: &[u16] = &[1, 3, 4, 8, 76, 85, 103, 104, 155, 354, 357];

/// A table by number.
pub fn table(id: u16) -> Option<&'static TableDef> {
    TABLES
        .binary_search_by_key(&id, |t| t.id)
        .ok()
        .map(|i| &TABLES[i])
}

/// Validates a message; an empty list means it conforms to what is checked.
pub fn validate(msg: &Message<'_>) -> Vec<Issue> {
    let mut v = Validator {
        msg,
        issues: Vec::new(),
        defs: definitions(msg.version().as_deref().unwrap_or(DEFAULT_VERSION)),
    };
    v.structure();
    for seg in msg.segments() {
        v.segment(&seg);
    }
    v.issues.sort_by_key(|i| i.location.offset);
    v.issues
}

struct Validator<'m, 'a> {
    msg: &'m Message<'a>,
    issues: Vec<Issue>,
    defs: &'static VersionDefs,
}

fn seg_location(seg: &Segment<'_>) -> Location {
    Location {
        offset: seg.offset(),
        segment_index: Some(seg.index()),
        segment: Some(seg.id().to_owned()),
        ..Location::default()
    }
}

impl Validator<'_, '_> {
    fn push(
        &mut self,
        severity: Severity,
        condition: ErrorCondition,
        location: Location,
        message: String,
    ) {
        self.issues.push(Issue {
            severity,
            condition,
            location,
            message,
        });
    }

    fn structure(&mut self) {
        let msg = self.msg;
        let Some((_, def)) = structure_for(msg) else {
            let what = structure_id(msg).unwrap_or_else(|| {
                format!(
                    "{}^{}",
                    msg.message_type().unwrap_or_default(),
                    msg.trigger_event().unwrap_or_default()
                )
            });
            let loc = Location {
                field: Some(9),
                ..msg
                    .segment_at(0)
                    .map(|s| seg_location(&s))
                    .unwrap_or_default()
            };
            self.push(
                Severity::Warning,
                ErrorCondition::UnsupportedMessageType,
                loc,
                format!("no structure definition for {what}; segment order not checked"),
            );
            return;
        };
        let end = msg
            .segment_at(msg.segment_count() - 1)
            .map_or(0, |s| s.offset() + s.raw().len());
        for p in arrange(msg, def).problems {
            let at = |i: Option<usize>| {
                i.and_then(|i| msg.segment_at(i))
                    .map_or_else(|| Location::at(end), |s| seg_location(&s))
            };
            let (severity, loc, text) = match p {
                Problem::Missing { what, before } => (
                    Severity::Error,
                    at(before),
                    format!(
                        "required {what} of {} is missing{}",
                        def.id,
                        if before.is_some() {
                            " before this segment"
                        } else {
                            " at the end"
                        }
                    ),
                ),
                Problem::OutOfOrder(i) => (
                    Severity::Error,
                    at(Some(i)),
                    format!("segment is out of order for {}", def.id),
                ),
                Problem::Unexpected(i) => (
                    Severity::Warning,
                    at(Some(i)),
                    format!("segment is not part of {} (kept)", def.id),
                ),
            };
            self.push(severity, ErrorCondition::SegmentSequenceError, loc, text);
        }
    }

    fn segment(&mut self, seg: &Segment<'_>) {
        let Some(def) = self.defs.segment(seg.id()) else {
            return;
        };
        for fd in def.fields {
            let field = seg.field(usize::from(fd.seq));
            let loc = Location {
                field: Some(usize::from(fd.seq)),
                ..seg_location(seg)
            };
            let Some(field) = field.filter(|f| !f.is_empty()) else {
                if fd.card.required() {
                    let loc = Location {
                        offset: seg.offset() + seg.raw().len(),
                        ..loc
                    };
                    self.push(
                        Severity::Error,
                        ErrorCondition::RequiredFieldMissing,
                        loc,
                        format!("required field {} ({}) is empty", fd.name, fd.datatype),
                    );
                }
                continue;
            };
            if seg.id() == "MSH" && fd.seq <= 2 {
                continue;
            }
            let reps = field.children().count();
            if fd.card.max == Some(0) {
                self.push(
                    Severity::Warning,
                    ErrorCondition::NonConformantCardinality,
                    Location {
                        offset: field.offset(),
                        ..loc.clone()
                    },
                    format!(
                        "{} is withdrawn in v{} and should be empty",
                        fd.name, self.defs.version
                    ),
                );
            } else if let Some(max) = fd.card.max.filter(|&m| reps > usize::from(m)) {
                self.push(
                    Severity::Error,
                    ErrorCondition::NonConformantCardinality,
                    Location {
                        offset: field.offset(),
                        ..loc.clone()
                    },
                    format!("{} repeats {reps} times; at most {max} allowed", fd.name),
                );
            }
            let datatype = value_type(seg, fd);
            for (r, rep) in field.children().enumerate() {
                let loc = Location {
                    repetition: Some(r + 1),
                    offset: rep.offset(),
                    ..loc.clone()
                };
                self.value(&rep, datatype, fd.table, loc, fd, 0);
            }
        }
    }

    /// Checks one repetition, component or subcomponent against its data type.
    fn value(
        &mut self,
        e: &Element<'_>,
        datatype: &str,
        tbl: Option<u16>,
        loc: Location,
        fd: &FieldDef,
        depth: usize,
    ) {
        if e.is_empty() || e.is_null() {
            return;
        }
        if let Some(composite) = self.defs.datatype(datatype).filter(|_| depth < 2) {
            if matches!(datatype, "CE" | "CWE" | "CNE") && depth == 0 {
                self.coded_element(e, tbl, &loc);
            }
            for (i, part) in e.children().enumerate() {
                let Some(cd) = composite.components.get(i) else {
                    break;
                };
                let mut l = loc.clone();
                l.offset = part.offset();
                if depth == 0 {
                    l.component = Some(i + 1);
                } else {
                    l.subcomponent = Some(i + 1);
                }
                self.value(&part, cd.datatype, cd.table, l, fd, depth + 1);
            }
            return;
        }
        let text = match e.text() {
            Ok(t) => t,
            Err(err) => {
                self.push(
                    Severity::Error,
                    ErrorCondition::DataTypeError,
                    loc,
                    err.kind.to_string(),
                );
                return;
            }
        };
        if let Some(len) = fd
            .len
            .filter(|&l| depth == 0 && text.chars().count() > l as usize)
        {
            self.push(
                Severity::Error,
                ErrorCondition::ValueTooLong,
                loc.clone(),
                format!(
                    "{} is {} characters long; at most {len} allowed",
                    fd.name,
                    text.chars().count()
                ),
            );
        }
        if let Some(problem) = check_primitive(datatype, &text) {
            self.push(
                Severity::Error,
                ErrorCondition::DataTypeError,
                loc,
                format!(
                    "{} is not a valid {datatype}: {problem}",
                    describe(fd, depth)
                ),
            );
            return;
        }
        if let (Some(t), "ID" | "IS") = (tbl.and_then(table), datatype)
            && !table_holds(t, &text)
        {
            let severity = if STRICT_TABLES.contains(&t.id) {
                Severity::Error
            } else {
                Severity::Warning
            };
            self.push(
                severity,
                ErrorCondition::TableValueNotFound,
                loc,
                format!(
                    "{} value {text:?} is not in HL7 table {:04} ({})",
                    describe(fd, depth),
                    t.id,
                    t.name
                ),
            );
        }
    }

    /// A coded element whose coding system is empty or an HL7 table: its code should be in
    /// the field's table.
    fn coded_element(&mut self, e: &Element<'_>, tbl: Option<u16>, loc: &Location) {
        let Some(t) = tbl.and_then(table) else { return };
        let system = e.child(3).and_then(|c| c.text().ok()).unwrap_or_default();
        if !(system.is_empty() || system.starts_with("HL7")) {
            return;
        }
        let Some(code) = e
            .child(1)
            .and_then(|c| c.text().ok())
            .filter(|c| !c.is_empty())
        else {
            return;
        };
        if !table_holds(t, &code) {
            let l = Location {
                component: Some(1),
                ..loc.clone()
            };
            self.push(
                Severity::Warning,
                ErrorCondition::TableValueNotFound,
                l,
                format!("code {code:?} is not in HL7 table {:04} ({})", t.id, t.name),
            );
        }
    }
}

/// The data type of a field; OBX-5 (and the other "varies" fields) takes the type OBX-2 names.
fn value_type<'d>(seg: &Segment<'_>, fd: &'d FieldDef) -> &'d str {
    if seg.id() == "OBX" && fd.seq == 5 {
        let named = seg
            .field(2)
            .and_then(|f| f.text().ok())
            .map(|t| t.trim().to_owned());
        return match named.as_deref() {
            Some("NM") => "NM",
            Some("SN") => "SN",
            Some("DT") => "DT",
            Some("TM") => "TM",
            Some("DTM" | "TS") => "DTM",
            _ => fd.datatype,
        };
    }
    fd.datatype
}

/// Whether a table holds a code. Table 0396 (coding systems) stands for whole families with
/// pattern codes: `HL7nnnn` for every HL7 table and `99zzz` for local systems.
fn table_holds(t: &TableDef, code: &str) -> bool {
    if t.contains(code) {
        return true;
    }
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    t.id == 396
        && (code.strip_prefix("HL7").is_some_and(|n| digits(n, 4))
            || (code.len() == 5 && code.starts_with("99")))
}

fn describe(fd: &FieldDef, depth: usize) -> String {
    if depth == 0 {
        fd.name.to_owned()
    } else {
        format!("a component of {}", fd.name)
    }
}

/// Checks a primitive value; returns what is wrong.
pub fn check_primitive(datatype: &str, text: &str) -> Option<&'static str> {
    match datatype {
        "NM" => check_number(text),
        "SI" => (!text.bytes().all(|b| b.is_ascii_digit()))
            .then_some("expected a non-negative whole number"),
        "DTM" | "TS" => check_datetime(text, 4),
        "DT" => check_datetime(text, 4)
            .or_else(|| (text.len() > 8).then_some("a date has at most 8 digits (YYYYMMDD)")),
        "TM" => check_time(text),
        _ => None,
    }
}

fn check_number(text: &str) -> Option<&'static str> {
    let t = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (!(digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty())))
        .then_some("expected a number such as -12.5")
}

/// `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`, with each part in range.
fn check_datetime(text: &str, min_digits: usize) -> Option<&'static str> {
    let (main, zone) = split_zone(text);
    if let Some(z) = zone
        && (z.len() != 4 || !z.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some("a time zone offset is +HHMM or -HHMM");
    }
    let (digits, frac) = main.split_once('.').unwrap_or((main, ""));
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Some("expected digits YYYYMMDDHHMMSS");
    }
    if digits.len() < min_digits || digits.len() > 14 || !digits.len().is_multiple_of(2) {
        return Some("expected YYYY, YYYYMM, YYYYMMDD, YYYYMMDDHH, YYYYMMDDHHMM or YYYYMMDDHHMMSS");
    }
    if frac.len() > 4
        || (!frac.is_empty() && digits.len() != 14)
        || (main.contains('.') && frac.is_empty())
    {
        return Some("fractions of a second need all of YYYYMMDDHHMMSS and 1 to 4 digits");
    }
    let part = |from: usize| {
        digits
            .get(from..from + 2)
            .and_then(|p| p.parse::<u32>().ok())
    };
    let year: u32 = digits[..4].parse().unwrap_or(0);
    if let Some(m) = part(4) {
        if !(1..=12).contains(&m) {
            return Some("month out of range");
        }
        if let Some(d) = part(6)
            && (d == 0 || d > days_in_month(year, m))
        {
            return Some("day out of range");
        }
    }
    if part(8).is_some_and(|h| h > 23)
        || part(10).is_some_and(|m| m > 59)
        || part(12).is_some_and(|s| s > 59)
    {
        return Some("time out of range");
    }
    None
}

fn check_time(text: &str) -> Option<&'static str> {
    let (main, _) = split_zone(text);
    let (digits, _) = main.split_once('.').unwrap_or((main, ""));
    if digits.len() < 2 || digits.len() > 6 || !digits.len().is_multiple_of(2) {
        return Some("expected HH, HHMM or HHMMSS");
    }
    check_datetime(&format!("20000101{text}"), 4)
}

fn split_zone(text: &str) -> (&str, Option<&str>) {
    match text.find(['+', '-']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives() {
        assert_eq!(check_primitive("NM", "-12.50"), None);
        assert!(check_primitive("NM", "12a").is_some());
        assert!(check_primitive("NM", ".").is_some());
        assert_eq!(check_primitive("SI", "3"), None);
        assert!(check_primitive("SI", "-3").is_some());
        for ok in [
            "2024",
            "202402",
            "20240229",
            "2024022913",
            "202402291359",
            "20240229135959.1234",
            "20240229135959+0100",
        ] {
            assert_eq!(check_primitive("DTM", ok), None, "{ok}");
        }
        for bad in [
            "24",
            "20230229",
            "20241301",
            "20240101246000",
            "2024010112000",
            "20240101+01",
            "2024-01-01",
        ] {
            assert!(check_primitive("DTM", bad).is_some(), "{bad}");
        }
        assert_eq!(check_primitive("TM", "1230"), None);
        assert!(check_primitive("TM", "2530").is_some());
    }

    #[test]
    fn obx5_follows_obx2() {
        let raw = b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01^ORU_R01|X|P|2.5.1\rPID|1||1||DOE\rOBR|1\rOBX|1|NM|G^Glu||abc||||||F\rOBX|2|ST|N^Note||abc||||||F\r";
        let m = Message::parse(raw).unwrap();
        let bad: Vec<_> = validate(&m)
            .into_iter()
            .filter(|i| i.condition == ErrorCondition::DataTypeError)
            .collect();
        assert_eq!(bad.len(), 1, "{bad:#?}");
        assert_eq!(bad[0].location.segment_index, Some(3));
    }

    #[test]
    fn finds_located_problems() {
        let raw = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01^ADT_A01|X|P|2.5.1\rEVN||2024013\rPID|x||123||DOE||19800230|Q\rPV1|1|ZZ\r";
        let m = Message::parse(raw).unwrap();
        let issues = validate(&m);
        let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
        let has = |path: &str, cond: ErrorCondition| {
            issues
                .iter()
                .any(|i| i.location.path() == path && i.condition == cond)
        };
        assert!(has("EVN-2-1", ErrorCondition::DataTypeError), "{text:#?}");
        assert!(has("PID-1", ErrorCondition::DataTypeError), "{text:#?}");
        assert!(has("PID-7-1", ErrorCondition::DataTypeError), "{text:#?}");
        assert!(
            has("PID-8", ErrorCondition::TableValueNotFound),
            "{text:#?}"
        );
        assert!(
            has("PV1-2", ErrorCondition::TableValueNotFound),
            "{text:#?}"
        );
        let pid1 = issues
            .iter()
            .find(|i| i.location.path() == "PID-1")
            .unwrap();
        assert_eq!(
            pid1.location.offset,
            raw.windows(5).position(|w| w == b"PID|x").unwrap() + 4
        );
    }

    #[test]
    fn msh_required_fields() {
        let m = Message::parse(b"MSH|^~\\&|A\r").unwrap();
        let issues = validate(&m);
        for f in [7, 9, 10, 11, 12] {
            assert!(
                issues
                    .iter()
                    .any(|i| i.condition == ErrorCondition::RequiredFieldMissing
                        && i.location.field == Some(f)),
                "MSH-{f}: {issues:#?}"
            );
        }
    }
}
