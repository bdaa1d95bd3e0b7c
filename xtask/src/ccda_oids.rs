//! Generation of the `ccda` crate's OID ↔ URI table of code and identifier systems
//! (`crates/ccda/src/generated/oids.rs`).
//!
//! C-CDA names a code system by OID (`codeSystem="2.16.840.1.113883.6.96"`), FHIR by URI
//! (`http://snomed.info/sct`). The FHIR R4 definitions pair the two on every CodeSystem that
//! has an OID: its `identifier` (`urn:oid:…`) beside its canonical `url`, in `valuesets.json`
//! (FHIR's own code systems), `v3-codesystems.json` (HL7 v3) and `v2-tables.json` (HL7 v2
//! tables). The external terminologies (LOINC, RxNorm, CVX, ICD, NDC, CPT, UCUM…) have no
//! CodeSystem resource in those files, and the definitions carry no NamingSystem resources;
//! FHIR names them with their OIDs on its page of external terminologies
//! (`terminologies-systems.html` of R4) and the identifier systems on its identifier registry
//! (`identifier-registry.html`). Those are the short list [`WELL_KNOWN`] below. A row of that
//! list that contradicts the definitions (same OID, another URI, or the other way round) stops
//! the generation, so the list cannot drift from the spec.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Result, bail};
use serde_json::Value;

use crate::{HEADER, read_json, spec_file};

/// The generated file, relative to the workspace root.
pub const OUTPUT: &str = "crates/ccda/src/generated/oids.rs";

/// External code systems and identifier systems that FHIR R4 names with their OIDs outside
/// the CodeSystem resources (terminologies-systems and identifier-registry pages). When a URI
/// has several OIDs (CVX was registered twice, ICD-9-CM is split into volumes), the first row
/// is the one written back into CDA.
const WELL_KNOWN: &[(&str, &str)] = &[
    ("2.16.840.1.113883.6.96", "http://snomed.info/sct"),
    ("2.16.840.1.113883.6.1", "http://loinc.org"),
    (
        "2.16.840.1.113883.6.88",
        "http://www.nlm.nih.gov/research/umls/rxnorm",
    ),
    ("2.16.840.1.113883.12.292", "http://hl7.org/fhir/sid/cvx"),
    ("2.16.840.1.113883.6.59", "http://hl7.org/fhir/sid/cvx"),
    ("2.16.840.1.113883.12.227", "http://hl7.org/fhir/sid/mvx"),
    (
        "2.16.840.1.113883.6.90",
        "http://hl7.org/fhir/sid/icd-10-cm",
    ),
    ("2.16.840.1.113883.6.3", "http://hl7.org/fhir/sid/icd-10"),
    (
        "2.16.840.1.113883.6.4",
        "http://www.cms.gov/Medicare/Coding/ICD10",
    ),
    (
        "2.16.840.1.113883.6.103",
        "http://hl7.org/fhir/sid/icd-9-cm",
    ),
    (
        "2.16.840.1.113883.6.104",
        "http://hl7.org/fhir/sid/icd-9-cm",
    ),
    ("2.16.840.1.113883.6.2", "http://hl7.org/fhir/sid/icd-9-cm"),
    ("2.16.840.1.113883.6.69", "http://hl7.org/fhir/sid/ndc"),
    ("2.16.840.1.113883.6.8", "http://unitsofmeasure.org"),
    ("2.16.840.1.113883.6.12", "http://www.ama-assn.org/go/cpt"),
    (
        "2.16.840.1.113883.6.285",
        "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
    ),
    (
        "2.16.840.1.113883.6.14",
        "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
    ),
    (
        "2.16.840.1.113883.6.101",
        "http://nucc.org/provider-taxonomy",
    ),
    ("2.16.840.1.113883.3.26.1.1", "http://ncimeta.nci.nih.gov"),
    ("2.16.840.1.113883.3.26.1.5", "http://hl7.org/fhir/ndfrt"),
    ("2.16.840.1.113883.4.9", "http://fdasis.nlm.nih.gov"),
    ("2.16.840.1.113883.6.13", "http://ada.org/cdt"),
    (
        "1.2.840.10008.2.16.4",
        "http://dicom.nema.org/resources/ontology/DCM",
    ),
    // Identifier systems.
    ("2.16.840.1.113883.4.6", "http://hl7.org/fhir/sid/us-npi"),
    ("2.16.840.1.113883.4.1", "http://hl7.org/fhir/sid/us-ssn"),
    ("2.16.840.1.113883.4.572", "http://hl7.org/fhir/sid/us-mbi"),
];

