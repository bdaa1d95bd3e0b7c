//! Dates, date-times and times as FHIRPath compares them: component by component up to the
//! coarser precision, with time zones normalized when both sides have one.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// A parsed date, date-time or time. `parts` holds year, month, day, hour, minute and
/// milliseconds-of-minute; `precision` says how many of them were given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Temporal {
    parts: [i64; 6],
    precision: usize,
    /// Offset from UTC in minutes, when given.
    offset: Option<i64>,
}

fn digits(s: &str, n: usize) -> Option<(i64, &str)> {
    if s.len() < n || !s.as_bytes()[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

/// Parses `hh(:mm(:ss(.fff)?)?)?` into `parts[3..]`, returning the rest.
fn parse_time<'s>(s: &'s str, parts: &mut [i64; 6], precision: &mut usize) -> Option<&'s str> {
    let (h, mut rest) = digits(s, 2)?;
    if h > 23 {
        return None;
    }
    parts[3] = h;
    *precision = 4;
    if let Some(r) = rest.strip_prefix(':') {
        let (m, r) = digits(r, 2)?;
        if m > 59 {
            return None;
        }
        parts[4] = m;
        *precision = 5;
        rest = r;
        if let Some(r) = rest.strip_prefix(':') {
            let (sec, r) = digits(r, 2)?;
            if sec > 60 {
                return None;
            }
            let mut millis = sec * 1000;
            rest = r;
            if let Some(r) = rest.strip_prefix('.') {
                let len = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                if len == 0 {
                    return None;
                }
                let frac = &r[..len.min(3)];
                let scale = [100, 10, 1];
                for (i, c) in frac.bytes().enumerate() {
                    millis += i64::from(c - b'0') * scale[i];
                }
                rest = &r[len..];
            }
            parts[5] = millis;
            *precision = 6;
        }
    }
    Some(rest)
}

/// Parses a zone offset in minutes; an empty string is `Ok(None)`, junk is `Err(())`.
fn parse_offset(s: &str) -> Result<Option<i64>, ()> {
    if s.is_empty() {
        return Ok(None);
    }
    if s == "Z" {
        return Ok(Some(0));
    }
    let sign = match s.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return Err(()),
    };
    let (h, r) = digits(&s[1..], 2).ok_or(())?;
    let (m, r) = digits(r.strip_prefix(':').ok_or(())?, 2).ok_or(())?;
    if r.is_empty() {
        Ok(Some(sign * (h * 60 + m)))
    } else {
        Err(())
    }
}

impl Temporal {
    /// Parses a date or date-time (`2020`, `2020-01-02T10:00:00.000+01:00`, `2020-01T`).
    pub(crate) fn parse_date_time(s: &str) -> Option<Self> {
        let mut parts = [0, 1, 1, 0, 0, 0];
        let (y, mut rest) = digits(s, 4)?;
        parts[0] = y;
        let mut precision = 1;
        for (i, max) in [(1, 12), (2, 31)] {
            let Some(r) = rest.strip_prefix('-') else {
                break;
            };
            let (v, r) = digits(r, 2)?;
            if v == 0 || v > max {
                return None;
            }
            parts[i] = v;
            precision = i + 1;
            rest = r;
        }
        let mut offset = None;
        if let Some(r) = rest.strip_prefix('T') {
            rest = r;
            if !rest.is_empty() && precision == 3 {
                rest = parse_time(rest, &mut parts, &mut precision)?;
            }
            offset = parse_offset(rest).ok()?;
        } else if !rest.is_empty() {
            return None;
        }
        Some(Self {
            parts,
            precision,
            offset,
        })
    }

    /// Parses a time (`10`, `10:00`, `10:00:00.5`), without `T`.
    pub(crate) fn parse_time(s: &str) -> Option<Self> {
        let mut parts = [0; 6];
        let mut precision = 0;
        let rest = parse_time(s, &mut parts, &mut precision)?;
        rest.is_empty().then_some(Self {
            parts,
            precision,
            offset: None,
        })
    }

