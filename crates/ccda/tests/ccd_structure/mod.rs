//! A structural check of generated CCDs against the CDA R2 schema's content models and the
//! C-CDA R2.1 CCD constraints the generator claims, read with roxmltree (a parser independent
//! of the quick-xml that wrote the document).
//!
//! No package registry ships the CDA R2 XSD (POCD_MT000040), so the schema's sequences for the
//! elements the generator writes are listed here, with the C-CDA R2.1 templates (ids and
//! versions), required header elements, section codes and entry structure.

#![allow(clippy::too_many_lines, clippy::collapsible_match)] // a table and a list of checks

use std::collections::{BTreeSet, HashMap};

use roxmltree::{Document, Node};

const V3: &str = "urn:hl7-org:v3";
const SDTC: &str = "urn:hl7-org:sdtc";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// The CDA R2 schema's child sequences (POCD_MT000040) of the elements a CCD uses; children
/// must appear in this order (each name may repeat).
fn sequence(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "ClinicalDocument" => &[
            "realmCode",
            "typeId",
            "templateId",
            "id",
            "code",
            "title",
            "effectiveTime",
            "confidentialityCode",
            "languageCode",
            "setId",
            "versionNumber",
            "copyTime",
            "recordTarget",
            "author",
            "dataEnterer",
            "informant",
            "custodian",
            "informationRecipient",
            "legalAuthenticator",
            "authenticator",
            "participant",
            "inFulfillmentOf",
            "documentationOf",
            "relatedDocument",
            "authorization",
            "componentOf",
            "component",
        ],
        "recordTarget" => &["realmCode", "typeId", "templateId", "patientRole"],
        "patientRole" => &[
            "realmCode",
            "typeId",
            "templateId",
            "id",
            "addr",
            "telecom",
            "patient",
            "providerOrganization",
        ],
        "patient" => &[
            "realmCode",
            "typeId",
            "templateId",
            "id",
            "name",
            "administrativeGenderCode",
            "birthTime",
            "sdtc:deceasedInd",
            "sdtc:deceasedTime",
            "maritalStatusCode",
            "religiousAffiliationCode",
            "raceCode",
            "sdtc:raceCode",
            "ethnicGroupCode",
            "sdtc:ethnicGroupCode",
            "guardian",
            "birthplace",
            "languageCommunication",
        ],
        "languageCommunication" => &[
            "realmCode",
            "typeId",
            "templateId",
            "languageCode",
            "modeCode",
            "proficiencyLevelCode",
            "preferenceInd",
        ],
        "author" => &[
            "realmCode",
            "typeId",
            "templateId",
            "functionCode",
            "time",
            "assignedAuthor",
        ],
        "assignedAuthor" => &[
            "realmCode",
            "typeId",
            "templateId",
            "id",
            "code",
            "addr",
            "telecom",
            "assignedPerson",
            "assignedAuthoringDevice",
            "representedOrganization",
        ],
        "assignedAuthoringDevice" => &[
            "realmCode",
            "typeId",
            "templateId",
            "code",
            "manufacturerModelName",
            "softwareName",
            "asMaintainedEntity",
        ],
        "representedOrganization" | "representedCustodianOrganization" | "providerOrganization" => {
            &[
                "realmCode",
                "typeId",
                "templateId",
                "id",
                "name",
                "telecom",
                "addr",
                "standardIndustryClassCode",
                "asOrganizationPartOf",
            ]
        }
        "custodian" => &["realmCode", "typeId", "templateId", "assignedCustodian"],
        "assignedCustodian" => &[
            "realmCode",
            "typeId",
            "templateId",
            "representedCustodianOrganization",
        ],
        "documentationOf" => &["realmCode", "typeId", "templateId", "serviceEvent"],
        "serviceEvent" => &[
            "realmCode",
            "typeId",
            "templateId",
            "id",
            "code",
            "effectiveTime",
            "performer",
        ],
        "structuredBody" => &[
            "realmCode",
            "typeId",
            "templateId",
            "confidentialityCode",
            "languageCode",
            "component",
        ],
        "section" => &[
            "realmCode",
            "typeId",
            "templateId",
            "id",
            "code",
            "title",
            "text",
            "confidentialityCode",
            "languageCode",
            "subject",
            "author",
            "informant",
            "entry",
            "component",
        ],
        "entry" | "entryRelationship" | "component" if false => return None,
        "act" => &[
            "realmCode",
            "typeId",
            "templateId",
            "id",
            "code",
            "text",
            "statusCode",
            "effectiveTime",
            "priorityCode",
            "languageCode",
            "subject",
            "specimen",
            "performer",
            "author",
            "informant",
            "participant",
            "entryRelationship",
            "reference",
            "precondition",
        ],
        "observation" => &[
            "realmCode",
            "typeId",
            "templateId",
            "id",
            "code",
            "derivationExpr",
            "text",
            "statusCode",
            "effectiveTime",
            "priorityCode",
            "repeatNumber",
            "languageCode",
            "value",
            "interpretationCode",
            "methodCode",
            "targetSiteCode",
            "subject",
            "specimen",
            "performer",
            "author",
            "informant",
            "participant",
            "entryRelationship",
            "reference",
            "precondition",
            "referenceRange",
        ],
        "substanceAdministration" => &[
            "realmCode",
            "typeId",
            "templateId",
            "id",
            "code",
            "text",
            "statusCode",
            "effectiveTime",
            "priorityCode",
            "repeatNumber",
            "routeCode",
            "approachSiteCode",
            "doseQuantity",
            "rateQuantity",
            "maxDoseQuantity",
            "administrationUnitCode",
            "subject",
            "specimen",
            "consumable",
            "performer",
            "author",
            "informant",
            "participant",
            "entryRelationship",
            "reference",
            "precondition",
        ],
        "organizer" => &[
            "realmCode",
            "typeId",
            "templateId",
            "id",
            "code",
            "statusCode",
            "effectiveTime",
            "subject",
            "specimen",
            "performer",
            "author",
            "informant",
            "participant",
            "reference",
            "precondition",
            "component",
        ],
        "procedure" => &[
            "realmCode",
            "typeId",
            "templateId",
            "id",
            "code",
            "text",
            "statusCode",
            "effectiveTime",
            "priorityCode",
            "languageCode",
            "methodCode",
            "approachSiteCode",
            "targetSiteCode",
            "subject",
            "specimen",
            "performer",
            "author",
            "informant",
            "participant",
            "entryRelationship",
            "reference",
            "precondition",
        ],
        "encounter" => &[
            "realmCode",
            "typeId",
            "templateId",
            "id",
            "code",
            "text",
            "statusCode",
            "effectiveTime",
            "priorityCode",
            "subject",
            "specimen",
            "performer",
            "author",
            "informant",
            "participant",
            "entryRelationship",
            "reference",
            "precondition",
        ],
        "consumable" => &["realmCode", "typeId", "templateId", "manufacturedProduct"],
        "manufacturedProduct" => &[
            "realmCode",
            "typeId",
            "templateId",
            "id",
            "manufacturedLabeledDrug",
            "manufacturedMaterial",
            "manufacturerOrganization",
        ],
        "manufacturedMaterial" => &[
            "realmCode",
            "typeId",
            "templateId",
            "code",
            "name",
            "lotNumberText",
        ],
        "participantRole" => &[
            "realmCode",
            "typeId",
            "templateId",
            "id",
            "code",
            "addr",
            "telecom",
            "playingDevice",
            "playingEntity",
            "scopingEntity",
        ],
        "playingEntity" => &[
            "realmCode",
            "typeId",
            "templateId",
            "code",
            "quantity",
            "name",
            "desc",
        ],
        "referenceRange" => &["realmCode", "typeId", "templateId", "observationRange"],
        "observationRange" => &[
            "realmCode",
            "typeId",
            "templateId",
            "code",
            "text",
            "value",
            "interpretationCode",
        ],
        "name" => &[
            "prefix",
            "given",
            "family",
            "suffix",
            "delimiter",
            "validTime",
        ],
        "effectiveTime" => &["low", "width", "high", "center", "period", "phase"],
        "code" | "value" => &[
            "originalText",
            "qualifier",
            "translation",
            "low",
            "high",
            "center",
            "width",
            "numerator",
            "denominator",
        ],
        _ => return None,
    })
}