/// The definition files whose CodeSystems are read.
const SOURCES: &[&str] = &["valuesets.json", "v3-codesystems.json", "v2-tables.json"];

/// Makes `crates/ccda/src/generated/oids.rs` from the definitions in `spec`.
pub fn generate(spec: &Path) -> Result<Vec<(String, String)>> {
    let mut bundles = Vec::new();
    for name in SOURCES {
        bundles.push(read_json(&spec_file(spec, name)?)?);
    }
    let pairs = spec_pairs(&bundles)?;
    let (oid_to_uri, uri_to_oid) = tables(&pairs, WELL_KNOWN)?;
    Ok(vec![(OUTPUT.into(), render(&oid_to_uri, &uri_to_oid)?)])
}

/// (OID, URI) of every CodeSystem of the bundles with a `urn:oid:` identifier.
fn spec_pairs(bundles: &[Value]) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for bundle in bundles {
        let Some(entries) = bundle["entry"].as_array() else {
            bail!("a definition file is not a Bundle with entries");
        };
        for entry in entries {
            let r = &entry["resource"];
            if r["resourceType"] != "CodeSystem" {
                continue;
            }
            let Some(url) = r["url"].as_str() else {
                continue;
            };
            // R4 makes CodeSystem.identifier a list; some files still carry one object.
            let identifiers = match &r["identifier"] {
                Value::Array(a) => a.iter().collect::<Vec<_>>(),
                Value::Null => Vec::new(),
                one => vec![one],
            };
            for id in identifiers {
                if let Some(oid) = id["value"]
                    .as_str()
                    .and_then(|v| v.strip_prefix("urn:oid:"))
                {
                    let oid = oid.trim();
                    if !oid.is_empty() && oid.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                        pairs.push((oid.to_owned(), url.trim().to_owned()));
                    }
                }
            }
        }
    }
    Ok(pairs)
}

/// OID → URI and URI → OID from the definitions' pairs and the well-known rows; a well-known
/// row contradicting the definitions, or two definitions disagreeing, is an error.
fn tables(
    spec: &[(String, String)],
    well_known: &[(&str, &str)],
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let mut oid_to_uri: BTreeMap<String, String> = BTreeMap::new();
    let mut uri_to_oid: BTreeMap<String, String> = BTreeMap::new();
    for (oid, uri) in spec {
        if let Some(other) = oid_to_uri.insert(oid.clone(), uri.clone())
            && &other != uri
        {
            bail!("the definitions give OID {oid} to both {other} and {uri}");
        }
        if let Some(other) = uri_to_oid.insert(uri.clone(), oid.clone())
            && &other != oid
        {
            bail!("the definitions give {uri} both OID {other} and OID {oid}");
        }
    }
    let spec_uris: BTreeMap<String, String> = uri_to_oid.clone();
    for &(oid, uri) in well_known {
        match oid_to_uri.get(oid) {
            Some(known) if known != uri => {
                bail!("well-known row {oid} → {uri}: the definitions map {oid} to {known}")
            }
            Some(_) => {}
            None => {
                oid_to_uri.insert(oid.to_owned(), uri.to_owned());
            }
        }
        match spec_uris.get(uri) {
            Some(known) if !well_known.iter().any(|&(o, u)| u == uri && o == known) => {
                bail!("well-known row {oid} → {uri}: the definitions give {uri} the OID {known}")
            }
            _ => {
                // The first row of a URI is the OID written back into CDA.
                uri_to_oid
                    .entry(uri.to_owned())
                    .or_insert_with(|| oid.to_owned());
            }
        }
    }
    Ok((oid_to_uri, uri_to_oid))
}

