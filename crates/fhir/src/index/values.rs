//! Value rules shared by indexing and search: string folding, the instant range of a FHIR
//! date/dateTime/instant, and the range a decimal's precision implies.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Folds text for string search: Unicode NFD, combining marks dropped, lower case.
/// Punctuation and spaces are kept as written (`"Müller-Lüdenscheidt"` →
/// `"muller-ludenscheidt"`, `"ÅSA"` → `"asa"`).
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    if text.is_ascii() {
        out.extend(text.chars().map(|c| c.to_ascii_lowercase()));
        return out;
    }
    for c in text.nfd().filter(|c| !is_combining_mark(*c)) {
        out.extend(c.to_lowercase());
    }
    out
}

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A fixed-width run of ASCII digits as a number.
fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Splits `s` at byte `at` when it is that long, else `None`.
fn take(s: &str, at: usize) -> Option<(&str, &str)> {
    if s.len() < at || !s.is_char_boundary(at) {
        return None;
    }
    Some(s.split_at(at))
}

/// The time zone offset of `Z` / `+hh:mm` / `-hh:mm`, in milliseconds to subtract.
fn zone_offset(zone: &str) -> Option<i64> {
    if zone == "Z" {
        return Some(0);
    }
    let (sign, rest) = take(zone, 1)?;
    let sign = match sign {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let (h, rest) = take(rest, 2)?;
    let (colon, m) = take(rest, 1)?;
    if colon != ":" || m.len() != 2 {
        return None;
    }
    let (h, m) = (digits(h)?, digits(m)?);
    if h > 14 || m > 59 {
        return None;
    }
    Some(sign * (i64::from(h) * 3_600_000 + i64::from(m) * 60_000))
}

/// The instants a FHIR date, dateTime or instant covers: `(first, last)` millisecond since
/// the Unix epoch (UTC), both inclusive, from the value's precision.
///
/// Accepted: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, and `YYYY-MM-DDThh:mm[:ss[.f…]]` with an
/// optional zone (`Z`, `±hh:mm`). `2024` covers the year, `2024-02` the month, `2024-02-29`
/// the day, `…T10:30` the minute, `…T10:30:15` the second, `.5` a tenth of a second, `.50`
/// a hundredth, three or more digits one millisecond (digits past the millisecond are
/// dropped). A value without a zone — every date, and a time written without one — is
/// taken as UTC: FHIR leaves such values to the server's judgement, and UTC makes the
/// index independent of where the server runs. A leap second (`:60`) counts as the last
/// millisecond of its minute. Anything else gives `None`.
pub fn date_range(text: &str) -> Option<(i64, i64)> {
    let (y, rest) = take(text, 4)?;
    let year = i64::from(digits(y)?);
    if rest.is_empty() {
        let low = days_from_civil(year, 1, 1) * MS_PER_DAY;
        return Some((low, days_from_civil(year + 1, 1, 1) * MS_PER_DAY - 1));
    }
    let (dash, rest) = take(rest, 1)?;
    let (mo, rest) = take(rest, 2)?;
    let month = digits(mo)?;
    if dash != "-" || !(1..=12).contains(&month) {
        return None;
    }
    if rest.is_empty() {
        let low = days_from_civil(year, month, 1) * MS_PER_DAY;
        let high = low + i64::from(days_in_month(year, month)) * MS_PER_DAY - 1;
        return Some((low, high));
    }
    let (dash, rest) = take(rest, 1)?;
    let (d, rest) = take(rest, 2)?;
    let day = digits(d)?;
    if dash != "-" || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let day_start = days_from_civil(year, month, day) * MS_PER_DAY;
    if rest.is_empty() {
        return Some((day_start, day_start + MS_PER_DAY - 1));
    }
    let (t, rest) = take(rest, 1)?;
    if t != "T" {
        return None;
    }
    // Time part: hh:mm[:ss[.fff]] then the zone.
    let zone_at = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(zone_at);
    let offset = if zone.is_empty() {
        0
    } else {
        zone_offset(zone)?
    };
    let (hh, time) = take(time, 2)?;
    let (colon, time) = take(time, 1)?;
    let (mi, time) = take(time, 2)?;
    let (hour, minute) = (digits(hh)?, digits(mi)?);
    if colon != ":" || hour > 23 || minute > 59 {
        return None;
    }
    let minute_start =
        day_start + i64::from(hour) * 3_600_000 + i64::from(minute) * 60_000 - offset;
    if time.is_empty() {
        return Some((minute_start, minute_start + 59_999));
    }
    let (colon, time) = take(time, 1)?;
    let (ss, frac) = take(time, 2)?;
    let second = digits(ss)?;
    if colon != ":" || second > 60 {
        return None;
    }
    if second == 60 {
        return Some((minute_start + 59_999, minute_start + 59_999));
    }
    let second_start = minute_start + i64::from(second) * 1000;
    if frac.is_empty() {
        return Some((second_start, second_start + 999));
    }
    let frac = frac.strip_prefix('.')?;
    if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (ms, width) = match frac.len() {
        1 => (digits(frac)? * 100, 99),
        2 => (digits(frac)? * 10, 9),
        _ => (digits(frac.get(..3)?)?, 0),
    };
    let low = second_start + i64::from(ms);
    Some((low, low + width))
}

/// A decimal as written and the range its precision implies: `(value, low, high)`, the
/// value ± half a unit of its last significant digit.
///
/// `"100"` → 99.5..100.5, `"1.50"` → 1.495..1.505, `"1e2"` → 50..150 (one significant
/// digit at the hundreds; the FHIR search page's example gives 95..105 for `1e2`, which
/// no precision rule yields, so we follow the rule). Accepted: an optional sign, digits
/// with an optional fraction, an optional exponent (`e`/`E`). Anything else (including
/// `NaN`, `inf`, or a value out of `f64` range) gives `None`.
pub fn number_range(text: &str) -> Option<(f64, f64, f64)> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => {
            let exp = &body[at + 1..];
            let digits_part = exp.strip_prefix(['-', '+']).unwrap_or(exp);
            if digits_part.is_empty()
                || digits_part.len() > 5
                || !digits_part.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            (&body[..at], exp.parse::<i32>().ok()?)
        }
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || mantissa.contains('.') && frac.is_empty()
    {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    let frac_len = i32::try_from(frac.len()).ok()?;
    let half = 0.5 * 10f64.powi(exponent - frac_len);
    Some((value, value - half, value + half))
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    #[test]
    fn folds() {
        assert_eq!(normalize("Müller"), "muller");
        assert_eq!(normalize("ÅSA"), "asa");
        assert_eq!(normalize("O'Brien-Smith"), "o'brien-smith");
        assert_eq!(normalize("Ærøskøbing"), "ærøskøbing");
        assert_eq!(normalize("Ñandú"), "nandu");
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn date_precisions() {
        let y2024 = days_from_civil(2024, 1, 1) * MS_PER_DAY;
        let y2025 = days_from_civil(2025, 1, 1) * MS_PER_DAY;
        assert_eq!(date_range("2024"), Some((y2024, y2025 - 1)));
        let feb = days_from_civil(2024, 2, 1) * MS_PER_DAY;
        assert_eq!(
            date_range("2024-02"),
            Some((feb, feb + 29 * MS_PER_DAY - 1))
        );
        let d = days_from_civil(2024, 2, 29) * MS_PER_DAY;
        assert_eq!(date_range("2024-02-29"), Some((d, d + MS_PER_DAY - 1)));
        assert_eq!(date_range("2023-02-29"), None);
        let t = d + 10 * 3_600_000 + 30 * 60_000;
        assert_eq!(date_range("2024-02-29T10:30"), Some((t, t + 59_999)));
        assert_eq!(date_range("2024-02-29T10:30Z"), Some((t, t + 59_999)));
        assert_eq!(
            date_range("2024-02-29T10:30:15"),
            Some((t + 15_000, t + 15_999))
        );
        assert_eq!(
            date_range("2024-02-29T10:30:15.5Z"),
            Some((t + 15_500, t + 15_599))
        );
        assert_eq!(
            date_range("2024-02-29T10:30:15.1234+00:00"),
            Some((t + 15_123, t + 15_123))
        );
        assert_eq!(
            date_range("2024-02-29T12:30:15+02:00"),
            Some((t + 15_000, t + 15_999))
        );
        assert_eq!(
            date_range("2024-02-29T05:30:15-05:00"),
            Some((t + 15_000, t + 15_999))
        );
        for bad in [
            "",
            "24",
            "2024-1",
            "2024-13",
            "2024-01-32",
            "2024-01-01T",
            "2024-01-01T25:00",
            "2024-01-01T10:00:00.",
            "2024-01-01T10:00:00+2",
            "2024-01-01 10:00",
            "2024-01-01T10:00:00.5x",
            "é024",
        ] {
            assert_eq!(date_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn number_precisions() {
        assert_eq!(number_range("100"), Some((100.0, 99.5, 100.5)));
        let (v, lo, hi) = number_range("1.50").unwrap_or_default();
        assert!(
            (v - 1.5).abs() < 1e-12 && (lo - 1.495).abs() < 1e-12 && (hi - 1.505).abs() < 1e-12
        );
        assert_eq!(number_range("1e2"), Some((100.0, 50.0, 150.0)));
        assert_eq!(number_range("-2"), Some((-2.0, -2.5, -1.5)));
        for bad in [
            "", "abc", "1.2.3", "NaN", "inf", "1e", "1e999999", "--1", ".", "1.",
        ] {
            assert_eq!(number_range(bad), None, "{bad}");
        }
    }
}
