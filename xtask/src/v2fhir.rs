//! Tables of the `convert` crate from the HL7 v2-to-FHIR Implementation Guide's mapping
//! spreadsheets (`../shared/corpus/v2-to-fhir/mappings/`, CSV exports):
//!
//! - `codesystems/*.csv` (vocabulary concept maps: v2 table code → FHIR system, code and
//!   display) become `crates/convert/src/generated/vocab.rs`;
//! - `segments/*.csv` and `datatypes/*.csv` (one row per v2 field or component: FHIR attribute
//!   path, FHIR type, data type map, vocabulary map, condition, assignment) become
//!   `crates/convert/src/generated/segments.rs`;
//! - `messages/*.csv` (message structure → resources, with the segment map used for each
//!   segment) become `crates/convert/src/generated/messages.rs`.
//!
//! The spreadsheets have no pinned fallback: when the directory is absent, `codegen` (and
//! `codegen --check`) skip these tables with a note and the committed output stays as it is.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// The mapping spreadsheets, relative to the workspace root.
pub const MAPPINGS_DIR: &str = "../shared/corpus/v2-to-fhir/mappings";

/// Makes the generated files of the `convert` crate, or `None` when the spreadsheets are absent.
pub fn generate(root: &Path) -> Result<Option<Vec<(String, String)>>> {
    let dir = root.join(MAPPINGS_DIR);
    if !dir.join("codesystems").is_dir() {
        return Ok(None);
    }
    Ok(Some(vec![
        (
            "crates/convert/src/generated/vocab.rs".into(),
            gen_vocab(&dir.join("codesystems"))?,
        ),
        (
            "crates/convert/src/generated/segments.rs".into(),
            gen_segments(&dir.join("segments"), &dir.join("datatypes"))?,
        ),
        (
            "crates/convert/src/generated/messages.rs".into(),
            gen_messages(&dir.join("messages"))?,
        ),
    ]))
}

