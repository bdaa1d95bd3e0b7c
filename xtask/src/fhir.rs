//! Generation of the `fhir` crate's tables from the FHIR R4 definitions.
//!
//! - `search-parameters.json` and `compartmentdefinition-patient.json` become
//!   `crates/fhir/src/generated/search_params.rs`: one entry per (resource type, code), with the
//!   FHIRPath expression cut down to the parts for that type;
//! - `profiles-types.json` and `profiles-resources.json` (the base StructureDefinitions, without
//!   constraining profiles) become `crates/fhir/src/generated/types.rs`;
//! - `valuesets.json` gives, for every value set bound with strength `required` by an element,
//!   its expansion when it can be made from the definitions alone
//!   (`crates/fhir/src/generated/valuesets.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{HEADER, read_json};

/// Makes the generated files of the `fhir` crate from the definitions in `spec`.
pub fn generate(spec: &Path) -> Result<Vec<(String, String)>> {
    let params = read_json(&spec.join("search-parameters.json"))?;
    let compartment = read_json(&spec.join("compartmentdefinition-patient.json"))?;
    let resources = read_json(&spec.join("profiles-resources.json"))?;
    let types = read_json(&spec.join("profiles-types.json"))?;
    let structures = base_structures(&[&types, &resources])?;
    let resource_types: Vec<&str> = structures
        .iter()
        .filter(|s| s["kind"] == "resource" && s["abstract"] != true)
        .filter_map(|s| s["name"].as_str())
        .collect();
    let valuesets = read_json(&spec.join("valuesets.json"))?;
    let v3 = read_json(&spec.join("v3-codesystems.json"))?;
    let (types_rs, required) = gen_types(&structures)?;
    Ok(vec![
        (
            "crates/fhir/src/generated/search_params.rs".into(),
            gen_search_params(&params, &compartment, &resource_types)?,
        ),
        ("crates/fhir/src/generated/types.rs".into(), types_rs),
        (
            "crates/fhir/src/generated/valuesets.rs".into(),
            gen_valuesets(&[&valuesets, &v3], &required)?,
        ),
        (
            "crates/fhir/src/generated/profiles.rs".into(),
            gen_profiles(
                &read_json(&crate::spec_file(
                    spec,
                    "uscore-v5.0.1-structuredefinitions.json",
                )?)?,
                &base_max(&structures),
            )?,
        ),
    ])
}

/// The base type and resource definitions: specializations plus the roots (`Element`,
/// `Resource`), never constraining profiles or logical models.
fn base_structures<'a>(bundles: &[&'a Value]) -> Result<Vec<&'a Value>> {
    let mut out = Vec::new();
    for bundle in bundles {
        for e in bundle["entry"]
            .as_array()
            .context("bundle without entries")?
        {
            let r = &e["resource"];
            if r["resourceType"] != "StructureDefinition" || r["kind"] == "logical" {
                continue;
            }
            if r["derivation"] == "constraint" {
                continue;
            }
            out.push(r);
        }
    }
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(out)
}

/// Splits a FHIRPath expression at its top-level unions (` | ` outside parentheses).
fn split_union(expr: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let bytes = expr.as_bytes();
    let mut i = 0;
    let mut quoted = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            b'|' if !quoted && depth == 0 => {
                parts.push(expr[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(expr[start..].trim());
    parts
}

/// Whether a union part of an expression is about `ty`: it starts with `Ty.`, `(Ty.`, `Ty `
/// or is `Ty` itself.
fn part_is_for(part: &str, ty: &str) -> bool {
    let p = part.trim_start_matches('(');
    p.strip_prefix(ty)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', ' ', ')']))
}

/// The expression of a parameter for one of its base types.
fn expression_for(expr: &str, bases: usize, ty: &str) -> String {
    if bases <= 1 {
        return expr.to_owned();
    }
    let parts: Vec<&str> = split_union(expr)
        .into_iter()
        .filter(|p| part_is_for(p, ty))
        .collect();
    if parts.is_empty() {
        expr.to_owned()
    } else {
        parts.join(" | ")
    }
}

fn param_kind(t: &str) -> Result<&'static str> {
    Ok(match t {
        "number" => "Number",
        "date" => "Date",
        "string" => "String",
        "token" => "Token",
        "reference" => "Reference",
        "composite" => "Composite",
        "quantity" => "Quantity",
        "uri" => "Uri",
        "special" => "Special",
        other => bail!("unknown search parameter type {other}"),
    })
}

fn str_list(items: &[&str]) -> String {
    let inner: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("&[{}]", inner.join(", "))
}

/// One parameter as it applies to one resource type.
struct ParamEntry<'a> {
    url: &'a str,
    kind: &'static str,
    expression: String,
    targets: Vec<&'a str>,
    components: Vec<(&'a str, &'a str)>,
}

