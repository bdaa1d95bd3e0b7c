//! The delimiters a message declares in MSH-1 and MSH-2.

use crate::error::{ErrorKind, ParseError};

/// The separator and escape characters of one message, read from MSH-1 and MSH-2.
///
/// HL7 lets a sender pick any characters; `|^~\&` is only the convention. Version 2.7 added a
/// fifth encoding character, the truncation character (usually `#`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delimiters {
    /// Field separator (MSH-1), usually `|`.
    pub field: u8,
    /// Component separator, usually `^`.
    pub component: u8,
    /// Repetition separator, usually `~`.
    pub repetition: u8,
    /// Escape character, usually `\`; `None` when MSH-2 declares none.
    pub escape: Option<u8>,
    /// Subcomponent separator, usually `&`; `None` when MSH-2 declares none.
    pub subcomponent: Option<u8>,
    /// Truncation character (v2.7+), usually `#`.
    pub truncation: Option<u8>,
}

impl Default for Delimiters {
    fn default() -> Self {
        Self {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: Some(b'\\'),
            subcomponent: Some(b'&'),
            truncation: None,
        }
    }
}

impl Delimiters {
    /// Reads the delimiters from the start of a message: `MSH` + MSH-1 + MSH-2 + MSH-1.
    ///
    /// `offset` is the byte offset of `MSH` in the caller's input, used for error locations.
    pub fn from_msh(msh: &[u8], offset: usize) -> Result<(Self, usize), ParseError> {
        let err = |kind, at: usize| Err(ParseError::new(kind, offset + at).in_segment(0, "MSH"));
        if msh.len() < 4 {
            return err(
                ErrorKind::Truncated("MSH segment ends before its delimiters"),
                msh.len(),
            );
        }
        let field = msh[3];
        if !is_valid_delimiter(field) {
            return err(
                ErrorKind::BadDelimiters("MSH-1 field separator is not a printable character"),
                3,
            );
        }
        let rest = &msh[4..];
        let len = rest
            .iter()
            .position(|&b| b == field || b == b'\r' || b == b'\n')
            .unwrap_or(rest.len());
        let chars = &rest[..len];
        if chars.len() < 2 || chars.len() > 5 {
            return err(
                ErrorKind::BadDelimiters(
                    "MSH-2 must hold 2 to 5 encoding characters (component, repetition, escape, subcomponent, truncation)",
                ),
                4,
            );
        }
        let d = Self {
            field,
            component: chars[0],
            repetition: chars[1],
            escape: chars.get(2).copied(),
            subcomponent: chars.get(3).copied(),
            truncation: chars.get(4).copied(),
        };
        let all = [
            Some(d.field),
            Some(d.component),
            Some(d.repetition),
            d.escape,
            d.subcomponent,
            d.truncation,
        ];
        // all[k] sits at byte 3 + k of the segment
        for (i, a) in all.iter().enumerate() {
            let Some(a) = a else { continue };
            if !is_valid_delimiter(*a) {
                return err(
                    ErrorKind::BadDelimiters(
                        "MSH-2 holds a character that cannot be a delimiter (letter, digit, space or control)",
                    ),
                    3 + i,
                );
            }
            if all[..i].iter().flatten().any(|b| b == a) {
                return err(
                    ErrorKind::BadDelimiters("MSH-1/MSH-2 declare the same character twice"),
                    3 + i,
                );
            }
        }
        Ok((d, 4 + len))
    }

    /// The MSH-2 text these delimiters encode to, e.g. `^~\&`.
    pub fn encoding_characters(&self) -> Vec<u8> {
        let mut v = vec![self.component, self.repetition];
        v.extend(self.escape);
        if self.escape.is_some() {
            v.extend(self.subcomponent);
            if self.subcomponent.is_some() {
                v.extend(self.truncation);
            }
        }
        v
    }

    /// The separator byte that splits an element of `level` into its children.
    pub(crate) fn separator(&self, level: crate::Level) -> Option<u8> {
        match level {
            crate::Level::Field => Some(self.repetition),
            crate::Level::Repetition => Some(self.component),
            crate::Level::Component => self.subcomponent,
            crate::Level::Subcomponent => None,
        }
    }
}

/// Delimiters must be printable ASCII punctuation: a letter, digit or space would make
/// segment ids and values ambiguous.
fn is_valid_delimiter(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_standard_and_custom_delimiters() {
        let (d, end) = Delimiters::from_msh(b"MSH|^~\\&|A", 0).unwrap();
        assert_eq!(d, Delimiters::default());
        assert_eq!(end, 8);
        let (d, _) = Delimiters::from_msh(b"MSH*:!%$#*", 0).unwrap();
        assert_eq!((d.field, d.component, d.repetition), (b'*', b':', b'!'));
        assert_eq!(
            (d.escape, d.subcomponent, d.truncation),
            (Some(b'%'), Some(b'$'), Some(b'#'))
        );
        assert_eq!(d.encoding_characters(), b":!%$#");
    }

    #[test]
    fn rejects_bad_delimiters() {
        for bad in [
            &b"MSH"[..],
            b"MSH|",
            b"MSH|^|",
            b"MSH|^^\\&|",
            b"MSH|a~\\&|",
            b"MSH ^~\\&",
            b"MSH|^~\\&$%@|",
        ] {
            assert!(
                Delimiters::from_msh(bad, 0).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