    fn to_utc(self) -> Self {
        let Some(offset) = self
            .offset
            .filter(|_| self.precision >= 4 && self.parts[0] > 0)
        else {
            return self;
        };
        let days = days_from_civil(self.parts[0], self.parts[1], self.parts[2]);
        let minutes = days * 1440 + self.parts[3] * 60 + self.parts[4] - offset;
        let (y, m, d) = civil_from_days(minutes.div_euclid(1440));
        let in_day = minutes.rem_euclid(1440);
        Self {
            parts: [y, m, d, in_day / 60, in_day % 60, self.parts[5]],
            precision: self.precision,
            offset: Some(0),
        }
    }

    /// Compares two values: `None` when they differ only below the coarser precision.
    pub(crate) fn compare(&self, other: &Self) -> Option<Ordering> {
        let (a, b) = if self.offset.is_some() && other.offset.is_some() {
            (self.to_utc(), other.to_utc())
        } else {
            (*self, *other)
        };
        let common = a.precision.min(b.precision);
        // Seconds precision covers fractional seconds, so it is one level.
        for i in 0..common {
            match a.parts[i].cmp(&b.parts[i]) {
                Ordering::Equal => {}
                unequal => return Some(unequal),
            }
        }
        (a.precision == b.precision).then_some(Ordering::Equal)
    }
}