/// Resource type -> code -> entry.
type ParamsByType<'a> = BTreeMap<&'a str, BTreeMap<&'a str, ParamEntry<'a>>>;

/// Reads the parameters of `search-parameters.json`, one entry per base type; also returns
/// the number of distinct parameters.
fn collect_params(bundle: &Value) -> Result<(ParamsByType<'_>, usize)> {
    let mut by_type = ParamsByType::new();
    let mut urls = BTreeSet::new();
    for e in bundle["entry"]
        .as_array()
        .context("bundle without entries")?
    {
        let r = &e["resource"];
        let url = r["url"].as_str().context("parameter without url")?;
        let code = r["code"].as_str().context("parameter without code")?;
        let kind = param_kind(r["type"].as_str().context("parameter without type")?)?;
        let bases: Vec<&str> = r["base"]
            .as_array()
            .context("parameter without base")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut targets: Vec<&str> = r["target"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        targets.sort_unstable();
        targets.dedup();
        let components: Vec<(&str, &str)> = r["component"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["definition"].as_str().unwrap_or(""),
                    c["expression"].as_str().unwrap_or(""),
                )
            })
            .collect();
        urls.insert(url);
        let expr = r["expression"].as_str().unwrap_or("");
        for base in &bases {
            let entry = ParamEntry {
                url,
                kind,
                expression: expression_for(expr, bases.len(), base),
                targets: targets.clone(),
                components: components.clone(),
            };
            if by_type
                .entry(base)
                .or_default()
                .insert(code, entry)
                .is_some()
            {
                bail!("two search parameters {base}.{code}");
            }
        }
    }
    Ok((by_type, urls.len()))
}

