//! FHIR R4 → C-CDA R2.1 Continuity of Care Document: the US Realm header from the Patient,
//! and the nine CCD sections from the other resources ([`sections`]).

mod sections;
mod types;

use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use serde_json::Value;

use crate::CcdaError;
use crate::ids::uuid_from;
use types::{address, identifiers, name, str_of, telecom, ts};

/// Options of [`to_ccd`].
#[derive(Debug, Clone, Default)]
pub struct CcdOptions {
    /// The document's time (a FHIR dateTime). Without it: the current time (UTC), which makes
    /// the output differ between runs; give it for reproducible documents.
    pub effective_time: Option<String>,
    /// The document title (default `Continuity of Care Document`).
    pub title: Option<String>,
    /// The organization that writes and keeps the document (author's organization and
    /// custodian); default: the Patient's managing Organization when it is among the
    /// resources, else `Plexus`.
    pub custodian_name: Option<String>,
    /// The OID of that organization (the custodian's `id/@root`); without it the id is
    /// `nullFlavor="UNK"`.
    pub custodian_oid: Option<String>,
}

/// A small layer over quick-xml's writer: elements with attributes, escaped text.
pub(crate) struct Xml {
    w: Writer<Vec<u8>>,
}

fn write_err(e: &io::Error) -> CcdaError {
    CcdaError::Write(e.to_string())
}

pub(crate) type Res = Result<(), CcdaError>;

impl Xml {
    fn new() -> Self {
        Xml {
            w: Writer::new_with_indent(Vec::with_capacity(64 * 1024), b' ', 2),
        }
    }

    /// `<name attrs…>`.
    pub fn start(&mut self, name: &str, attrs: &[(&str, &str)]) -> Res {
        let e = BytesStart::new(name).with_attributes(attrs.iter().copied());
        self.w
            .write_event(Event::Start(e))
            .map_err(|e| write_err(&e))
    }

    /// `</name>`.
    pub fn end(&mut self, name: &str) -> Res {
        self.w
            .write_event(Event::End(BytesEnd::new(name)))
            .map_err(|e| write_err(&e))
    }

    /// `<name attrs…/>`.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) -> Res {
        let e = BytesStart::new(name).with_attributes(attrs.iter().copied());
        self.w
            .write_event(Event::Empty(e))
            .map_err(|e| write_err(&e))
    }

    /// `<name attrs…>text</name>`.
    pub fn text_el(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) -> Res {
        self.start(name, attrs)?;
        self.text(text)?;
        self.end(name)
    }

    /// Escaped text.
    pub fn text(&mut self, text: &str) -> Res {
        self.w
            .write_event(Event::Text(BytesText::new(text)))
            .map_err(|e| write_err(&e))
    }

    fn finish(self) -> Result<String, CcdaError> {
        String::from_utf8(self.w.into_inner()).map_err(|e| CcdaError::Write(e.to_string()))
    }
}

