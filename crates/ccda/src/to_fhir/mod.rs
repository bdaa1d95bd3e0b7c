//! C-CDA → FHIR R4: the document header (Composition, Patient, authors, custodian, encounter)
//! and the Bundle; [`entries`] converts the sections' clinical statements.

mod entries;
pub(crate) mod narrative;
pub(crate) mod types;

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::ids::uuid_from;
use crate::xml::{Doc, El, V3_NS};
use crate::{BundleType, CcdaError, Conversion, Options, Unmapped};
use types::{
    TimeRules, address, concept, contact_point, date, date_time, human_name, identifier,
    identifiers, period, put_array,
};

/// Converts a C-CDA document to a FHIR R4 Bundle (see the crate documentation).
pub fn to_fhir(xml: &[u8], options: &Options) -> Result<Conversion, CcdaError> {
    let xml = xml.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(xml);
    let text = std::str::from_utf8(xml).map_err(|e| {
        let line = 1 + memchr::memchr_iter(b'\n', &xml[..e.valid_up_to()]).count();
        CcdaError::Xml {
            line,
            message: "the document is not UTF-8 (C-CDA documents are UTF-8)".into(),
        }
    })?;
    let doc = Doc::parse(text)?;
    let root = doc.root();
    if root.name() != "ClinicalDocument" || doc.root_namespace() != Some(V3_NS) {
        let found = match doc.root_namespace() {
            Some(ns) if ns != V3_NS => format!("{} xmlns=\"{ns}\"", root.name()),
            None if root.name() == "ClinicalDocument" => "ClinicalDocument (no namespace)".into(),
            _ => root.name().to_owned(),
        };
        return Err(CcdaError::NotClinicalDocument {
            found,
            line: root.line(),
        });
    }
    check_uids(root)?;
    let seed = match root.child("id").and_then(|id| id_key(id)) {
        Some(k) => k,
        None => uuid_from(&[text]),
    };
    let mut ctx = Ctx {
        rules: TimeRules {
            default_offset: options.default_offset.as_deref(),
        },
        mode: options.bundle_type,
        seed,
        used: HashSet::new(),
        keyed: HashMap::new(),
        resources: Vec::new(),
        unmapped: Vec::new(),
        patient: String::new(),
    };
    let composition = header(&mut ctx, root)?;
    Ok(ctx.finish(root, composition))
}

/// `root|extension` of an II, the key of deterministic ids.
pub(crate) fn id_key(id: El<'_, '_>) -> Option<String> {
    let root = id.attr_nb("root")?;
    Some(match id.attr_nb("extension") {
        Some(ext) => types::concat(&[root, "|", ext]),
        None => root.to_owned(),
    })
}

/// `urn:uuid:` and the id, the fullUrl of a Bundle entry.
fn urn_uuid(id: &str) -> String {
    let mut r = String::with_capacity(9 + id.len());
    r.push_str("urn:uuid:");
    r.push_str(id);
    r
}

/// `{"reference": r}`, built directly rather than serialised from a copy by `json!`.
pub(crate) fn reference_to(r: String) -> Value {
    let mut m = Map::new();
    m.insert("reference".into(), Value::String(r));
    Value::Object(m)
}

/// The state of one conversion.
pub(crate) struct Ctx<'o> {
    pub rules: TimeRules<'o>,
    mode: BundleType,
    seed: String,
    used: HashSet<String>,
    /// Resources that are made once per key (authors, organizations): key → reference.
    keyed: HashMap<String, String>,
    /// (type, id, resource) in Bundle order.
    resources: Vec<(&'static str, String, Map<String, Value>)>,
    pub unmapped: Vec<Unmapped>,
    /// The reference to the Patient.
    pub patient: String,
}