fn gen_search_params(
    bundle: &Value,
    compartment: &Value,
    resource_types: &[&str],
) -> Result<String> {
    let (by_type, source_count) = collect_params(bundle)?;
    let mut out = String::from(HEADER);
    out.push_str(
        "//! FHIR R4 search parameters (`search-parameters.json`), one entry per resource type and code,\n\
         //! the concrete resource types and the Patient compartment (`compartmentdefinition-patient.json`).\n\n\
         use crate::defs::{ComponentDef, ParamType, SearchParamDef};\n\n",
    );
    writeln!(
        out,
        "/// Number of SearchParameter resources the tables were made from.\npub const SOURCE_PARAMS: usize = {source_count};\n",
    )?;

    // Long target lists (the 145 "any resource" targets) are shared statics.
    let mut shared_targets: BTreeMap<Vec<&str>, String> = BTreeMap::new();
    for params in by_type.values() {
        for p in params.values() {
            if p.targets.len() > 8 && !shared_targets.contains_key(&p.targets) {
                let name = format!("TARGETS_{}", shared_targets.len());
                shared_targets.insert(p.targets.clone(), name);
            }
        }
    }
    let mut statics: Vec<(&String, &Vec<&str>)> =
        shared_targets.iter().map(|(k, v)| (v, k)).collect();
    statics.sort();
    for (name, list) in statics {
        writeln!(
            out,
            "/// A reference target list shared by several parameters.\nstatic {name}: &[&str] = {};\n",
            str_list(list)
        )?;
    }

    out.push_str("/// All parameters, sorted by resource type (`Resource`, `DomainResource` included) then code.\npub static SEARCH_PARAMS: &[SearchParamDef] = &[\n");
    let mut ranges = Vec::new();
    let mut index = 0usize;
    let mut by_url: BTreeMap<&str, usize> = BTreeMap::new();
    for (ty, params) in &by_type {
        let start = index;
        for (code, p) in params {
            let targets = shared_targets
                .get(&p.targets)
                .cloned()
                .unwrap_or_else(|| str_list(&p.targets));
            let components: Vec<String> = p
                .components
                .iter()
                .map(|(d, e)| format!("ComponentDef {{ definition: {d:?}, expression: {e:?} }}"))
                .collect();
            writeln!(
                out,
                "    SearchParamDef {{ code: {code:?}, url: {:?}, kind: ParamType::{}, expression: {:?}, targets: {targets}, components: &[{}] }},",
                p.url,
                p.kind,
                p.expression,
                components.join(", ")
            )?;
            by_url.entry(p.url).or_insert(index);
            index += 1;
        }
        ranges.push((ty, start, index));
    }
    out.push_str("];\n\n");

    out.push_str("/// For each resource type with parameters of its own: the range of its entries in [`SEARCH_PARAMS`]; sorted.\npub static TYPE_RANGES: &[(&str, u16, u16)] = &[\n");
    for (ty, start, end) in ranges {
        writeln!(out, "    ({ty:?}, {start}, {end}),")?;
    }
    out.push_str("];\n\n");

    out.push_str("/// Parameter url to the index of its first entry in [`SEARCH_PARAMS`]; sorted by url.\npub static BY_URL: &[(&str, u16)] = &[\n");
    for (url, i) in by_url {
        writeln!(out, "    ({url:?}, {i}),")?;
    }
    out.push_str("];\n\n");

    out.push_str("/// The concrete (not abstract) resource types, sorted.\npub static RESOURCE_TYPES: &[&str] = &[\n");
    let mut sorted: Vec<&str> = resource_types.to_vec();
    sorted.sort_unstable();
    for t in sorted {
        writeln!(out, "    {t:?},")?;
    }
    out.push_str("];\n\n");
    gen_compartment(compartment, &mut out)?;
    Ok(out)
}

fn gen_compartment(compartment: &Value, out: &mut String) -> Result<()> {
    let mut members = BTreeMap::new();
    for r in compartment["resource"]
        .as_array()
        .context("compartment without resources")?
    {
        let code = r["code"].as_str().context("compartment resource code")?;
        let params: Vec<&str> = r["param"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !params.is_empty() {
            members.insert(code, params);
        }
    }
    out.push_str("/// The Patient compartment: resource type to the parameters linking it to a Patient; sorted.\npub static PATIENT_COMPARTMENT: &[(&str, &[&str])] = &[\n");
    for (code, params) in members {
        writeln!(out, "    ({code:?}, {}),", str_list(&params))?;
    }
    out.push_str("];\n");
    Ok(())
}

const FHIR_TYPE_EXT: &str = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";
const REGEX_EXT: &str = "http://hl7.org/fhir/StructureDefinition/regex";
const SD_PREFIX: &str = "http://hl7.org/fhir/StructureDefinition/";

/// The FHIR type code of an element type: the `structuredefinition-fhir-type` extension of the
/// FHIRPath system types (`Resource.id` is `id`), else the code.
fn type_code(t: &Value) -> Option<&str> {
    let ext = t["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"] == FHIR_TYPE_EXT)
        .and_then(|e| e["valueUrl"].as_str().or(e["valueUri"].as_str()));
    ext.or(t["code"].as_str())
}

fn opt_str(v: Option<&str>) -> String {
    v.map_or_else(|| "None".into(), |s| format!("Some({s:?})"))
}