fn render(
    oid_to_uri: &BTreeMap<String, String>,
    uri_to_oid: &BTreeMap<String, String>,
) -> Result<String> {
    let mut out = String::from(HEADER);
    out.push_str(
        "//! OID ↔ URI of code and identifier systems: every CodeSystem of the FHIR R4 definitions\n\
         //! (`valuesets.json`, `v3-codesystems.json`, `v2-tables.json`) with a `urn:oid:`\n\
         //! identifier, and the external terminologies FHIR names with their OIDs (the list in\n\
         //! `xtask/src/ccda_oids.rs`).\n\n",
    );
    writeln!(
        out,
        "/// (OID, system URI), sorted by OID ({} rows).",
        oid_to_uri.len()
    )?;
    out.push_str("pub(crate) static OID_TO_URI: &[(&str, &str)] = &[\n");
    for (oid, uri) in oid_to_uri {
        writeln!(out, "    ({oid:?}, {uri:?}),")?;
    }
    out.push_str("];\n\n");
    writeln!(
        out,
        "/// (system URI, OID), sorted by URI ({} rows): the OID a CDA document names the system by.",
        uri_to_oid.len()
    )?;
    out.push_str("pub(crate) static URI_TO_OID: &[(&str, &str)] = &[\n");
    for (uri, oid) in uri_to_oid {
        writeln!(out, "    ({uri:?}, {oid:?}),")?;
    }
    out.push_str("];\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(rows: &[(&str, &str)]) -> Vec<(String, String)> {
        rows.iter()
            .map(|&(o, u)| (o.to_owned(), u.to_owned()))
            .collect()
    }

    #[test]
    fn definitions_and_well_known_rows_merge() {
        let spec = pairs(&[
            (
                "2.16.840.1.113883.5.4",
                "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            ),
            ("2.16.840.1.113883.6.96", "http://snomed.info/sct"),
        ]);
        let (o2u, u2o) = tables(
            &spec,
            &[
                ("2.16.840.1.113883.6.96", "http://snomed.info/sct"),
                ("2.16.840.1.113883.12.292", "http://hl7.org/fhir/sid/cvx"),
                ("2.16.840.1.113883.6.59", "http://hl7.org/fhir/sid/cvx"),
            ],
        )
        .expect("consistent");
        assert_eq!(o2u.len(), 4);
        assert_eq!(o2u["2.16.840.1.113883.6.59"], "http://hl7.org/fhir/sid/cvx");
        assert_eq!(
            u2o["http://hl7.org/fhir/sid/cvx"],
            "2.16.840.1.113883.12.292"
        );
        assert_eq!(
            u2o["http://terminology.hl7.org/CodeSystem/v3-ActCode"],
            "2.16.840.1.113883.5.4"
        );
        let text = render(&o2u, &u2o).expect("renders");
        assert!(text.contains("(\"2.16.840.1.113883.6.96\", \"http://snomed.info/sct\"),"));
    }

    #[test]
    fn contradictions_stop_the_generation() {
        let spec = pairs(&[("2.16.840.1.113883.6.96", "http://snomed.info/sct")]);
        assert!(tables(&spec, &[("2.16.840.1.113883.6.96", "http://loinc.org")]).is_err());
        assert!(tables(&spec, &[("1.2.3", "http://snomed.info/sct")]).is_err());
        let twice = pairs(&[("1.2.3", "http://a.example"), ("1.2.3", "http://b.example")]);
        assert!(tables(&twice, &[]).is_err());
    }
}
