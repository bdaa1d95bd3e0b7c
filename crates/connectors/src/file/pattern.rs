//! File name patterns: shell globs (`*`, `?`, `[a-z]`, `[!x]`) from the `glob` crate, plus
//! `{a,b}` alternatives, which that crate lacks, expanded here before compiling.

use glob::{MatchOptions, Pattern};

use crate::error::{Error, Result};

/// `*` does not match a leading `.`: hidden and temporary files (the writer's `.x.tmp`) are
/// skipped unless the pattern names them.
const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

/// Most alternatives one pattern may expand to.
const MAX_ALTERNATIVES: usize = 256;

/// A compiled file name pattern such as `*.hl7` or `ADT_*.{hl7,txt}`.
#[derive(Debug, Clone)]
pub struct NamePattern {
    source: String,
    alternatives: Vec<Pattern>,
}

impl NamePattern {
    /// Compiles a pattern; it matches file names, so it may not contain `/`.
    pub fn new(source: &str) -> Result<Self> {
        let bad = |reason: String| Error::Config(format!("file name pattern {source:?}: {reason}"));
        if source.is_empty() {
            return Err(bad("empty".into()));
        }
        if source.contains('/') {
            return Err(bad(
                "matches file names only, so it cannot contain `/`".into()
            ));
        }
        let mut expanded = Vec::new();
        expand(source, &mut expanded).map_err(bad)?;
        let alternatives = expanded
            .iter()
            .map(|p| Pattern::new(p).map_err(|e| bad(e.to_string())))
            .collect::<Result<_>>()?;
        Ok(Self {
            source: source.to_owned(),
            alternatives,
        })
    }

    /// True if `name` (a file name, not a path) matches.
    pub fn matches(&self, name: &str) -> bool {
        self.alternatives
            .iter()
            .any(|p| p.matches_with(name, OPTIONS))
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Expands the first `{a,b,...}` group (nesting allowed) and recurses on the results.
fn expand(pattern: &str, out: &mut Vec<String>) -> Result<(), String> {
    let Some(open) = pattern.find('{') else {
        if pattern.contains('}') {
            return Err("`}` without `{`".into());
        }
        if out.len() >= MAX_ALTERNATIVES {
            return Err(format!("more than {MAX_ALTERNATIVES} alternatives"));
        }
        out.push(pattern.to_owned());
        return Ok(());
    };
    let mut depth = 0usize;
    let mut close = None;
    let mut commas = Vec::new();
    for (i, c) in pattern[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(open + i),
            _ => {}
        }
    }
    let close = close.ok_or("`{` without `}`")?;
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let mut start = open + 1;
    for end in commas.into_iter().chain(std::iter::once(close)) {
        expand(&format!("{head}{}{tail}", &pattern[start..end]), out)?;
        start = end + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_alternatives() {
        let p = NamePattern::new("ADT_*.{hl7,txt}").unwrap();
        assert!(p.matches("ADT_1.hl7"));
        assert!(p.matches("ADT_2.txt"));
        assert!(!p.matches("ADT_2.csv"));
        assert!(!p.matches("ORU_1.hl7"));
        let p = NamePattern::new("*").unwrap();
        assert!(p.matches("a.hl7"));
        assert!(
            !p.matches(".a.hl7.1-1.tmp"),
            "hidden files need an explicit dot"
        );
        let p = NamePattern::new("{a,b{1,2}}?[0-9]").unwrap();
        for name in ["ax1", "b1x2", "b2y3"] {
            assert!(p.matches(name), "{name}");
        }
        assert!(!p.matches("b3x1"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "a/*", "{a,b", "a}", "}{", "["] {
            assert!(NamePattern::new(bad).is_err(), "{bad}");
        }
        let huge = "{a,b}".repeat(9);
        assert!(NamePattern::new(&huge).is_err(), "512 alternatives");
    }
}