/// Generates `types.rs`; also returns the value sets of required bindings.
fn gen_types(structures: &[&Value]) -> Result<(String, BTreeSet<String>)> {
    let mut required = BTreeSet::new();
    let mut regexes = BTreeMap::new();
    let mut out = String::from(HEADER);
    out.push_str(
        "//! FHIR R4 types and resources with their elements (the snapshots of the base\n\
         //! StructureDefinitions in `profiles-types.json` and `profiles-resources.json`).\n\n\
         use crate::defs::{ElementDef, TypeDef, TypeKind};\n\n\
         /// Every base type and resource, sorted by name; each type's elements sorted by path.\n\
         pub static TYPES: &[TypeDef] = &[\n",
    );
    for sd in structures {
        let name = sd["name"]
            .as_str()
            .context("StructureDefinition without name")?;
        let kind = match sd["kind"].as_str() {
            Some("primitive-type") => "Primitive",
            Some("complex-type") => "Complex",
            Some("resource") => "Resource",
            other => bail!("{name}: unknown kind {other:?}"),
        };
        let is_abstract = sd["abstract"] == true;
        let base = sd["baseDefinition"]
            .as_str()
            .and_then(|b| b.strip_prefix(SD_PREFIX));
        writeln!(
            out,
            "    TypeDef {{ name: {name:?}, kind: TypeKind::{kind}, is_abstract: {is_abstract}, base: {}, elements: &[",
            opt_str(base)
        )?;
        let mut elements: Vec<&Value> = sd["snapshot"]["element"]
            .as_array()
            .with_context(|| format!("{name} without snapshot"))?
            .iter()
            .collect();
        elements.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        for e in elements {
            gen_element(e, name, kind, &mut out, &mut regexes, &mut required)?;
        }
        out.push_str("    ] },\n");
    }
    out.push_str("];\n\n/// The regular expression of each primitive type's value, sorted by type.\npub static PRIMITIVE_REGEX: &[(&str, &str)] = &[\n");
    for (name, rx) in regexes {
        writeln!(out, "    ({name:?}, {rx:?}),")?;
    }
    out.push_str("];\n");
    Ok((out, required))
}

/// Writes one `ElementDef` line; records the primitive regexes and required value sets.
fn gen_element<'a>(
    e: &'a Value,
    name: &'a str,
    kind: &str,
    out: &mut String,
    regexes: &mut BTreeMap<&'a str, &'a str>,
    required: &mut BTreeSet<String>,
) -> Result<()> {
    let path = e["path"].as_str().context("element without path")?;
    if e["id"].as_str().is_some_and(|id| id.contains(':')) {
        return Ok(()); // a slice (none in the base definitions)
    }
    let min = e["min"].as_u64().unwrap_or(0);
    let max = match e["max"].as_str() {
        Some("*") | None => "None".to_owned(),
        Some(m) => format!("Some({})", m.parse::<u32>().context("element max")?),
    };
    let mut types = Vec::new();
    let mut targets = Vec::new();
    for t in e["type"].as_array().into_iter().flatten() {
        let mut code = type_code(t).context("type without code")?;
        // The R4 snapshots say `string` for the logical id (System.String); the
        // specification's text, the JSON schema and every server treat it as `id`.
        if e["base"]["path"] == "Resource.id" {
            code = "id";
        }
        types.push(code);
        for p in t["targetProfile"].as_array().into_iter().flatten() {
            let p = p.as_str().context("targetProfile")?;
            targets.push(p.strip_prefix(SD_PREFIX).unwrap_or(p));
        }
        if kind == "Primitive"
            && path == format!("{name}.value")
            && let Some(rx) = t["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| x["url"] == REGEX_EXT)
                .and_then(|x| x["valueString"].as_str())
        {
            regexes.insert(name, rx);
        }
    }
    targets.sort_unstable();
    targets.dedup();
    let content_ref = e["contentReference"]
        .as_str()
        .map(|c| c.trim_start_matches('#'));
    let binding = (e["binding"]["strength"] == "required")
        .then(|| e["binding"]["valueSet"].as_str())
        .flatten()
        .map(|v| v.split('|').next().unwrap_or(v));
    if let Some(vs) = binding {
        required.insert(vs.to_owned());
    }
    writeln!(
        out,
        "        ElementDef {{ path: {path:?}, min: {min}, max: {max}, types: {}, choice: {}, content_reference: {}, target_profiles: {}, required_binding: {}, summary: {} }},",
        str_list(&types),
        path.ends_with("[x]"),
        opt_str(content_ref),
        str_list(&targets),
        opt_str(binding),
        e["isSummary"].as_bool().unwrap_or(false),
    )?;
    Ok(())
}

/// Value sets and code systems by url.
struct Terminology<'a> {
    value_sets: BTreeMap<&'a str, &'a Value>,
    code_systems: BTreeMap<&'a str, &'a Value>,
}

