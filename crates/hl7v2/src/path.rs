//! Paths such as `PID-5-1`, `PID-3[2]-1`, `OBX[3]-5`, `PID-5-1-2` and `MSH-9-2`.

use std::fmt;

use crate::error::{ErrorKind, ParseError, Result};
use crate::message::{Element, Segment};

/// A location in a message as integration engineers write it.
///
/// `SEG[occurrence]-field[repetition]-component-subcomponent`; every number is 1-based and
/// every bracket optional. `.` is accepted in place of `-` (`PID.5.1`). Without `[n]` on the
/// field, the path names the whole field (all repetitions); with a component, the first
/// repetition is meant unless another is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    segment: [u8; 3],
    /// Which occurrence of the segment (1-based).
    pub occurrence: usize,
    /// Field number (1-based).
    pub field: usize,
    /// Repetition (1-based), if named.
    pub repetition: Option<usize>,
    /// Component (1-based), if named.
    pub component: Option<usize>,
    /// Subcomponent (1-based), if named.
    pub subcomponent: Option<usize>,
}

impl Path {
    /// Parses a path.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |reason| {
            ParseError::new(
                ErrorKind::BadPath {
                    path: text.to_owned(),
                    reason,
                },
                0,
            )
        };
        let mut parts = text.trim().split(['-', '.']);
        let (seg, occurrence) = split_index(parts.next().unwrap_or_default()).map_err(bad)?;
        let segment: [u8; 3] = seg
            .as_bytes()
            .try_into()
            .ok()
            .filter(|s: &[u8; 3]| {
                s.iter()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            })
            .ok_or_else(|| bad("the segment id must be three upper-case letters or digits"))?;
        let (field, repetition) = split_index(
            parts
                .next()
                .ok_or_else(|| bad("a field number is required, e.g. PID-5"))?,
        )
        .map_err(bad)?;
        let field = number(field).map_err(bad)?;
        let component = parts.next().map(number).transpose().map_err(bad)?;
        let subcomponent = parts.next().map(number).transpose().map_err(bad)?;
        if parts.next().is_some() {
            return Err(bad(
                "too many parts: SEG-field-component-subcomponent is the deepest path",
            ));
        }
        let repetition_given = repetition.is_some();
        Ok(Self {
            segment,
            occurrence: occurrence.unwrap_or(1),
            field,
            repetition: if repetition_given {
                repetition
            } else {
                component.map(|_| 1)
            },
            component,
            subcomponent,
        })
    }

    /// The segment id.
    pub fn segment(&self) -> &str {
        std::str::from_utf8(&self.segment).unwrap_or("???")
    }

    /// Resolves the rest of the path inside a segment.
    pub fn resolve_in<'a>(&self, seg: &Segment<'a>) -> Option<Element<'a>> {
        let mut e = seg.field(self.field)?;
        if let Some(r) = self.repetition {
            e = e.child(r)?;
        }
        if let Some(c) = self.component {
            e = e.child(c)?;
        }
        if let Some(s) = self.subcomponent {
            e = e.child(s)?;
        }
        Some(e)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.segment())?;
        if self.occurrence != 1 {
            write!(f, "[{}]", self.occurrence)?;
        }
        write!(f, "-{}", self.field)?;
        if let Some(r) = self
            .repetition
            .filter(|&r| r != 1 || self.component.is_none())
        {
            write!(f, "[{r}]")?;
        }
        if let Some(c) = self.component {
            write!(f, "-{c}")?;
        }
        if let Some(s) = self.subcomponent {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Path {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Splits `NAME[3]` into `NAME` and `Some(3)`.
fn split_index(part: &str) -> Result<(&str, Option<usize>), &'static str> {
    match part.split_once('[') {
        None => Ok((part, None)),
        Some((name, rest)) => {
            let n = rest
                .strip_suffix(']')
                .ok_or("an index must be closed with ]")?;
            Ok((name, Some(number(n)?)))
        }
    }
}

fn number(s: &str) -> Result<usize, &'static str> {
    match s.parse::<usize>() {
        Ok(0) => Err("numbers in a path start at 1"),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let p = Path::parse("PID-3[2]-1").unwrap();
        assert_eq!(
            (
                p.segment(),
                p.occurrence,
                p.field,
                p.repetition,
                p.component
            ),
            ("PID", 1, 3, Some(2), Some(1))
        );
        let p = Path::parse("OBX[3]-5").unwrap();
        assert_eq!((p.occurrence, p.field, p.repetition), (3, 5, None));
        let p = Path::parse("PID.5.1.2").unwrap();
        assert_eq!(
            (p.repetition, p.component, p.subcomponent),
            (Some(1), Some(1), Some(2))
        );
        assert_eq!(Path::parse("PID-3[2]-1").unwrap().to_string(), "PID-3[2]-1");
        assert_eq!(Path::parse("OBX[3]-5-1").unwrap().to_string(), "OBX[3]-5-1");
    }

    #[test]
    fn rejects_bad_paths() {
        for bad in [
            "",
            "PID",
            "pid-5",
            "PID-0",
            "PID-x",
            "PID-3[2",
            "PID-1-2-3-4",
            "PIDX-1",
            "PID[0]-1",
        ] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
    }
}
