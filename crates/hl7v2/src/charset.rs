//! Character sets named in MSH-18 and the conversion of message bytes to text.

use std::borrow::Cow;

use crate::error::ErrorKind;

/// A character set a message can declare in MSH-18 (its first repetition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Charset {
    /// `ASCII` (also `ISO IR6`): 7-bit bytes only.
    Ascii,
    /// `8859/1` (also `ISO IR100`): Latin-1, every byte is one character.
    Latin1,
    /// `UNICODE UTF-8`. Also the default when MSH-18 is empty: HL7 says ASCII, but real senders
    /// put UTF-8 in undeclared messages, and UTF-8 accepts every ASCII message unchanged.
    #[default]
    Utf8,
}

impl Charset {
    /// The charset named by an MSH-18 value; empty means the default (UTF-8).
    pub fn from_msh18(value: &[u8]) -> Result<Self, ErrorKind> {
        let v = value.trim_ascii();
        let upper = v.to_ascii_uppercase();
        match upper.as_slice() {
            b"" | b"UNICODE UTF-8" | b"UTF-8" | b"UTF8" => Ok(Self::Utf8),
            b"ASCII" | b"ISO IR6" => Ok(Self::Ascii),
            b"8859/1" | b"ISO IR100" | b"ISO-8859-1" => Ok(Self::Latin1),
            _ => Err(ErrorKind::UnsupportedCharset(
                String::from_utf8_lossy(v).into_owned(),
            )),
        }
    }

    /// The MSH-18 code of this charset.
    pub fn code(self) -> &'static str {
        match self {
            Self::Ascii => "ASCII",
            Self::Latin1 => "8859/1",
            Self::Utf8 => "UNICODE UTF-8",
        }
    }

    /// Checks that every byte fits; on error returns the offset and the byte.
    pub fn check(self, bytes: &[u8]) -> Result<(), (usize, ErrorKind)> {
        let bad = match self {
            Self::Latin1 => None,
            Self::Ascii => bytes.iter().position(|b| !b.is_ascii()),
            Self::Utf8 => std::str::from_utf8(bytes).err().map(|e| e.valid_up_to()),
        };
        match bad {
            None => Ok(()),
            Some(at) => Err((
                at,
                ErrorKind::InvalidByte {
                    byte: bytes[at],
                    charset: self.code(),
                },
            )),
        }
    }

    /// Decodes bytes to text, borrowing when possible.
    pub fn decode(self, bytes: &[u8]) -> Result<Cow<'_, str>, ErrorKind> {
        let invalid = |at: usize| ErrorKind::InvalidByte {
            byte: bytes[at],
            charset: self.code(),
        };
        match self {
            Self::Utf8 => std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(|e| invalid(e.valid_up_to())),
            Self::Ascii => match bytes.iter().position(|b| !b.is_ascii()) {
                Some(at) => Err(invalid(at)),
                None => std::str::from_utf8(bytes)
                    .map(Cow::Borrowed)
                    .map_err(|e| invalid(e.valid_up_to())),
            },
            Self::Latin1 => match std::str::from_utf8(bytes) {
                Ok(s) if s.is_ascii() => Ok(Cow::Borrowed(s)),
                _ => Ok(Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect())),
            },
        }
    }

    /// Encodes text to bytes of this charset, appending to `out`.
    pub fn encode_into(self, text: &str, out: &mut Vec<u8>) -> Result<(), ErrorKind> {
        match self {
            Self::Utf8 => out.extend_from_slice(text.as_bytes()),
            Self::Ascii => {
                if let Some(c) = text.chars().find(|c| !c.is_ascii()) {
                    return Err(ErrorKind::Unencodable(c, self.code()));
                }
                out.extend_from_slice(text.as_bytes());
            }
            Self::Latin1 => {
                for c in text.chars() {
                    let b = u8::try_from(u32::from(c))
                        .map_err(|_| ErrorKind::Unencodable(c, self.code()))?;
                    out.push(b);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_checks() {
        assert_eq!(Charset::from_msh18(b"").unwrap(), Charset::Utf8);
        assert_eq!(Charset::from_msh18(b"8859/1").unwrap(), Charset::Latin1);
        assert!(matches!(
            Charset::from_msh18(b"KLINGON"),
            Err(ErrorKind::UnsupportedCharset(_))
        ));
        assert_eq!(Charset::Ascii.check(b"ab\xC3\xA9").unwrap_err().0, 2);
        assert_eq!(Charset::Utf8.check(b"ab\xFF").unwrap_err().0, 2);
        assert!(Charset::Latin1.check(b"\xE9").is_ok());
        assert_eq!(Charset::Latin1.decode(b"caf\xE9").unwrap(), "café");
        let mut out = Vec::new();
        Charset::Latin1.encode_into("café", &mut out).unwrap();
        assert_eq!(out, b"caf\xE9");
        assert!(Charset::Latin1.encode_into("€", &mut out).is_err());
    }
}