/// Adds every code of a (nested) concept list.
fn all_codes<'a>(list: &'a Value, out: &mut BTreeSet<&'a str>) {
    for c in list.as_array().into_iter().flatten() {
        if let Some(code) = c["code"].as_str() {
            out.insert(code);
        }
        all_codes(&c["concept"], out);
    }
}

impl<'a> Terminology<'a> {
    /// The codes and systems of a value set, or why it cannot be expanded here.
    fn expand(
        &self,
        url: &str,
        depth: usize,
    ) -> std::result::Result<(BTreeSet<&'a str>, BTreeSet<&'a str>), String> {
        if depth > 8 {
            return Err("value set includes nest too deep".into());
        }
        let vs = self
            .value_sets
            .get(url)
            .ok_or_else(|| "value set not in the definitions".to_owned())?;
        let compose = &vs["compose"];
        if compose["exclude"].is_array() {
            return Err("uses exclude".into());
        }
        let mut codes = BTreeSet::new();
        let mut systems = BTreeSet::new();
        for inc in compose["include"].as_array().into_iter().flatten() {
            if inc["filter"].is_array() {
                return Err("uses a filter".into());
            }
            let mut part = None;
            if let Some(system) = inc["system"].as_str() {
                systems.insert(system);
                let mut these = BTreeSet::new();
                if inc["concept"].is_array() {
                    all_codes(&inc["concept"], &mut these);
                } else {
                    let cs = self
                        .code_systems
                        .get(system)
                        .ok_or_else(|| format!("code system {system} is external"))?;
                    if cs["content"] != "complete" {
                        return Err(format!("code system {system} is not complete here"));
                    }
                    all_codes(&cs["concept"], &mut these);
                }
                part = Some(these);
            }
            for inner in inc["valueSet"].as_array().into_iter().flatten() {
                let inner = inner.as_str().unwrap_or("");
                let inner = inner.split('|').next().unwrap_or(inner);
                let (c, s) = self.expand(inner, depth + 1)?;
                systems.extend(s);
                // Several parts of one include intersect; a value set alone is its codes.
                part = Some(match part {
                    Some(p) => p.intersection(&c).copied().collect(),
                    None => c,
                });
            }
            codes.extend(part.unwrap_or_default());
        }
        if codes.is_empty() {
            return Err("no codes".into());
        }
        Ok((codes, systems))
    }
}