impl Ctx<'_> {
    /// A new deterministic id for a resource made from `el`: from its first CDA `id` when that
    /// was not used yet, else from its position in the document.
    pub fn new_id(&mut self, rtype: &str, el: El<'_, '_>) -> String {
        if let Some(k) = el.child("id").and_then(id_key) {
            let id = uuid_from(&[rtype, &k]);
            if self.used.insert(id.clone()) {
                return id;
            }
        }
        let ord = el.ordinal().to_string();
        let mut id = uuid_from(&[&self.seed, rtype, &ord]);
        let mut n = 0u32;
        while !self.used.insert(id.clone()) {
            n += 1;
            id = uuid_from(&[&self.seed, rtype, &ord, &n.to_string()]);
        }
        id
    }

    /// The reference to a resource in this Bundle.
    pub fn reference(&self, rtype: &str, id: &str) -> String {
        match self.mode {
            BundleType::Document => urn_uuid(id),
            BundleType::Transaction => {
                let mut r = String::with_capacity(rtype.len() + 1 + id.len());
                r.push_str(rtype);
                r.push('/');
                r.push_str(id);
                r
            }
        }
    }

    /// Adds a resource; returns the reference to it.
    pub fn add(&mut self, rtype: &'static str, id: String, mut r: Map<String, Value>) -> String {
        r.insert("resourceType".into(), Value::String(rtype.into()));
        r.insert("id".into(), Value::String(id.clone()));
        let reference = self.reference(rtype, &id);
        self.resources.push((rtype, id, r));
        reference
    }

    /// Records an element that is not converted.
    pub fn unmapped(&mut self, el: El<'_, '_>, reason: impl Into<String>) {
        let mut what = el.name().to_owned();
        for t in el.templates() {
            what.push(' ');
            what.push_str(t);
        }
        if let Some(code) = el.child("code") {
            if let Some(c) = code.attr_nb("code") {
                what.push_str(" code=");
                what.push_str(c);
            }
            if let Some(d) = code.attr_nb("displayName") {
                what.push_str(" (");
                what.push_str(d);
                what.push(')');
            }
        }
        self.unmapped.push(Unmapped {
            path: el.path(),
            line: el.line(),
            what,
            reason: reason.into(),
        });
    }

    /// `{"reference": …}` to the Patient.
    pub fn subject(&self) -> Value {
        reference_to(self.patient.clone())
    }

    fn finish(self, root: El<'_, '_>, composition: Map<String, Value>) -> Conversion {
        let mut entries = Vec::with_capacity(self.resources.len() + 1);
        let comp_id = uuid_from(&[&self.seed, "Composition"]);
        let mut all = Vec::with_capacity(self.resources.len() + 1);
        let mut composition = composition;
        composition.insert("resourceType".into(), Value::String("Composition".into()));
        composition.insert("id".into(), Value::String(comp_id.clone()));
        all.push(("Composition", comp_id, composition));
        all.extend(self.resources);
        for (rtype, id, r) in all {
            let mut e = Map::new();
            e.insert("fullUrl".into(), Value::String(urn_uuid(&id)));
            e.insert("resource".into(), Value::Object(r));
            if self.mode == BundleType::Transaction {
                e.insert(
                    "request".into(),
                    json!({"method": "PUT", "url": format!("{rtype}/{id}")}),
                );
            }
            entries.push(Value::Object(e));
        }
        let mut b = Map::new();
        b.insert("resourceType".into(), Value::String("Bundle".into()));
        b.insert(
            "id".into(),
            Value::String(uuid_from(&[&self.seed, "Bundle"])),
        );
        match self.mode {
            BundleType::Document => {
                b.insert("type".into(), Value::String("document".into()));
                let ident = root
                    .child("id")
                    .and_then(identifier)
                    .unwrap_or_else(|| json!({"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{}", uuid_from(&[&self.seed, "Bundle"]))}));
                b.insert("identifier".into(), ident);
                if let Some(t) = root
                    .child("effectiveTime")
                    .and_then(|e| e.attr_nb("value"))
                    .and_then(|v| date_time(v, self.rules))
                    .filter(|t| t.contains('T'))
                {
                    b.insert("timestamp".into(), Value::String(t));
                }
            }
            BundleType::Transaction => {
                b.insert("type".into(), Value::String("transaction".into()));
            }
        }
        b.insert("entry".into(), Value::Array(entries));
        Conversion {
            bundle: Value::Object(b),
            unmapped: self.unmapped,
        }
    }
}

/// Every `root` (of an instance identifier) and `codeSystem` in the document is a UID: an OID,
/// a UUID or an RUID, so letters, digits, dots and hyphens only. They become FHIR URIs
/// (`urn:oid:…`, `urn:uuid:…`), which cannot hold anything else; a document with another value
/// there is refused, naming the element, rather than converted with a system that is not one.
fn check_uids(root: El<'_, '_>) -> Result<(), CcdaError> {
    let mut stack = vec![root];
    while let Some(el) = stack.pop() {
        for name in ["root", "codeSystem"] {
            if let Some(v) = el.attr(name).map(str::trim)
                && !v.is_empty()
                && !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return Err(invalid(
                    el,
                    format!("{name} {v:?} is not a UID (an OID, UUID or RUID)"),
                ));
            }
        }
        stack.extend(el.children());
    }
    Ok(())
}

