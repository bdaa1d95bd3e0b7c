//! `plexus test`: runs a channel's pipeline offline on fixture messages and compares what
//! each destination would be sent with expected files.
//!
//! Layout: every file of the fixtures folder (`a01.hl7`, `order.json`, ...) is an input;
//! the folder `<input stem>.expected/` next to it holds one file per destination that should
//! receive something, named after the destination (any extension: `lab.hl7`). A destination
//! without a file must not receive the message (filtered). Line endings are compared as
//! lines, so fixtures can be kept with `\n` in git while HL7 uses `\r`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::pipeline::{Pipeline, Routed};

/// The result of one fixture.
#[derive(Debug)]
pub struct CaseResult {
    /// The input file.
    pub input: PathBuf,
    /// Differences found, as readable text; empty when the case passed.
    pub differences: Vec<String>,
}

impl CaseResult {
    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Runs every fixture in `dir`; with `update`, writes the actual outputs as the expected
/// files instead of comparing.
pub async fn run_fixtures(
    pipeline: &Pipeline,
    dir: &Path,
    update: bool,
) -> std::io::Result<Vec<CaseResult>> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    inputs.sort();
    let mut results = Vec::new();
    for input in inputs {
        let raw = std::fs::read(&input)?;
        let raw = normalise_input(&raw);
        let stem = input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let expected_dir = dir.join(format!("{stem}.expected"));
        let p = pipeline
            .process(&raw, "TEST", serde_json::Map::new(), None)
            .await;
        let mut differences = Vec::new();
        if let Some(e) = &p.error {
            differences.push(format!("processing failed: {e}"));
        }
        let expected = expected_files(&expected_dir)?;
        if update {
            for old in expected.values() {
                std::fs::remove_file(old)?;
            }
            if expected_dir.is_dir() {
                // gone if it is empty now: a filtered message has no expected folder
                let _ = std::fs::remove_dir(&expected_dir);
            }
        }
        for (_, name, routed) in &p.routed {
            let want = expected.get(name.as_str());
            match (routed, want) {
                (Routed::Encoded(bytes), _) if update => {
                    let ext = match bytes.first() {
                        _ if bytes.starts_with(b"MSH") => ".hl7",
                        Some(b'{' | b'[') => ".json",
                        Some(b'<') => ".xml",
                        _ => ".txt",
                    };
                    let text = String::from_utf8_lossy(bytes).replace('\r', "\n");
                    std::fs::create_dir_all(&expected_dir)?;
                    std::fs::write(expected_dir.join(format!("{name}{ext}")), text)?;
                }
                (Routed::Encoded(bytes), Some(file)) => {
                    let want = std::fs::read(file)?;
                    if let Some(d) = diff(&want, bytes) {
                        differences.push(format!(
                            "destination {name}: output differs from {}\n{d}",
                            file.display()
                        ));
                    }
                }
                (Routed::Encoded(_), None) => differences.push(format!(
                    "destination {name}: received a message but {} has no {name}.* file \
                     (run with --update to accept it)",
                    expected_dir.display()
                )),
                (Routed::Filtered | Routed::Skipped, Some(file)) => differences.push(format!(
                    "destination {name}: filtered, but {} expects output",
                    file.display()
                )),
                (Routed::Error(e), _) => differences.push(format!("destination {name}: {e}")),
                (Routed::Filtered | Routed::Skipped, None) => {}
            }
        }
        for name in expected.keys() {
            if !p.routed.iter().any(|(_, n, _)| n == name) {
                differences.push(format!(
                    "{}: the channel has no destination {name}",
                    expected_dir.display()
                ));
            }
        }
        results.push(CaseResult { input, differences });
    }
    Ok(results)
}

/// Fixture files written with `\n` become HL7's `\r` segment terminators.
fn normalise_input(raw: &[u8]) -> Vec<u8> {
    if raw.starts_with(b"MSH") {
        let text = String::from_utf8_lossy(raw);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut out = lines.join("\r");
        out.push('\r');
        out.into_bytes()
    } else {
        raw.to_vec()
    }
}

fn expected_files(dir: &Path) -> std::io::Result<std::collections::BTreeMap<String, PathBuf>> {
    let mut out = std::collections::BTreeMap::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if let Some(stem) = p.file_stem() {
            out.insert(stem.to_string_lossy().into_owned(), p);
        }
    }
    Ok(out)
}

/// A line diff of expected and actual output (`\r`, `\n` and `\r\n` all end lines), or
/// `None` when they are the same.
pub fn diff(expected: &[u8], actual: &[u8]) -> Option<String> {
    let split = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (want, got) = (split(expected), split(actual));
    if want == got {
        return None;
    }
    let mut out = String::new();
    for i in 0..want.len().max(got.len()) {
        match (want.get(i), got.get(i)) {
            (Some(w), Some(g)) if w == g => {
                let _ = writeln!(out, "  {w}");
            }
            (w, g) => {
                if let Some(w) = w {
                    let _ = writeln!(out, "- {w}");
                }
                if let Some(g) = g {
                    let _ = writeln!(out, "+ {g}");
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_ignores_line_endings() {
        assert!(diff(b"MSH|a\nPID|1\n", b"MSH|a\rPID|1\r").is_none());
        let d = diff(b"MSH|a\nPID|1\n", b"MSH|a\rPID|2\r").unwrap();
        assert!(d.contains("- PID|1") && d.contains("+ PID|2"), "{d}");
    }
}