fn gen_valuesets(bundles: &[&Value], required: &BTreeSet<String>) -> Result<String> {
    let mut term = Terminology {
        value_sets: BTreeMap::new(),
        code_systems: BTreeMap::new(),
    };
    for bundle in bundles {
        for e in bundle["entry"]
            .as_array()
            .context("bundle without entries")?
        {
            let r = &e["resource"];
            let Some(url) = r["url"].as_str() else {
                continue;
            };
            match r["resourceType"].as_str() {
                Some("ValueSet") => {
                    term.value_sets.entry(url).or_insert(r);
                }
                Some("CodeSystem") => {
                    term.code_systems.entry(url).or_insert(r);
                }
                _ => {}
            }
        }
    }
    let mut out = String::from(HEADER);
    out.push_str(
        "//! The value sets of the required bindings of FHIR R4 elements, expanded from\n\
         //! `valuesets.json` and `v3-codesystems.json`.\n\n\
         use crate::defs::RequiredValueSet;\n\n\
         /// Every value set bound with strength `required` by a base element, sorted by url.\n\
         pub static REQUIRED_VALUE_SETS: &[RequiredValueSet] = &[\n",
    );
    for url in required {
        match term.expand(url, 0) {
            Ok((codes, systems)) => {
                let codes: Vec<&str> = codes.into_iter().collect();
                let systems: Vec<&str> = systems.into_iter().collect();
                writeln!(
                    out,
                    "    RequiredValueSet {{ url: {url:?}, systems: {}, codes: Some({}), not_expandable: \"\" }},",
                    str_list(&systems),
                    str_list(&codes)
                )?;
            }
            Err(why) => writeln!(
                out,
                "    RequiredValueSet {{ url: {url:?}, systems: &[], codes: None, not_expandable: {why:?} }},"
            )?,
        }
    }
    out.push_str("];\n");
    Ok(out)
}

/// The maximum cardinality of every element of the base resources, by path.
fn base_max<'a>(structures: &[&'a Value]) -> BTreeMap<&'a str, &'a str> {
    structures
        .iter()
        .filter_map(|s| s["snapshot"]["element"].as_array())
        .flatten()
        .filter_map(|e| Some((e["path"].as_str()?, e["max"].as_str()?)))
        .collect()
}

/// The `fixed[x]` or `pattern[x]` value of an element, as JSON text.
fn fixed_or_pattern(e: &Value) -> Option<String> {
    e.as_object()?
        .iter()
        .find(|(k, _)| k.starts_with("fixed") || k.starts_with("pattern"))
        .map(|(_, v)| v.to_string())
}

/// Puts `value` into `pattern` at the property path `rel` (arrays as one-item arrays).
fn merge_pattern(pattern: &mut Value, rel: &[&str], value: Value) {
    let Some((first, rest)) = rel.split_first() else {
        return;
    };
    let Some(obj) = pattern.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        obj.insert((*first).to_owned(), value);
        return;
    }
    let slot = obj
        .entry((*first).to_owned())
        .or_insert_with(|| Value::Array(vec![Value::Object(serde_json::Map::new())]));
    if let Some(inner) = slot.as_array_mut().and_then(|a| a.first_mut()) {
        merge_pattern(inner, rest, value);
    }
}

/// Writes the slices of a profile that have a pattern to recognise them by.
fn write_slices(
    out: &mut String,
    slices: BTreeMap<&str, (String, u64, String, Value)>,
) -> Result<()> {
    out.push_str("    ], slices: &[\n");
    for (id, (path, min, max, pattern)) in slices {
        if pattern.as_object().is_some_and(serde_json::Map::is_empty) {
            continue; // nothing to recognise the slice's instances by
        }
        let max = if max == "*" {
            "None".to_owned()
        } else {
            format!("Some({})", max.parse::<u32>().context("max")?)
        };
        writeln!(
            out,
            "        SliceDef {{ id: {id:?}, path: {path:?}, min: {min}, max: {max}, pattern: {:?} }},",
            pattern.to_string()
        )?;
    }
    Ok(())
}

