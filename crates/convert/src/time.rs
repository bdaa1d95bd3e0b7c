//! HL7 v2 dates and times (DT, TM, DTM/TS) to FHIR `date`, `dateTime`, `instant` and `time`,
//! keeping the precision the sender gave and the time zone offset.

use std::fmt::Write as _;

/// A parsed v2 DTM: `YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtm {
    year: u16,
    month: Option<u8>,
    day: Option<u8>,
    hour: Option<u8>,
    minute: Option<u8>,
    second: Option<u8>,
    /// Digits of the fraction of a second.
    fraction: Option<String>,
    /// `+02:15`
    offset: Option<String>,
}

fn num(s: &str) -> Option<u8> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Appends `n` with at least two digits (`{n:02}` without the formatting machinery).
fn push2(s: &mut String, n: u8) {
    if n < 100 {
        s.push(char::from(b'0' + n / 10));
        s.push(char::from(b'0' + n % 10));
    } else {
        let _ = write!(s, "{n}");
    }
}

/// Appends `n` with at least four digits (`{n:04}`).
fn push4(s: &mut String, n: u16) {
    if n < 10_000 {
        for d in [n / 1000, n / 100 % 10, n / 10 % 10, n % 10] {
            // each d < 10
            s.push(char::from(b'0' + u8::try_from(d).unwrap_or(0)));
        }
    } else {
        let _ = write!(s, "{n}");
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// Splits a `+HHMM` / `-HHMM` suffix off, returning it as `+HH:MM`.
fn split_offset(s: &str) -> Option<(&str, Option<String>)> {
    let Some(i) = s.find(['+', '-']) else {
        return Some((s, None));
    };
    let (head, tz) = s.split_at(i);
    let sign = &tz[..1];
    let digits = &tz[1..];
    if digits.len() != 4 {
        return None;
    }
    let hh = num(&digits[..2])?;
    let mm = num(&digits[2..])?;
    if mm > 59 || hh > 14 || (hh == 14 && mm > 0) {
        return None;
    }
    let mut offset = String::with_capacity(6);
    offset.push_str(sign);
    push2(&mut offset, hh);
    offset.push(':');
    push2(&mut offset, mm);
    Some((head, Some(offset)))
}

/// Appends `Thh:mm:ss[.fraction]` (missing minutes and seconds are zero).
fn push_time(s: &mut String, hour: u8, minute: Option<u8>, second: Option<u8>, f: Option<&str>) {
    s.push('T');
    push2(s, hour);
    s.push(':');
    push2(s, minute.unwrap_or(0));
    s.push(':');
    push2(s, second.unwrap_or(0));
    if let Some(f) = f {
        s.push('.');
        s.push_str(f);
    }
}

impl Dtm {
    /// Parses a DTM (or TS component 1, or DT); `None` when it is not a valid date/time.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (head, offset) = split_offset(text)?;
        let (digits, fraction) = match head.split_once('.') {
            Some((d, f))
                if d.len() == 14 && !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) =>
            {
                (d, Some(f.to_owned()))
            }
            Some(_) => return None,
            None => (head, None),
        };
        if !matches!(digits.len(), 4 | 6 | 8 | 10 | 12 | 14) || !digits.is_ascii() {
            return None;
        }
        let year: u16 = if digits[..4].bytes().all(|b| b.is_ascii_digit()) {
            digits[..4].parse().ok()?
        } else {
            return None;
        };
        if year == 0 {
            return None;
        }
        let part = |i: usize| digits.get(i..i + 2).map(num);
        let month = part(4).map(|m| m.filter(|m| (1..=12).contains(m)));
        let month = match month {
            Some(None) => return None,
            Some(m) => m,
            None => None,
        };
        let day = match part(6) {
            Some(Some(d)) if d >= 1 && d <= days_in_month(year, month.unwrap_or(1)) => Some(d),
            Some(_) => return None,
            None => None,
        };
        let hour = match part(8) {
            Some(Some(h)) if h <= 23 => Some(h),
            Some(_) => return None,
            None => None,
        };
        let minute = match part(10) {
            Some(Some(m)) if m <= 59 => Some(m),
            Some(_) => return None,
            None => None,
        };
        let second = match part(12) {
            Some(Some(s)) if s <= 59 => Some(s),
            Some(_) => return None,
            None => None,
        };
        Some(Dtm {
            year,
            month,
            day,
            hour,
            minute,
            second,
            fraction,
            offset,
        })
    }

    /// Whether the value has a time of day.
    pub fn has_time(&self) -> bool {
        self.hour.is_some()
    }

    /// The time zone offset the value carries, as `+HH:MM`.
    pub fn offset(&self) -> Option<&str> {
        self.offset.as_deref()
    }

    /// FHIR `date`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub fn to_date(&self) -> String {
        // room for a whole dateTime: to_datetime appends to it
        let mut s = String::with_capacity(32);
        push4(&mut s, self.year);
        if let Some(m) = self.month {
            s.push('-');
            push2(&mut s, m);
            if let Some(d) = self.day {
                s.push('-');
                push2(&mut s, d);
            }
        }
        s
    }

    /// FHIR `dateTime`. A time of day needs a zone in FHIR: the value's own offset, else
    /// `default_tz`; without either the value is cut to its date and `cut` is true.
    pub fn to_datetime(&self, default_tz: Option<&str>) -> (String, bool) {
        let mut s = self.to_date();
        let (Some(hour), Some(_)) = (self.hour, self.day) else {
            return (s, false);
        };
        let Some(tz) = self.offset.as_deref().or(default_tz) else {
            return (s, true);
        };
        push_time(
            &mut s,
            hour,
            self.minute,
            self.second,
            self.fraction.as_deref(),
        );
        s.push_str(tz);
        (s, false)
    }

    /// FHIR `instant` (full date and seconds, with a zone): missing parts are zero, a missing
    /// zone is `default_tz`, else UTC. `None` without a day.
    pub fn to_instant(&self, default_tz: Option<&str>) -> Option<String> {
        let (Some(month), Some(day)) = (self.month, self.day) else {
            return None;
        };
        let mut s = String::with_capacity(32);
        push4(&mut s, self.year);
        s.push('-');
        push2(&mut s, month);
        s.push('-');
        push2(&mut s, day);
        push_time(
            &mut s,
            self.hour.unwrap_or(0),
            self.minute,
            self.second,
            self.fraction.as_deref(),
        );
        s.push_str(self.offset.as_deref().or(default_tz).unwrap_or("Z"));
        Some(s)
    }
}