/// Entry templates each CCD section must hold, with their R2.1 versions.
fn section_rules() -> HashMap<&'static str, (&'static str, &'static str, &'static str, &'static str)>
{
    // section template → (version, LOINC code, entry statement element, entry template@version)
    HashMap::from([
        (
            "2.16.840.1.113883.10.20.22.2.6.1",
            (
                "2015-08-01",
                "48765-2",
                "act",
                "2.16.840.1.113883.10.20.22.4.30@2015-08-01",
            ),
        ),
        (
            "2.16.840.1.113883.10.20.22.2.1.1",
            (
                "2014-06-09",
                "10160-0",
                "substanceAdministration",
                "2.16.840.1.113883.10.20.22.4.16@2014-06-09",
            ),
        ),
        (
            "2.16.840.1.113883.10.20.22.2.5.1",
            (
                "2015-08-01",
                "11450-4",
                "act",
                "2.16.840.1.113883.10.20.22.4.3@2015-08-01",
            ),
        ),
        (
            "2.16.840.1.113883.10.20.22.2.2.1",
            (
                "2015-08-01",
                "11369-6",
                "substanceAdministration",
                "2.16.840.1.113883.10.20.22.4.52@2015-08-01",
            ),
        ),
        (
            "2.16.840.1.113883.10.20.22.2.3.1",
            (
                "2015-08-01",
                "30954-2",
                "organizer",
                "2.16.840.1.113883.10.20.22.4.1@2015-08-01",
            ),
        ),
        (
            "2.16.840.1.113883.10.20.22.2.4.1",
            (
                "2015-08-01",
                "8716-3",
                "organizer",
                "2.16.840.1.113883.10.20.22.4.26@2015-08-01",
            ),
        ),
        (
            "2.16.840.1.113883.10.20.22.2.7.1",
            (
                "2014-06-09",
                "47519-4",
                "procedure",
                "2.16.840.1.113883.10.20.22.4.14@2014-06-09",
            ),
        ),
        (
            "2.16.840.1.113883.10.20.22.2.22.1",
            (
                "2015-08-01",
                "46240-8",
                "encounter",
                "2.16.840.1.113883.10.20.22.4.49@2015-08-01",
            ),
        ),
        (
            "2.16.840.1.113883.10.20.22.2.17",
            ("2015-08-01", "29762-2", "observation", ""),
        ),
    ])
}