/// Generates `profiles.rs`: for each US Core resource profile, the constraints its snapshot
/// adds on non-sliced elements, and its slices with the pattern instances must match.
fn gen_profiles(profiles: &Value, base_max: &BTreeMap<&str, &str>) -> Result<String> {
    let mut out = String::from(HEADER);
    out.push_str(
        "//! US Core 5.0.1 resource profiles (`uscore-v5.0.1-structuredefinitions.json`): the\n\
         //! cardinalities, fixed and pattern values and required bindings of their snapshots.\n\n\
         use crate::defs::{ProfileConstraint, ProfileDef, SliceDef};\n\n\
         /// The resource profiles, sorted by url.\n\
         pub static PROFILES: &[ProfileDef] = &[\n",
    );
    let mut list: Vec<&Value> = profiles
        .as_array()
        .context("profiles are not a list")?
        .iter()
        .filter(|p| p["kind"] == "resource")
        .collect();
    list.sort_by(|a, b| a["url"].as_str().cmp(&b["url"].as_str()));
    for p in list {
        let url = p["url"].as_str().context("profile url")?;
        let ty = p["type"].as_str().context("profile type")?;
        writeln!(
            out,
            "    ProfileDef {{ url: {url:?}, type_name: {ty:?}, constraints: &["
        )?;
        let elements = p["snapshot"]["element"]
            .as_array()
            .context("profile without snapshot")?;
        let mut slices: BTreeMap<&str, (String, u64, String, Value)> = BTreeMap::new();
        for e in elements {
            let id = e["id"].as_str().context("element id")?;
            let path = e["path"].as_str().context("element path")?;
            if let Some((slice_id, _)) = id.split_once(':') {
                // The slice itself or one of its descendants.
                let name_end = id[slice_id.len() + 1..]
                    .find('.')
                    .map_or(id.len(), |i| slice_id.len() + 1 + i);
                let slice_key = &id[..name_end];
                if id == slice_key {
                    if path.ends_with(".extension") {
                        continue; // extension slices are matched by url, not checked here
                    }
                    let max = e["max"].as_str().unwrap_or("*").to_owned();
                    let pattern = fixed_or_pattern(e)
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
                    slices.insert(
                        slice_key,
                        (
                            path.to_owned(),
                            e["min"].as_u64().unwrap_or(0),
                            max,
                            pattern,
                        ),
                    );
                } else if let Some(slice) = slices.get_mut(slice_key) {
                    let rel = &id[name_end + 1..];
                    if rel.contains("[x]") || rel.contains(':') {
                        continue;
                    }
                    if let Some(v) = fixed_or_pattern(e).and_then(|t| serde_json::from_str(&t).ok())
                    {
                        let rel: Vec<&str> = rel.split('.').collect();
                        merge_pattern(&mut slice.3, &rel, v);
                    }
                }
                continue;
            }
            let min = e["min"].as_u64().unwrap_or(0);
            let max = e["max"].as_str().unwrap_or("*");
            let pattern = fixed_or_pattern(e);
            let binding = (e["binding"]["strength"] == "required")
                .then(|| e["binding"]["valueSet"].as_str())
                .flatten()
                .map(|v| v.split('|').next().unwrap_or(v));
            // A maximum matters only where the profile lowers the base's `*`.
            let lowers_max = max != "*" && base_max.get(path) == Some(&"*");
            if min == 0 && !lowers_max && pattern.is_none() && binding.is_none() {
                continue;
            }
            if path == ty {
                continue;
            }
            let max = if max == "*" {
                "None".to_owned()
            } else {
                format!("Some({})", max.parse::<u32>().context("max")?)
            };
            writeln!(
                out,
                "        ProfileConstraint {{ path: {path:?}, min: {min}, max: {max}, pattern: {}, required_binding: {} }},",
                opt_str(pattern.as_deref()),
                opt_str(binding),
            )?;
        }
        write_slices(&mut out, slices)?;
        out.push_str("    ] },\n");
    }
    out.push_str("];\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_parts_for_one_type() {
        let e = "AllergyIntolerance.patient | (Observation.subject.where(resolve() is Patient)) | ObservationDefinition.x";
        assert_eq!(
            expression_for(e, 3, "Observation"),
            "(Observation.subject.where(resolve() is Patient))"
        );
        assert_eq!(expression_for("name | alias", 1, "X"), "name | alias");
        assert_eq!(
            expression_for("Observation", 2, "Observation"),
            "Observation"
        );
        assert_eq!(
            split_union("a.where(x = 'p|q') | b"),
            vec!["a.where(x = 'p|q')", "b"]
        );
    }
}