/// Calendar units FHIRPath adds to dates, with their UCUM spellings.
fn unit_step(unit: &str) -> Option<(usize, i64)> {
    // (index of the part to add to, multiplier)
    Some(match unit {
        "year" | "years" | "a" => (0, 1),
        "month" | "months" | "mo" => (1, 1),
        "week" | "weeks" | "wk" => (2, 7),
        "day" | "days" | "d" => (2, 1),
        "hour" | "hours" | "h" => (3, 1),
        "minute" | "minutes" | "min" => (4, 1),
        "second" | "seconds" | "s" => (5, 1000),
        "millisecond" | "milliseconds" | "ms" => (5, 1),
        _ => return None,
    })
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Temporal {
    /// Adds `amount` calendar `unit`s (`None` for a non-calendar unit or an out-of-range
    /// result). Units finer than the value's precision are truncated away, as the spec says.
    pub(crate) fn add(self, amount: f64, unit: &str, is_time: bool) -> Option<Self> {
        let (part, scale) = unit_step(unit)?;
        if !amount.is_finite() || amount.abs() > 1e12 {
            return None;
        }
        #[allow(clippy::cast_possible_truncation)]
        let count = (amount.trunc() as i64).checked_mul(scale)?;
        let mut t = self;
        let [y, m, d, hh, mm, ms] = t.parts;
        if part < 2 {
            let months = if part == 0 {
                count.checked_mul(12)?
            } else {
                count
            };
            let total = (y * 12 + m - 1).checked_add(months)?;
            let (y, m) = (total.div_euclid(12), total.rem_euclid(12) + 1);
            t.parts[0] = y;
            t.parts[1] = m;
            t.parts[2] = d.min(days_in_month(y, m));
        } else if !is_time && t.precision <= 2 {
            // Days and finer on a year or month: truncated to nothing.
        } else {
            // Everything below a month as milliseconds since the epoch (or since midnight).
            let unit_ms = [0, 0, 86_400_000, 3_600_000, 60_000, 1][part];
            let day = if is_time { 0 } else { days_from_civil(y, m, d) };
            let now = day * 86_400_000 + hh * 3_600_000 + mm * 60_000 + ms;
            let precision_ms = [0, 0, 0, 86_400_000, 3_600_000, 60_000, 1][t.precision.min(6)];
            let step = count.checked_mul(unit_ms)?;
            let step = if precision_ms > 0 {
                step - step % precision_ms
            } else {
                step
            };
            let total = now.checked_add(step)?;
            let (day, in_day) = (total.div_euclid(86_400_000), total.rem_euclid(86_400_000));
            if !is_time {
                let (y, m, d) = civil_from_days(day);
                t.parts[0] = y;
                t.parts[1] = m;
                t.parts[2] = d;
            }
            t.parts[3] = in_day / 3_600_000;
            t.parts[4] = in_day % 3_600_000 / 60_000;
            t.parts[5] = in_day % 60_000;
        }
        (0..=9999).contains(&t.parts[0]).then_some(t)
    }

    /// The value written back at its own precision (a time without `T`).
    pub(crate) fn format(&self, is_time: bool) -> String {
        let p = self.parts;
        let mut out = String::new();
        let start = if is_time { 3 } else { 0 };
        // Writing to a String cannot fail.
        for i in start..self.precision {
            let _ = match i {
                0 => write!(out, "{:04}", p[0]),
                1 | 2 => write!(out, "-{:02}", p[i]),
                3 if is_time => write!(out, "{:02}", p[3]),
                3 => write!(out, "T{:02}", p[3]),
                4 => write!(out, ":{:02}", p[4]),
                _ if p[5] % 1000 == 0 => write!(out, ":{:02}", p[5] / 1000),
                _ => write!(out, ":{:02}.{:03}", p[5] / 1000, p[5] % 1000),
            };
        }
        match self.offset.filter(|_| !is_time) {
            None => {}
            Some(0) => out.push('Z'),
            Some(offset) => {
                let sign = if offset < 0 { '-' } else { '+' };
                let _ = write!(
                    out,
                    "{sign}{:02}:{:02}",
                    offset.abs() / 60,
                    offset.abs() % 60
                );
            }
        }
        out
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// The current instant in UTC: `YYYY-MM-DDThh:mm:ss.sss+00:00`.
pub(crate) fn now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(0);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        s / 3600,
        s % 3600 / 60,
        s % 60,
        since.subsec_millis()
    )
}

/// Today's date in UTC: `YYYY-MM-DD`.
pub(crate) fn today() -> String {
    now()[..10].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_and_zones() {
        let p = |s| Temporal::parse_date_time(s).unwrap();
        assert_eq!(
            p("2020-01-02").compare(&p("2020-01-03")),
            Some(Ordering::Less)
        );
        assert_eq!(p("2020-01").compare(&p("2020-01-03")), None);
        assert_eq!(
            p("2020-01-02T10:00:00+01:00").compare(&p("2020-01-02T09:00:00Z")),
            Some(Ordering::Equal)
        );
        assert_eq!(
            p("2020-01-01T00:30:00+01:00").compare(&p("2019-12-31T23:30:00Z")),
            Some(Ordering::Equal)
        );
        assert!(Temporal::parse_date_time("2020-13").is_none());
        assert!(Temporal::parse_date_time("x").is_none());
        assert!(now().starts_with("20"));
        let add = |s, n, u| p(s).add(n, u, false).unwrap().format(false);
        assert_eq!(add("2020-01-31", 1.0, "month"), "2020-02-29");
        assert_eq!(add("2020-03-01", -1.0, "day"), "2020-02-29");
        assert_eq!(
            add("2020-01-01T23:30:00Z", 45.0, "minutes"),
            "2020-01-02T00:15:00Z"
        );
        assert_eq!(add("2020", 1.0, "year"), "2021");
        assert_eq!(add("2020-01", 40.0, "days"), "2020-01");
        assert_eq!(
            add("2020-01-01T10:00:00.250+02:00", 1.0, "s"),
            "2020-01-01T10:00:01.250+02:00"
        );
        let t = Temporal::parse_time("23:00")
            .unwrap()
            .add(2.0, "hours", true)
            .unwrap();
        assert_eq!(t.format(true), "01:00");
        assert!(p("2020").add(1.0, "mg", false).is_none());
        assert!(p("9999").add(1.0, "year", false).is_none());
    }
}
