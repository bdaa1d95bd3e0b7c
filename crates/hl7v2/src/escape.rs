//! HL7 escape sequences: decoded when a value is read, produced when a value is written.
//!
//! Decoded: `\F\ \S\ \T\ \R\ \E\ \P\` (the delimiters), `\Xhh..\` (bytes in the message's
//! character set), `\.br\` (a line break, as `\n`), `\H\` and `\N\` (highlighting, dropped).
//! Anything else — an unknown or unterminated sequence, `\Zxx\` — is kept literally, as
//! receivers commonly do, because real senders put unescaped backslashes in free text.

use std::borrow::Cow;

use memchr::memchr;

use crate::charset::Charset;
use crate::delims::Delimiters;
use crate::error::ErrorKind;

/// Decodes the escape sequences of one value (a leaf, or any element read as text).
pub fn unescape<'a>(
    raw: &'a [u8],
    d: &Delimiters,
    charset: Charset,
) -> Result<Cow<'a, str>, ErrorKind> {
    let Some(esc) = d.escape else {
        return charset.decode(raw);
    };
    let Some(first) = memchr(esc, raw) else {
        return charset.decode(raw);
    };
    let mut out = String::with_capacity(raw.len());
    out.push_str(&charset.decode(&raw[..first])?);
    let mut rest = &raw[first..];
    while !rest.is_empty() {
        // rest starts with the escape character
        let Some(close) = memchr(esc, &rest[1..]).map(|i| i + 1) else {
            out.push_str(&charset.decode(rest)?);
            break;
        };
        let seq = &rest[1..close];
        if decode_sequence(seq, d, charset, &mut out)? {
            rest = &rest[close + 1..];
        } else {
            // Not a sequence we know: keep the escape character literally and go on after it.
            out.push_str(&charset.decode(&rest[..1])?);
            rest = &rest[1..];
        }
        let next = memchr(esc, rest).unwrap_or(rest.len());
        out.push_str(&charset.decode(&rest[..next])?);
        rest = &rest[next..];
    }
    Ok(Cow::Owned(out))
}

/// Appends the meaning of one sequence (without its escape characters); false if unknown.
fn decode_sequence(
    seq: &[u8],
    d: &Delimiters,
    charset: Charset,
    out: &mut String,
) -> Result<bool, ErrorKind> {
    let mut delim = |b: Option<u8>| -> bool {
        match b {
            Some(b) => {
                out.push(char::from(b));
                true
            }
            None => false,
        }
    };
    Ok(match seq {
        b"F" => delim(Some(d.field)),
        b"S" => delim(Some(d.component)),
        b"T" => delim(d.subcomponent),
        b"R" => delim(Some(d.repetition)),
        b"E" => delim(d.escape),
        b"P" => delim(d.truncation),
        b"H" | b"N" => true,
        b".br" => {
            out.push('\n');
            true
        }
        [b'X', hex @ ..]
            if !hex.is_empty() && hex.len() % 2 == 0 && hex.iter().all(u8::is_ascii_hexdigit) =>
        {
            let bytes: Vec<u8> = hex
                .chunks(2)
                .map(|p| (hex_val(p[0]) << 4) | hex_val(p[1]))
                .collect();
            let text = charset.decode(&bytes).map_err(|e| {
                ErrorKind::BadEscape(format!("\\X{}\\: {e}", String::from_utf8_lossy(hex)))
            })?;
            out.push_str(&text);
            true
        }
        _ => false,
    })
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// Encodes text for one leaf value: delimiters become escape sequences, `\n` becomes `\.br\`,
/// `\r` becomes `\X0D\`; the result is in the message's character set.
pub fn escape_into(
    text: &str,
    d: &Delimiters,
    charset: Charset,
    out: &mut Vec<u8>,
) -> Result<(), ErrorKind> {
    let special = |c: char| -> Option<&'static str> {
        let b = u8::try_from(u32::from(c)).ok()?;
        if b == d.field {
            Some("F")
        } else if b == d.component {
            Some("S")
        } else if Some(b) == d.subcomponent {
            Some("T")
        } else if b == d.repetition {
            Some("R")
        } else if Some(b) == d.escape {
            Some("E")
        } else if Some(b) == d.truncation {
            Some("P")
        } else if b == b'\n' {
            Some(".br")
        } else if b == b'\r' {
            Some("X0D")
        } else {
            None
        }
    };
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if let Some(code) = special(c) {
            let Some(esc) = d.escape else {
                return Err(ErrorKind::Unencodable(
                    c,
                    "a message whose MSH-2 declares no escape character",
                ));
            };
            charset.encode_into(&text[start..i], out)?;
            out.push(esc);
            out.extend_from_slice(code.as_bytes());
            out.push(esc);
            start = i + c.len_utf8();
        }
    }
    charset.encode_into(&text[start..], out)
}

/// Escapes text to a new byte vector (see [`escape_into`]).
pub fn escape(text: &str, d: &Delimiters, charset: Charset) -> Result<Vec<u8>, ErrorKind> {
    let mut out = Vec::with_capacity(text.len());
    escape_into(text, d, charset, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(s: &str) -> String {
        unescape(s.as_bytes(), &Delimiters::default(), Charset::Utf8)
            .unwrap()
            .into_owned()
    }

    #[test]
    fn decodes_every_sequence() {
        assert_eq!(un(r"a\F\b\S\c\T\d\R\e\E\f"), r"a|b^c&d~e\f");
        assert_eq!(un(r"line1\.br\line2"), "line1\nline2");
        assert_eq!(un(r"\H\bold\N\"), "bold");
        assert_eq!(un(r"\X41C3A9\"), "Aé");
        assert_eq!(un(r"C:\temp\x"), r"C:\temp\x");
        assert_eq!(un(r"end\"), r"end\");
        assert_eq!(un(r"\Zabc\"), r"\Zabc\");
        assert!(unescape(br"\XFF\", &Delimiters::default(), Charset::Utf8).is_err());
        let d = Delimiters {
            truncation: Some(b'#'),
            ..Delimiters::default()
        };
        assert_eq!(unescape(br"a\P\b", &d, Charset::Utf8).unwrap(), "a#b");
    }

    #[test]
    fn escapes_and_round_trips() {
        let d = Delimiters::default();
        let text = "a|b^c&d~e\\f\nline\r";
        let raw = escape(text, &d, Charset::Utf8).unwrap();
        assert_eq!(raw, br"a\F\b\S\c\T\d\R\e\E\f\.br\line\X0D\");
        assert_eq!(unescape(&raw, &d, Charset::Utf8).unwrap(), text);
    }
}