/// The CSV files of a directory, sorted by name, with the map name taken from the file name
/// (`HL7 Concept Map_ MaritalStatus - Sheet1.csv` → `MaritalStatus`).
fn csv_files(dir: &Path, prefix: &str) -> Result<Vec<(String, Vec<Vec<String>>)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let Some(rest) = file.strip_prefix(prefix) else {
            continue;
        };
        let Some(name) = rest.rsplit_once(" - ").map(|(n, _)| n.trim()) else {
            continue;
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        out.push((name.to_owned(), parse_csv(&text)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// RFC 4180 CSV: quoted fields may hold commas, doubled quotes and line breaks.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Cell `i` of a row, trimmed, with inner line breaks folded to spaces.
fn cell(row: &[String], i: usize) -> String {
    row.get(i)
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A quoted assignment (`"home"`) without its quotes.
fn unquote(s: &str) -> String {
    s.trim()
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s.trim())
        .to_owned()
}

fn gen_vocab(dir: &Path) -> Result<String> {
    let mut out = String::from(crate::HEADER);
    out.push_str(
        "//! Vocabulary concept maps of the HL7 v2-to-FHIR IG (`codesystems/*.csv`), sorted by name.\n\n\
         use crate::tables::{Concept, ConceptMap};\n\n\
         /// Every concept map, sorted by name for binary search.\n\
         pub static CONCEPT_MAPS: &[ConceptMap] = &[\n",
    );
    for (name, rows) in csv_files(dir, "HL7 Concept Map_ ")? {
        let Some(header) = rows.get(1) else { continue };
        // the first block of columns: v2 code, text, system … FHIR code, (display), display, system
        let codes: Vec<usize> = header
            .iter()
            .enumerate()
            .filter(|(_, h)| h.trim() == "Code")
            .map(|(i, _)| i)
            .collect();
        let (Some(&v2_code), Some(&fhir_code)) = (codes.first(), codes.get(1)) else {
            continue;
        };
        let find = |from: usize, what: &str| {
            header
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, h)| h.trim() == what)
                .map(|(i, _)| i)
        };
        let v2_system = find(v2_code, "Code System");
        let display = find(fhir_code, "Display");
        let system = find(fhir_code, "Code System");
        writeln!(
            out,
            "    ConceptMap {{\n        name: {name:?},\n        concepts: &["
        )?;
        for row in rows.iter().skip(2) {
            let code = cell(row, v2_code);
            let target = cell(row, fhir_code);
            if code.is_empty() || target.is_empty() {
                continue;
            }
            let mut disp = display.map(|i| cell(row, i)).unwrap_or_default();
            if disp.is_empty() && display != Some(fhir_code + 1) {
                disp = cell(row, fhir_code + 1);
            }
            writeln!(
                out,
                "            Concept {{ v2_code: {:?}, v2_system: {:?}, code: {:?}, display: {:?}, system: {:?} }},",
                code,
                v2_system.map(|i| cell(row, i)).unwrap_or_default(),
                target,
                disp,
                system.map(|i| cell(row, i)).unwrap_or_default(),
            )?;
        }
        out.push_str("        ],\n    },\n");
    }
    out.push_str("];\n");
    Ok(out)
}

fn field_rows(rows: &[Vec<String>], out: &mut String) -> Result<()> {
    for row in rows.iter().skip(2) {
        let field = cell(row, 1);
        if field.is_empty() {
            continue;
        }
        writeln!(
            out,
            "            FieldMap {{ field: {:?}, v2_type: {:?}, condition: {:?}, fhir_path: {:?}, fhir_type: {:?}, datatype_map: {:?}, vocabulary: {:?}, assignment: {:?} }},",
            field,
            cell(row, 3),
            cell(row, 6),
            cell(row, 9),
            cell(row, 11),
            cell(row, 14),
            cell(row, 15),
            unquote(&cell(row, 16)),
        )?;
    }
    Ok(())
}

fn gen_segments(segments: &Path, datatypes: &Path) -> Result<String> {
    let mut out = String::from(crate::HEADER);
    out.push_str(
        "//! Segment and data type maps of the HL7 v2-to-FHIR IG (`segments/*.csv`,\n\
         //! `datatypes/*.csv`): one row per v2 field or component, sorted by map name.\n\n\
         use crate::tables::{FieldMap, SegmentMap};\n\n\
         /// Segment maps such as `PID[Patient]`, sorted by name.\n\
         pub static SEGMENT_MAPS: &[SegmentMap] = &[\n",
    );
    for (name, rows) in csv_files(segments, "HL7 Segment - FHIR R4_ ")? {
        writeln!(
            out,
            "    SegmentMap {{\n        name: {name:?},\n        fields: &["
        )?;
        field_rows(&rows, &mut out)?;
        out.push_str("        ],\n    },\n");
    }
    out.push_str(
        "];\n\n/// Data type maps such as `XPN[HumanName]`, sorted by name.\n\
         pub static DATATYPE_MAPS: &[SegmentMap] = &[\n",
    );
    for (name, rows) in csv_files(datatypes, "HL7 Data Type - FHIR R4_ ")? {
        writeln!(
            out,
            "    SegmentMap {{\n        name: {name:?},\n        fields: &["
        )?;
        field_rows(&rows, &mut out)?;
        out.push_str("        ],\n    },\n");
    }
    out.push_str("];\n");
    Ok(out)
}

fn gen_messages(dir: &Path) -> Result<String> {
    let mut out = String::from(crate::HEADER);
    out.push_str(
        "//! Message maps of the HL7 v2-to-FHIR IG (`messages/*.csv`): which segment of a message\n\
         //! structure makes which resource, through which segment map. Sorted by structure.\n\n\
         use crate::tables::{MessageMap, MessageRow};\n\n\
         /// Message maps such as `ADT_A01`, sorted by structure.\n\
         pub static MESSAGE_MAPS: &[MessageMap] = &[\n",
    );
    for (name, rows) in csv_files(dir, "HL7 Message - FHIR R4_ ")? {
        writeln!(
            out,
            "    MessageMap {{\n        structure: {name:?},\n        rows: &["
        )?;
        for row in rows.iter().skip(2) {
            let target = cell(row, 9);
            let map = cell(row, 10);
            let identifier = cell(row, 1);
            if identifier.is_empty() || identifier.starts_with('/') {
                continue;
            }
            // the segment id is the identifier's last dotted part (`ADT_A01.NEXT_OF_KIN.NK1`)
            let segment = identifier.rsplit('.').next().unwrap_or_default().to_owned();
            if segment.len() != 3 {
                continue; // a group begins
            }
            writeln!(
                out,
                "            MessageRow {{ identifier: {:?}, segment: {:?}, condition: {:?}, target: {:?}, segment_map: {:?} }},",
                identifier,
                segment,
                cell(row, 6),
                target,
                map,
            )?;
        }
        out.push_str("        ],\n    },\n");
    }
    out.push_str("];\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_keeps_quoted_commas_quotes_and_line_breaks() {
        let rows = parse_csv("\u{feff}a,\"b,c\",\"say \"\"hi\"\"\"\r\n\"x\ny\",,z\n");
        assert_eq!(rows[0], ["a", "b,c", "say \"hi\""]);
        assert_eq!(rows[1], ["x\ny", "", "z"]);
        assert_eq!(rows.len(), 2);
    }
}