fn invalid(el: El<'_, '_>, message: impl Into<String>) -> CcdaError {
    CcdaError::Invalid {
        path: el.path(),
        line: el.line(),
        message: message.into(),
    }
}

/// The header, then the body; returns the Composition.
#[allow(clippy::too_many_lines)] // the header elements in document order
fn header(ctx: &mut Ctx<'_>, root: El<'_, '_>) -> Result<Map<String, Value>, CcdaError> {
    let mut targets = root.children_named("recordTarget");
    let target = targets
        .next()
        .ok_or_else(|| invalid(root, "required element recordTarget is missing"))?;
    let role = target
        .child("patientRole")
        .ok_or_else(|| invalid(target, "required element patientRole is missing"))?;
    for other in targets {
        ctx.unmapped(other, "only the first recordTarget becomes the Patient");
    }
    patient(ctx, role);

    let mut comp = Map::new();
    if let Some(i) = root.child("id").and_then(identifier) {
        comp.insert("identifier".into(), i);
    }
    comp.insert("status".into(), Value::String("final".into()));
    comp.insert("type".into(), types::concept_or_absent(root.child("code")));
    comp.insert("subject".into(), ctx.subject());
    let time = root.child("effectiveTime");
    match time
        .and_then(|t| t.attr_nb("value"))
        .and_then(|v| date_time(v, ctx.rules))
    {
        Some(t) => comp.insert("date".into(), Value::String(t)),
        None => comp.insert(
            "_date".into(),
            types::absent(time.and_then(|t| t.attr("nullFlavor"))),
        ),
    };
    let mut authors = Vec::new();
    for a in root.children_named("author") {
        if let Some(r) = author(ctx, a) {
            authors.push(reference_to(r));
        }
    }
    if authors.is_empty() {
        // Composition.author is required; CDA requires an author too.
        authors.push(json!({"extension": [{"url": types::DAR, "valueCode": "unknown"}]}));
    }
    comp.insert("author".into(), Value::Array(authors));
    let title = root
        .child("title")
        .and_then(|t| t.deep_text())
        .or_else(|| {
            root.child("code")
                .and_then(|c| c.attr_nb("displayName"))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Clinical document".to_owned());
    comp.insert("title".into(), Value::String(title));
    if let Some(c) = root
        .child("confidentialityCode")
        .and_then(|c| c.attr_nb("code"))
        && matches!(c, "U" | "L" | "M" | "N" | "R" | "V")
    {
        comp.insert("confidentiality".into(), Value::String(c.into()));
    }
    if let Some(la) = root.child("legalAuthenticator")
        && let Some(r) = la
            .child("assignedEntity")
            .and_then(|e| practitioner_in_role(ctx, e))
    {
        let mut att = Map::new();
        att.insert("mode".into(), Value::String("legal".into()));
        if let Some(t) = la
            .child("time")
            .and_then(|t| t.attr_nb("value"))
            .and_then(|v| date_time(v, ctx.rules))
        {
            att.insert("time".into(), Value::String(t));
        }
        att.insert("party".into(), reference_to(r));
        comp.insert("attester".into(), Value::Array(vec![Value::Object(att)]));
    }
    if let Some(org) = root.at("custodian/assignedCustodian/representedCustodianOrganization")
        && let Some(r) = organization(ctx, org)
    {
        comp.insert("custodian".into(), reference_to(r));
    }
    if let Some(enc) = root.at("componentOf/encompassingEncounter") {
        let r = entries::encounter(ctx, enc, &mut Vec::new());
        comp.insert("encounter".into(), reference_to(r));
    }
    let mut events = Vec::new();
    for se in root
        .children_named("documentationOf")
        .filter_map(|d| d.child("serviceEvent"))
    {
        let mut ev = Map::new();
        if let Some(c) = se.child("code").and_then(concept) {
            ev.insert("code".into(), Value::Array(vec![c]));
        }
        if let Some(p) = se.child("effectiveTime").and_then(|t| period(t, ctx.rules)) {
            ev.insert("period".into(), p);
        }
        if !ev.is_empty() {
            events.push(Value::Object(ev));
        }
    }
    put_array(&mut comp, "event", events);

    let mut sections = Vec::new();
    if let Some(body) = root.child("component") {
        if let Some(sb) = body.child("structuredBody") {
            for c in sb.children_named("component") {
                if let Some(sec) = c.child("section") {
                    sections.push(entries::section(ctx, sec, 0));
                }
            }
        } else if let Some(nxb) = body.child("nonXMLBody") {
            sections.push(entries::non_xml_body(ctx, root, nxb));
        }
    }
    put_array(&mut comp, "section", sections);
    Ok(comp)
}

#[allow(clippy::too_many_lines)] // one Patient element after the other
fn patient(ctx: &mut Ctx<'_>, role: El<'_, '_>) {
    let id = ctx.new_id("Patient", role);
    ctx.patient = ctx.reference("Patient", &id);
    let mut p = Map::new();
    put_array(&mut p, "identifier", identifiers(role));
    let pat = role.child("patient");
    if let Some(pat) = pat {
        put_array(
            &mut p,
            "name",
            pat.children_named("name").filter_map(human_name).collect(),
        );
    }
    put_array(
        &mut p,
        "telecom",
        role.children_named("telecom")
            .filter_map(contact_point)
            .collect(),
    );
    if let Some(pat) = pat {
        if let Some(g) = pat.child("administrativeGenderCode") {
            let gender = match (g.attr_nb("code"), g.attr("nullFlavor")) {
                (Some("M"), _) => Some("male"),
                (Some("F"), _) => Some("female"),
                (Some("UN"), _) => Some("other"),
                (_, Some(_)) => Some("unknown"),
                _ => None,
            };
            if let Some(gender) = gender {
                p.insert("gender".into(), Value::String(gender.into()));
            }
        }
        if let Some(b) = pat
            .child("birthTime")
            .and_then(|b| b.attr_nb("value"))
            .and_then(date)
        {
            p.insert("birthDate".into(), Value::String(b));
        }
        if let Some(d) = pat
            .child("sdtc:deceasedInd")
            .and_then(|d| d.attr_nb("value"))
        {
            let time = pat
                .child("sdtc:deceasedTime")
                .and_then(|t| t.attr_nb("value"))
                .and_then(|v| date_time(v, ctx.rules));
            match time {
                Some(t) if d == "true" => p.insert("deceasedDateTime".into(), Value::String(t)),
                _ => p.insert("deceasedBoolean".into(), Value::Bool(d == "true")),
            };
        }
    }
    put_array(
        &mut p,
        "address",
        role.children_named("addr").filter_map(address).collect(),
    );
    if let Some(pat) = pat {
        if let Some(m) = pat.child("maritalStatusCode").and_then(concept) {
            p.insert("maritalStatus".into(), m);
        }
        let mut comms = Vec::new();
        for lc in pat.children_named("languageCommunication") {
            let Some(code) = lc.child("languageCode").and_then(|c| c.attr_nb("code")) else {
                continue;
            };
            let mut c = Map::new();
            c.insert(
                "language".into(),
                json!({"coding": [{"system": "urn:ietf:bcp:47", "code": code}]}),
            );
            if let Some(v) = lc.child("preferenceInd").and_then(|p| p.attr_nb("value")) {
                c.insert("preferred".into(), Value::Bool(v == "true"));
            }
            comms.push(Value::Object(c));
        }
        put_array(&mut p, "communication", comms);
        let mut ext = Vec::new();
        if let Some(e) = omb_extension(
            pat,
            &["raceCode", "sdtc:raceCode"],
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
            &["1002-5", "2028-9", "2054-5", "2076-8", "2106-3"],
        ) {
            ext.push(e);
        }
        if let Some(e) = omb_extension(
            pat,
            &["ethnicGroupCode", "sdtc:ethnicGroupCode"],
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
            &["2135-2", "2186-5"],
        ) {
            ext.push(e);
        }
        put_array(&mut p, "extension", ext);
        if pat.child("guardian").is_some() {
            for g in pat.children_named("guardian") {
                ctx.unmapped(g, "guardians are not mapped (Patient.contact)");
            }
        }
    }
    if let Some(org) = role.child("providerOrganization")
        && let Some(r) = organization(ctx, org)
    {
        p.insert("managingOrganization".into(), reference_to(r));
    }
    ctx.add("Patient", id, p);
}

/// The US Core race or ethnicity extension: OMB categories as `ombCategory`, other CDC codes
/// as `detailed`, and the required `text`.
fn omb_extension(pat: El<'_, '_>, names: &[&str], url: &str, omb: &[&str]) -> Option<Value> {
    let mut subs = Vec::new();
    let mut texts = Vec::new();
    for el in pat.children().filter(|c| names.contains(&c.name())) {
        if let Some(nf) = el.attr_nb("nullFlavor")
            && matches!(nf, "UNK" | "ASKU")
        {
            let sub = json!({"url": "ombCategory", "valueCoding": {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": nf}});
            if !subs.contains(&sub) {
                subs.push(sub);
                texts.push(
                    if nf == "UNK" {
                        "Unknown"
                    } else {
                        "Asked but unknown"
                    }
                    .to_owned(),
                );
            }
            continue;
        }
        let Some(code) = el.attr_nb("code") else {
            continue;
        };
        let display = el.attr_nb("displayName");
        let mut coding = Map::new();
        coding.insert(
            "system".into(),
            Value::String("urn:oid:2.16.840.1.113883.6.238".into()),
        );
        coding.insert("code".into(), Value::String(code.into()));
        if let Some(d) = display {
            coding.insert("display".into(), Value::String(d.into()));
        }
        let kind = if omb.contains(&code) {
            "ombCategory"
        } else {
            "detailed"
        };
        let sub = json!({"url": kind, "valueCoding": coding});
        if !subs.contains(&sub) {
            subs.push(sub);
            texts.push(display.unwrap_or(code).to_owned());
        }
    }
    if subs.is_empty() {
        return None;
    }
    subs.push(json!({"url": "text", "valueString": texts.join(", ")}));
    Some(json!({"url": url, "extension": subs}))
}

/// A document or entry author: Practitioner (person) or Device (software), with its
/// organization; returns the reference.
pub(crate) fn author(ctx: &mut Ctx<'_>, a: El<'_, '_>) -> Option<String> {
    let aa = a.child("assignedAuthor")?;
    if aa.child("assignedAuthoringDevice").is_some() {
        return device(ctx, aa);
    }
    practitioner_in_role(ctx, aa)
}

/// A person acting for an organization (`assignedAuthor`/`assignedEntity` with a
/// `representedOrganization`) as a PractitionerRole linking the Practitioner and the
/// Organization, made once per pair; a person without organization is the Practitioner itself.
pub(crate) fn practitioner_in_role(ctx: &mut Ctx<'_>, ae: El<'_, '_>) -> Option<String> {
    let person = practitioner(ctx, ae)?;
    let Some(org) = ae
        .child("representedOrganization")
        .and_then(|o| organization(ctx, o))
    else {
        return Some(person);
    };
    let key = types::concat(&["PractitionerRole|", &person, "|", &org]);
    if let Some(r) = ctx.keyed.get(&key) {
        return Some(r.clone());
    }
    let id = uuid_from(&[&ctx.seed.clone(), &key]);
    ctx.used.insert(id.clone());
    let mut role = Map::new();
    role.insert("practitioner".into(), reference_to(person));
    role.insert("organization".into(), reference_to(org));
    if let Some(c) = ae.child("code").and_then(concept) {
        role.insert("code".into(), Value::Array(vec![c]));
    }
    let r = ctx.add("PractitionerRole", id, role);
    ctx.keyed.insert(key, r.clone());
    Some(r)
}

fn dedupe_key(rtype: &str, el: El<'_, '_>, name: Option<&str>) -> Option<String> {
    let ids: Vec<String> = el.children_named("id").filter_map(id_key).collect();
    if !ids.is_empty() {
        return Some(types::concat(&[rtype, "|", &ids.join(",")]));
    }
    name.map(|n| types::concat(&[rtype, "|name|", n]))
}

/// An assignedEntity/assignedAuthor with a person as a Practitioner (made once per id).
pub(crate) fn practitioner(ctx: &mut Ctx<'_>, ae: El<'_, '_>) -> Option<String> {
    let person = ae.child("assignedPerson");
    let names: Vec<Value> = person
        .map(|p| p.children_named("name").filter_map(human_name).collect())
        .unwrap_or_default();
    let idents = identifiers(ae);
    if names.is_empty() && idents.is_empty() {
        return None;
    }
    let name_key = names.first().map(Value::to_string);
    let key = dedupe_key("Practitioner", ae, name_key.as_deref())?;
    if let Some(r) = ctx.keyed.get(&key) {
        return Some(r.clone());
    }
    let id = uuid_from(&[&ctx.seed.clone(), &key]);
    ctx.used.insert(id.clone());
    let mut p = Map::new();
    put_array(&mut p, "identifier", idents);
    put_array(&mut p, "name", names);
    put_array(
        &mut p,
        "telecom",
        ae.children_named("telecom")
            .filter_map(contact_point)
            .collect(),
    );
    put_array(
        &mut p,
        "address",
        ae.children_named("addr").filter_map(address).collect(),
    );
    let r = ctx.add("Practitioner", id, p);
    ctx.keyed.insert(key, r.clone());
    Some(r)
}

fn device(ctx: &mut Ctx<'_>, aa: El<'_, '_>) -> Option<String> {
    let dev = aa.child("assignedAuthoringDevice")?;
    let model = dev
        .child("manufacturerModelName")
        .and_then(|m| m.deep_text());
    let software = dev.child("softwareName").and_then(|s| s.deep_text());
    let key = dedupe_key("Device", aa, model.as_deref().or(software.as_deref()))?;
    if let Some(r) = ctx.keyed.get(&key) {
        return Some(r.clone());
    }
    let id = uuid_from(&[&ctx.seed.clone(), &key]);
    ctx.used.insert(id.clone());
    let mut d = Map::new();
    put_array(&mut d, "identifier", identifiers(aa));
    let mut names = Vec::new();
    if let Some(m) = &model {
        names.push(json!({"name": m, "type": "model-name"}));
    }
    if let Some(s) = &software {
        names.push(json!({"name": s, "type": "user-friendly-name"}));
    }
    put_array(&mut d, "deviceName", names);
    if let Some(org) = aa.child("representedOrganization")
        && let Some(r) = organization(ctx, org)
    {
        d.insert("owner".into(), reference_to(r));
    }
    let r = ctx.add("Device", id, d);
    ctx.keyed.insert(key, r.clone());
    Some(r)
}

/// An organization (made once per id, or per name when it has no id).
pub(crate) fn organization(ctx: &mut Ctx<'_>, org: El<'_, '_>) -> Option<String> {
    let name = org.children_named("name").find_map(|n| n.deep_text());
    let key = dedupe_key("Organization", org, name.as_deref())?;
    if let Some(r) = ctx.keyed.get(&key) {
        return Some(r.clone());
    }
    let id = uuid_from(&[&ctx.seed.clone(), &key]);
    ctx.used.insert(id.clone());
    let mut o = Map::new();
    put_array(&mut o, "identifier", identifiers(org));
    if let Some(n) = name {
        o.insert("name".into(), Value::String(n));
    }
    put_array(
        &mut o,
        "telecom",
        org.children_named("telecom")
            .filter_map(contact_point)
            .collect(),
    );
    put_array(
        &mut o,
        "address",
        org.children_named("addr").filter_map(address).collect(),
    );
    let r = ctx.add("Organization", id, o);
    ctx.keyed.insert(key, r.clone());
    Some(r)
}

/// A place (participantRole or healthCareFacility/location) as a Location, made once per key.
pub(crate) fn location(ctx: &mut Ctx<'_>, role: El<'_, '_>) -> Option<String> {
    let place = role
        .child("playingEntity")
        .or_else(|| role.child("location"))
        .or_else(|| role.child("place"));
    let name = place
        .and_then(|p| p.child("name"))
        .and_then(|n| n.deep_text());
    let key = dedupe_key("Location", role, name.as_deref())?;
    if let Some(r) = ctx.keyed.get(&key) {
        return Some(r.clone());
    }
    let id = uuid_from(&[&ctx.seed.clone(), &key]);
    ctx.used.insert(id.clone());
    let mut l = Map::new();
    put_array(&mut l, "identifier", identifiers(role));
    if let Some(n) = name {
        l.insert("name".into(), Value::String(n));
    }
    if let Some(c) = role.child("code").and_then(concept) {
        l.insert("type".into(), Value::Array(vec![c]));
    }
    put_array(
        &mut l,
        "telecom",
        role.children_named("telecom")
            .filter_map(contact_point)
            .collect(),
    );
    let addr = role
        .child("addr")
        .or_else(|| place.and_then(|p| p.child("addr")));
    if let Some(a) = addr.and_then(address) {
        l.insert("address".into(), a);
    }
    let r = ctx.add("Location", id, l);
    ctx.keyed.insert(key, r.clone());
    Some(r)
}