/// Writes a C-CDA R2.1 CCD for `patient` from `resources` (the Patient may be among them; other
/// patients' resources should not be). Resources of types a CCD has no section for are
/// ignored, and so are `entered-in-error` ones.
#[allow(clippy::too_many_lines)] // the header in the schema's order
pub fn to_ccd(
    patient: &Value,
    resources: &[Value],
    opts: &CcdOptions,
) -> Result<String, CcdaError> {
    if patient.get("resourceType").and_then(Value::as_str) != Some("Patient") {
        return Err(CcdaError::Fhir {
            path: "patient".into(),
            message: "resourceType is not Patient".into(),
        });
    }
    for (i, r) in resources.iter().enumerate() {
        if r.get("resourceType").and_then(Value::as_str).is_none() {
            return Err(CcdaError::Fhir {
                path: format!("resources[{i}]"),
                message: "not a FHIR resource (no resourceType)".into(),
            });
        }
    }
    let now = match &opts.effective_time {
        Some(t) => ts(t).ok_or_else(|| CcdaError::Fhir {
            path: "CcdOptions.effective_time".into(),
            message: format!("{t:?} is not a FHIR dateTime"),
        })?,
        None => now_ts(),
    };
    let pid = str_of(patient, "id").unwrap_or("");
    let doc_id = uuid_from(&["ccd", pid, &now, &resources.len().to_string()]);
    let managing = patient
        .pointer("/managingOrganization/reference")
        .and_then(Value::as_str)
        .and_then(|r| find_ref(resources, r));
    let org_name = opts
        .custodian_name
        .clone()
        .or_else(|| managing.and_then(|o| str_of(o, "name")).map(str::to_owned))
        .unwrap_or_else(|| "Plexus".to_owned());

    let mut x = Xml::new();
    x.w.write_event(Event::Decl(quick_xml::events::BytesDecl::new(
        "1.0",
        Some("UTF-8"),
        None,
    )))
    .map_err(|e| write_err(&e))?;
    x.start(
        "ClinicalDocument",
        &[
            ("xmlns", "urn:hl7-org:v3"),
            ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
            ("xmlns:sdtc", "urn:hl7-org:sdtc"),
        ],
    )?;
    x.empty("realmCode", &[("code", "US")])?;
    x.empty(
        "typeId",
        &[
            ("root", "2.16.840.1.113883.1.3"),
            ("extension", "POCD_HD000040"),
        ],
    )?;
    x.empty(
        "templateId",
        &[
            ("root", "2.16.840.1.113883.10.20.22.1.1"),
            ("extension", "2015-08-01"),
        ],
    )?;
    x.empty(
        "templateId",
        &[
            ("root", "2.16.840.1.113883.10.20.22.1.2"),
            ("extension", "2015-08-01"),
        ],
    )?;
    x.empty("id", &[("root", &doc_id)])?;
    x.empty(
        "code",
        &[
            ("code", "34133-9"),
            ("codeSystem", "2.16.840.1.113883.6.1"),
            ("codeSystemName", "LOINC"),
            ("displayName", "Summarization of Episode Note"),
        ],
    )?;
    x.text_el(
        "title",
        &[],
        opts.title
            .as_deref()
            .unwrap_or("Continuity of Care Document"),
    )?;
    x.empty("effectiveTime", &[("value", &now)])?;
    x.empty(
        "confidentialityCode",
        &[("code", "N"), ("codeSystem", "2.16.840.1.113883.5.25")],
    )?;
    x.empty("languageCode", &[("code", "en-US")])?;
    record_target(&mut x, patient, managing)?;
    // Author: the software that wrote the document, for its organization.
    x.start("author", &[])?;
    x.empty("time", &[("value", &now)])?;
    x.start("assignedAuthor", &[])?;
    x.empty("id", &[("root", &uuid_from(&["ccd-author", &org_name]))])?;
    x.empty("addr", &[("nullFlavor", "UNK")])?;
    x.empty("telecom", &[("nullFlavor", "UNK")])?;
    x.start("assignedAuthoringDevice", &[])?;
    x.text_el("manufacturerModelName", &[], "Plexus")?;
    x.text_el(
        "softwareName",
        &[],
        concat!("Plexus ccda ", env!("CARGO_PKG_VERSION")),
    )?;
    x.end("assignedAuthoringDevice")?;
    organization(
        &mut x,
        "representedOrganization",
        &org_name,
        opts.custodian_oid.as_deref(),
    )?;
    x.end("assignedAuthor")?;
    x.end("author")?;
    x.start("custodian", &[])?;
    x.start("assignedCustodian", &[])?;
    organization(
        &mut x,
        "representedCustodianOrganization",
        &org_name,
        opts.custodian_oid.as_deref(),
    )?;
    x.end("assignedCustodian")?;
    x.end("custodian")?;
    let (low, high) = sections::time_span(resources);
    x.start("documentationOf", &[])?;
    x.start("serviceEvent", &[("classCode", "PCPR")])?;
    x.start("effectiveTime", &[])?;
    x.empty("low", &[("value", low.as_deref().unwrap_or(&now))])?;
    x.empty("high", &[("value", high.as_deref().unwrap_or(&now))])?;
    x.end("effectiveTime")?;
    x.end("serviceEvent")?;
    x.end("documentationOf")?;
    x.start("component", &[])?;
    x.start("structuredBody", &[])?;
    sections::write_all(&mut x, resources)?;
    x.end("structuredBody")?;
    x.end("component")?;
    x.end("ClinicalDocument")?;
    x.finish()
}

/// The resource a relative reference (`Type/id`) or full URL names.
pub(crate) fn find_ref<'r>(resources: &'r [Value], reference: &str) -> Option<&'r Value> {
    let (rtype, id) = if let Some(id) = reference.strip_prefix("urn:uuid:") {
        (None, id)
    } else {
        let mut parts = reference.rsplitn(3, '/');
        let id = parts.next()?;
        (parts.next(), id)
    };
    resources.iter().find(|r| {
        str_of(r, "id") == Some(id) && rtype.is_none_or(|t| str_of(r, "resourceType") == Some(t))
    })
}

fn organization(x: &mut Xml, tag: &str, name: &str, oid: Option<&str>) -> Res {
    x.start(tag, &[])?;
    match oid {
        Some(o) => x.empty("id", &[("root", o)])?,
        None => x.empty("id", &[("nullFlavor", "UNK")])?,
    }
    x.text_el("name", &[], name)?;
    x.empty("telecom", &[("nullFlavor", "UNK")])?;
    x.empty("addr", &[("nullFlavor", "UNK")])?;
    x.end(tag)
}