/// A v2 TM (`HH[MM[SS[.S…]]][+/-ZZZZ]`) as FHIR `time` (`hh:mm:ss`, no zone in FHIR).
pub fn tm_to_time(text: &str) -> Option<String> {
    let (head, _) = split_offset(text.trim())?;
    let (digits, fraction) = match head.split_once('.') {
        Some((d, f)) if d.len() == 6 && !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            (d, Some(f))
        }
        Some(_) => return None,
        None => (head, None),
    };
    if !matches!(digits.len(), 2 | 4 | 6) || !digits.is_ascii() {
        return None;
    }
    let h = num(&digits[..2]).filter(|h| *h <= 23)?;
    let m = match digits.get(2..4) {
        Some(m) => num(m).filter(|m| *m <= 59)?,
        None => 0,
    };
    let s = match digits.get(4..6) {
        Some(s) => num(s).filter(|s| *s <= 59)?,
        None => 0,
    };
    let mut out = format!("{h:02}:{m:02}:{s:02}");
    if let Some(f) = fraction {
        let _ = write!(out, ".{f}");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_precision_and_offset() {
        let d = Dtm::parse("198908181126+0215").expect("valid");
        assert_eq!(
            d.to_datetime(None),
            ("1989-08-18T11:26:00+02:15".into(), false)
        );
        assert_eq!(
            Dtm::parse("2002").map(|d| d.to_datetime(None).0).as_deref(),
            Some("2002")
        );
        assert_eq!(
            Dtm::parse("200202")
                .map(|d| d.to_datetime(None).0)
                .as_deref(),
            Some("2002-02")
        );
        let f = Dtm::parse("20210817151943.4+0200").expect("valid");
        assert_eq!(f.to_datetime(None).0, "2021-08-17T15:19:43.4+02:00");
        assert_eq!(
            f.to_instant(None).as_deref(),
            Some("2021-08-17T15:19:43.4+02:00")
        );
    }

    #[test]
    fn time_without_zone_uses_the_default_or_is_cut_to_the_date() {
        let d = Dtm::parse("20290801070724").expect("valid");
        assert_eq!(d.to_datetime(None), ("2029-08-01".into(), true));
        assert_eq!(d.to_datetime(Some("-05:00")).0, "2029-08-01T07:07:24-05:00");
        assert_eq!(d.to_instant(None).as_deref(), Some("2029-08-01T07:07:24Z"));
    }

    #[test]
    fn rejects_what_is_not_a_date() {
        for bad in [
            "",
            "19",
            "2021131",
            "20210230",
            "20211301",
            "2021010125",
            "abcd",
            "2021+99",
            "20210101.5",
            "20210101120000+2500",
        ] {
            assert!(Dtm::parse(bad).is_none(), "{bad}");
        }
        assert!(Dtm::parse("20240229").is_some());
        assert!(Dtm::parse("20230229").is_none());
    }

    #[test]
    fn tm() {
        assert_eq!(tm_to_time("1130").as_deref(), Some("11:30:00"));
        assert_eq!(tm_to_time("113005.25").as_deref(), Some("11:30:05.25"));
        assert_eq!(tm_to_time("11:30:05"), None);
    }
}