fn qname(n: Node<'_, '_>) -> String {
    let ns = n.tag_name().namespace();
    let local = n.tag_name().name();
    match ns {
        Some(SDTC) => format!("sdtc:{local}"),
        _ => local.to_owned(),
    }
}

fn elements<'a, 'i>(n: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children().filter(Node::is_element)
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    elements(n).find(|c| c.tag_name().name() == name)
}

fn path(n: Node<'_, '_>) -> String {
    let mut parts: Vec<String> = n
        .ancestors()
        .filter(Node::is_element)
        .map(|a| a.tag_name().name().to_owned())
        .collect();
    parts.reverse();
    parts.join("/")
}

fn is_oid(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| {
            if [8, 13, 18, 23].contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

fn is_ts(s: &str) -> bool {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    let rest = &s[digits.len()..];
    let rest = rest
        .strip_prefix('.')
        .map_or(rest, |r| r.trim_start_matches(|c: char| c.is_ascii_digit()));
    [4, 6, 8, 10, 12, 14].contains(&digits.len())
        && (rest.is_empty()
            || (rest.len() == 5
                && (rest.starts_with('+') || rest.starts_with('-'))
                && rest[1..].bytes().all(|b| b.is_ascii_digit())))
}

/// Everything wrong with a CCD; empty when it passes.
pub fn check_ccd(xml: &str) -> Vec<String> {
    let doc = match Document::parse(xml) {
        Ok(d) => d,
        Err(e) => return vec![format!("not well-formed XML (roxmltree): {e}")],
    };
    let mut problems = Vec::new();
    let root = doc.root_element();
    if root.tag_name().name() != "ClinicalDocument" || root.tag_name().namespace() != Some(V3) {
        problems.push("root is not {urn:hl7-org:v3}ClinicalDocument".to_owned());
        return problems;
    }
    let ids: BTreeSet<&str> = doc
        .descendants()
        .filter_map(|n| n.attribute("ID"))
        .collect();
    for n in doc.descendants().filter(Node::is_element) {
        let name = qname(n);
        let ns = n.tag_name().namespace();
        if ns != Some(V3) && ns != Some(SDTC) {
            problems.push(format!("{}: element in namespace {ns:?}", path(n)));
        }
        // Schema order of children.
        let in_narrative = n.ancestors().any(|a| {
            a.tag_name().name() == "text"
                && a.parent_element()
                    .is_some_and(|p| p.tag_name().name() == "section")
        });
        if !in_narrative && let Some(seq) = sequence(&name) {
            let mut pos = 0usize;
            for c in elements(n) {
                let cn = qname(c);
                match seq.iter().position(|s| *s == cn) {
                    Some(p) if p >= pos => pos = p,
                    Some(_) => {
                        problems.push(format!("{}: <{cn}> out of the schema's order", path(n)));
                    }
                    None => problems.push(format!(
                        "{}: <{cn}> is not allowed here by the CDA schema",
                        path(n)
                    )),
                }
            }
        }
        match n.tag_name().name() {
            "templateId" => {
                if !n.attribute("root").is_some_and(is_oid) {
                    problems.push(format!("{}: templateId without an OID root", path(n)));
                }
            }
            "id" if !in_narrative => {
                let ok = n.attribute("nullFlavor").is_some()
                    || n.attribute("root").is_some_and(|r| is_oid(r) || is_uuid(r));
                if !ok {
                    problems.push(format!(
                        "{}: id without an OID/UUID root or nullFlavor",
                        path(n)
                    ));
                }
            }
            "code"
            | "routeCode"
            | "approachSiteCode"
            | "targetSiteCode"
            | "interpretationCode"
            | "administrativeGenderCode"
            | "raceCode"
            | "ethnicGroupCode"
            | "maritalStatusCode"
            | "translation"
                if !in_narrative
                    && n.parent_element()
                        .is_some_and(|p| p.tag_name().name() != "languageCommunication") =>
            {
                let coded =
                    n.attribute("code").is_some() && n.attribute("codeSystem").is_some_and(is_oid);
                if !coded && n.attribute("nullFlavor").is_none() {
                    problems.push(format!(
                        "{}: coded element without code+codeSystem OID or nullFlavor",
                        path(n)
                    ));
                }
            }
            "value"
                if !in_narrative
                    && n.parent_element()
                        .is_some_and(|p| p.tag_name().name() == "observation") =>
            {
                if n.attribute((XSI, "type")).is_none() {
                    problems.push(format!("{}: observation value without xsi:type", path(n)));
                }
            }
            "reference" => {
                if let Some(v) = n.attribute("value").and_then(|v| v.strip_prefix('#'))
                    && !ids.contains(v)
                {
                    problems.push(format!(
                        "{}: reference #{v} names no ID in the narrative",
                        path(n)
                    ));
                }
            }
            "statusCode" => {
                if !matches!(
                    n.attribute("code"),
                    Some(
                        "active"
                            | "completed"
                            | "aborted"
                            | "suspended"
                            | "cancelled"
                            | "new"
                            | "held"
                            | "nullified"
                    )
                ) {
                    problems.push(format!(
                        "{}: statusCode {:?} is not an ActStatus",
                        path(n),
                        n.attribute("code")
                    ));
                }
            }
            _ => {}
        }
        {
            let time_el = matches!(
                n.tag_name().name(),
                "effectiveTime" | "low" | "high" | "time" | "birthTime" | "sdtc:deceasedTime"
            ) && n.attribute((XSI, "type")).is_none_or(|t| t.ends_with("TS"));
            if time_el
                && !n
                    .ancestors()
                    .any(|a| a.tag_name().name() == "value" || a.tag_name().name() == "period")
                && let Some(v) = n.attribute("value")
                && !is_ts(v)
            {
                problems.push(format!("{}: {v:?} is not a TS", path(n)));
            }
        }
        if matches!(
            n.tag_name().name(),
            "act"
                | "observation"
                | "substanceAdministration"
                | "organizer"
                | "procedure"
                | "encounter"
        ) && (n.attribute("classCode").is_none() || n.attribute("moodCode").is_none())
        {
            problems.push(format!(
                "{}: clinical statement without classCode and moodCode",
                path(n)
            ));
        }
    }
    header(root, &mut problems);
    sections(root, &mut problems);
    problems
}

fn has_template(n: Node<'_, '_>, root: &str, ext: &str) -> bool {
    elements(n).any(|t| {
        t.tag_name().name() == "templateId"
            && t.attribute("root") == Some(root)
            && (ext.is_empty() || t.attribute("extension") == Some(ext))
    })
}

fn header(root: Node<'_, '_>, problems: &mut Vec<String>) {
    let mut need = |ok: bool, what: &str| {
        if !ok {
            problems.push(format!("header: {what}"));
        }
    };
    need(
        child(root, "realmCode").and_then(|r| r.attribute("code")) == Some("US"),
        "realmCode US",
    );
    let type_id = child(root, "typeId");
    need(
        type_id.and_then(|t| t.attribute("root")) == Some("2.16.840.1.113883.1.3")
            && type_id.and_then(|t| t.attribute("extension")) == Some("POCD_HD000040"),
        "typeId POCD_HD000040",
    );
    need(
        has_template(root, "2.16.840.1.113883.10.20.22.1.1", "2015-08-01"),
        "US Realm Header template 2015-08-01",
    );
    need(
        has_template(root, "2.16.840.1.113883.10.20.22.1.2", "2015-08-01"),
        "CCD template 2015-08-01",
    );
    need(
        child(root, "id")
            .and_then(|i| i.attribute("root"))
            .is_some(),
        "id",
    );
    let code = child(root, "code");
    need(
        code.and_then(|c| c.attribute("code")) == Some("34133-9")
            && code.and_then(|c| c.attribute("codeSystem")) == Some("2.16.840.1.113883.6.1"),
        "code 34133-9 (LOINC)",
    );
    need(
        child(root, "title")
            .and_then(|t| t.text())
            .is_some_and(|t| !t.trim().is_empty()),
        "title",
    );
    need(
        child(root, "effectiveTime")
            .and_then(|t| t.attribute("value"))
            .is_some(),
        "effectiveTime",
    );
    need(
        child(root, "confidentialityCode").is_some(),
        "confidentialityCode",
    );
    need(child(root, "languageCode").is_some(), "languageCode");
    let role = child(root, "recordTarget").and_then(|r| child(r, "patientRole"));
    need(role.is_some(), "recordTarget/patientRole");
    if let Some(role) = role {
        for e in ["id", "addr", "telecom", "patient"] {
            need(child(role, e).is_some(), &format!("patientRole/{e}"));
        }
        if let Some(p) = child(role, "patient") {
            for e in ["name", "administrativeGenderCode", "birthTime"] {
                need(child(p, e).is_some(), &format!("patient/{e}"));
            }
        }
    }
    let author = child(root, "author");
    need(
        author.and_then(|a| child(a, "time")).is_some(),
        "author/time",
    );
    let aa = author.and_then(|a| child(a, "assignedAuthor"));
    need(
        aa.and_then(|a| child(a, "id")).is_some(),
        "assignedAuthor/id",
    );
    need(
        aa.is_some_and(|a| {
            child(a, "assignedPerson").is_some() || child(a, "assignedAuthoringDevice").is_some()
        }),
        "assignedAuthor person or device",
    );
    let org = child(root, "custodian")
        .and_then(|c| child(c, "assignedCustodian"))
        .and_then(|c| child(c, "representedCustodianOrganization"));
    for e in ["id", "name", "telecom", "addr"] {
        need(
            org.and_then(|o| child(o, e)).is_some(),
            &format!("custodian organization/{e}"),
        );
    }
    need(
        child(root, "component")
            .and_then(|c| child(c, "structuredBody"))
            .is_some(),
        "component/structuredBody",
    );
}

fn sections(root: Node<'_, '_>, problems: &mut Vec<String>) {
    let rules = section_rules();
    let Some(body) = child(root, "component").and_then(|c| child(c, "structuredBody")) else {
        return;
    };
    let mut seen = BTreeSet::new();
    for sec in elements(body).filter_map(|c| child(c, "section")) {
        let Some((tid, (ver, loinc, stmt, entry_tpl))) = elements(sec)
            .filter(|t| t.tag_name().name() == "templateId")
            .find_map(|t| {
                t.attribute("root")
                    .and_then(|r| rules.get_key_value(r))
                    .map(|(k, v)| (*k, *v))
            })
        else {
            problems.push(format!(
                "{}: section with no CCD section template",
                path(sec)
            ));
            continue;
        };
        seen.insert(tid);
        if !has_template(sec, tid, ver) {
            problems.push(format!("section {tid}: templateId extension is not {ver}"));
        }
        let code = child(sec, "code");
        if code.and_then(|c| c.attribute("code")) != Some(loinc)
            || code.and_then(|c| c.attribute("codeSystem")) != Some("2.16.840.1.113883.6.1")
        {
            problems.push(format!("section {tid}: code is not LOINC {loinc}"));
        }
        if child(sec, "title").is_none() || child(sec, "text").is_none() {
            problems.push(format!("section {tid}: title and text are required"));
        }
        let entries: Vec<Node<'_, '_>> = elements(sec)
            .filter(|e| e.tag_name().name() == "entry")
            .collect();
        if sec.attribute("nullFlavor").is_none() && entries.is_empty() {
            problems.push(format!("section {tid}: no entries and no nullFlavor"));
        }
        if sec.attribute("nullFlavor").is_some() && !entries.is_empty() {
            problems.push(format!("section {tid}: nullFlavor with entries"));
        }
        for e in entries {
            let Some(st) = elements(e).next() else {
                problems.push(format!("section {tid}: empty entry"));
                continue;
            };
            if st.tag_name().name() != stmt {
                problems.push(format!(
                    "section {tid}: entry holds <{}>, not <{stmt}>",
                    st.tag_name().name()
                ));
            }
            if let Some((r, v)) = entry_tpl.split_once('@')
                && !has_template(st, r, v)
            {
                problems.push(format!(
                    "section {tid}: entry without template {r} version {v}"
                ));
            }
        }
    }
    for required in [
        "2.16.840.1.113883.10.20.22.2.6.1",
        "2.16.840.1.113883.10.20.22.2.1.1",
        "2.16.840.1.113883.10.20.22.2.5.1",
        "2.16.840.1.113883.10.20.22.2.3.1",
    ] {
        if !seen.contains(required) {
            problems.push(format!("CCD requires section {required}"));
        }
    }
}