#[allow(clippy::too_many_lines)] // recordTarget in the schema's order
fn record_target(x: &mut Xml, p: &Value, managing: Option<&Value>) -> Res {
    x.start("recordTarget", &[])?;
    x.start("patientRole", &[])?;
    identifiers(x, p, "id")?;
    let addrs = p
        .get("address")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty());
    match addrs {
        Some(a) => a.iter().try_for_each(|a| address(x, a))?,
        None => x.empty("addr", &[("nullFlavor", "UNK")])?,
    }
    let tels = p
        .get("telecom")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty());
    match tels {
        Some(t) => t.iter().try_for_each(|t| telecom(x, t))?,
        None => x.empty("telecom", &[("nullFlavor", "UNK")])?,
    }
    x.start("patient", &[])?;
    let names = p
        .get("name")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty());
    match names {
        Some(n) => n.iter().try_for_each(|n| name(x, n))?,
        None => x.empty("name", &[("nullFlavor", "UNK")])?,
    }
    let g = match str_of(p, "gender") {
        Some("male") => Some(("M", "Male")),
        Some("female") => Some(("F", "Female")),
        Some("other") => Some(("UN", "Undifferentiated")),
        _ => None,
    };
    match g {
        Some((code, display)) => x.empty(
            "administrativeGenderCode",
            &[
                ("code", code),
                ("codeSystem", "2.16.840.1.113883.5.1"),
                ("displayName", display),
            ],
        )?,
        None => x.empty("administrativeGenderCode", &[("nullFlavor", "UNK")])?,
    }
    match str_of(p, "birthDate").and_then(ts) {
        Some(b) => x.empty("birthTime", &[("value", &b)])?,
        None => x.empty("birthTime", &[("nullFlavor", "UNK")])?,
    }
    if let Some(d) = p.get("deceasedBoolean").and_then(Value::as_bool) {
        x.empty(
            "sdtc:deceasedInd",
            &[("value", if d { "true" } else { "false" })],
        )?;
    } else if let Some(t) = str_of(p, "deceasedDateTime").and_then(ts) {
        x.empty("sdtc:deceasedInd", &[("value", "true")])?;
        x.empty("sdtc:deceasedTime", &[("value", &t)])?;
    }
    if let Some(m) = p.get("maritalStatus") {
        types::cd(x, "maritalStatusCode", m, &[], types::CdMode::Plain)?;
    }
    race_ethnicity(
        x,
        p,
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
        "raceCode",
        "sdtc:raceCode",
    )?;
    race_ethnicity(
        x,
        p,
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
        "ethnicGroupCode",
        "sdtc:ethnicGroupCode",
    )?;
    for c in p
        .get("communication")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(code) = c.pointer("/language/coding/0/code").and_then(Value::as_str) else {
            continue;
        };
        x.start("languageCommunication", &[])?;
        x.empty("languageCode", &[("code", code)])?;
        if let Some(pref) = c.get("preferred").and_then(Value::as_bool) {
            x.empty(
                "preferenceInd",
                &[("value", if pref { "true" } else { "false" })],
            )?;
        }
        x.end("languageCommunication")?;
    }
    x.end("patient")?;
    if let Some(o) = managing {
        x.start("providerOrganization", &[])?;
        identifiers(x, o, "id")?;
        if let Some(n) = str_of(o, "name") {
            x.text_el("name", &[], n)?;
        }
        for t in o
            .get("telecom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            telecom(x, t)?;
        }
        for a in o
            .get("address")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            address(x, a)?;
        }
        x.end("providerOrganization")?;
    }
    x.end("patientRole")?;
    x.end("recordTarget")
}

fn race_ethnicity(x: &mut Xml, p: &Value, url: &str, first: &str, more: &str) -> Res {
    let ext = p
        .get("extension")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|e| str_of(e, "url") == Some(url)));
    let codings: Vec<&Value> = ext
        .and_then(|e| e.get("extension"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| matches!(str_of(s, "url"), Some("ombCategory" | "detailed")))
        .filter_map(|s| s.get("valueCoding"))
        .collect();
    let mut wrote = false;
    for c in &codings {
        let Some(code) = str_of(c, "code") else {
            continue;
        };
        let tag = if wrote { more } else { first };
        if str_of(c, "system") == Some("http://terminology.hl7.org/CodeSystem/v3-NullFlavor") {
            if !wrote {
                x.empty(tag, &[("nullFlavor", code)])?;
                wrote = true;
            }
            continue;
        }
        let mut attrs = vec![
            ("code", code),
            ("codeSystem", "2.16.840.1.113883.6.238"),
            ("codeSystemName", "CDC Race and Ethnicity"),
        ];
        if let Some(d) = str_of(c, "display") {
            attrs.push(("displayName", d));
        }
        x.empty(tag, &attrs)?;
        wrote = true;
    }
    if !wrote {
        x.empty(first, &[("nullFlavor", "UNK")])?;
    }
    Ok(())
}

/// The current time as a CDA TS in UTC (`YYYYMMDDHHMMSS+0000`).
fn now_ts() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}+0000",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_is_a_ts() {
        let t = super::now_ts();
        assert_eq!(t.len(), 19);
        assert!(t.starts_with("20"));
        assert!(t.ends_with("+0000"));
    }
}
