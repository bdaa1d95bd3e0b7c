//! # ccda — C-CDA R2.1 ↔ FHIR R4, without IO
//!
//! Two conversions, both pure functions of their input:
//!
//! - [`to_fhir`] reads a C-CDA document (CCD, Discharge Summary, Referral Note, Progress Note,
//!   any CDA R2 document with a `recordTarget`) and gives a FHIR R4 [`Bundle`](BundleType):
//!   a `document` Bundle (Composition first, for viewing) or a `transaction` Bundle (PUTs with
//!   deterministic ids, for loading into a server). The header becomes Composition, Patient,
//!   Practitioner (PractitionerRole with an organization), Device and Organization; the
//!   sections' coded entries become AllergyIntolerance, Condition,
//!   MedicationStatement/MedicationRequest, Immunization,
//!   Observation (results, vital signs, social history) with DiagnosticReport for result
//!   organizers, Procedure and Encounter. Code systems are mapped from OIDs to FHIR URIs; each
//!   section's narrative is kept as the Composition section's XHTML. What is not mapped is
//!   listed in [`Conversion::unmapped`], never dropped silently.
//! - [`to_ccd`] writes a C-CDA R2.1 Continuity of Care Document from one patient's FHIR
//!   resources (what `Patient/[id]/$everything` returns): US Realm header, and the nine CCD
//!   sections with narrative tables and coded entries.
//!
//! The XML is read in one pass with quick-xml's reader into a small element tree that borrows
//! names, attribute values and text from the input, and written with quick-xml's writer; the
//! JSON is `serde_json::Value`.
//!
//! ```
//! let xml = br#"<ClinicalDocument xmlns="urn:hl7-org:v3">
//!   <templateId root="2.16.840.1.113883.10.20.22.1.2"/>
//!   <id root="2.16.840.1.113883.19.5" extension="doc-1"/>
//!   <code code="34133-9" codeSystem="2.16.840.1.113883.6.1"/>
//!   <effectiveTime value="20240102"/>
//!   <recordTarget><patientRole><id root="2.16.840.1.113883.19.5" extension="MRN1"/>
//!     <patient><name><given>Ada</given><family>Lovelace</family></name>
//!       <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
//!       <birthTime value="19701231"/></patient></patientRole></recordTarget>
//!   <author><time value="20240102"/><assignedAuthor><id root="2.16.840.1.113883.4.6" extension="1234567893"/>
//!     <assignedPerson><name><family>Smith</family></name></assignedPerson></assignedAuthor></author>
//! </ClinicalDocument>"#;
//! let conversion = ccda::to_fhir(xml, &ccda::Options::default())?;
//! let bundle = &conversion.bundle;
//! assert_eq!(bundle["type"], "document");
//! assert_eq!(bundle["entry"][0]["resource"]["resourceType"], "Composition");
//! let patient = &bundle["entry"][1]["resource"];
//! assert_eq!(patient["birthDate"], "1970-12-31");
//!
//! // And back: a CCD from the patient and the other resources.
//! let resources: Vec<_> = bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect();
//! let ccd = ccda::to_ccd(patient, &resources, &ccda::CcdOptions::default())?;
//! assert!(ccd.contains("<templateId root=\"2.16.840.1.113883.10.20.22.1.2\" extension=\"2015-08-01\"/>"));
//! # Ok::<(), ccda::CcdaError>(())
//! ```

#![forbid(unsafe_code)]

pub mod codes;
mod ids;
mod to_ccd;
mod to_fhir;
mod xml;

use serde_json::Value;

pub use to_ccd::{CcdOptions, to_ccd};
pub use to_fhir::to_fhir;

/// Which kind of Bundle [`to_fhir`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BundleType {
    /// A FHIR document: Composition first, references as `urn:uuid:` full URLs.
    #[default]
    Document,
    /// A transaction of `PUT Type/id` entries with deterministic ids, references as `Type/id`:
    /// loading the same document twice updates the same resources.
    Transaction,
}

/// Options of [`to_fhir`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The kind of Bundle to make.
    pub bundle_type: BundleType,
    /// The UTC offset (`-05:00`, `Z`) given to CDA times that have a time of day but no zone.
    /// FHIR needs a zone once there is a time; without this option such times keep only their
    /// date.
    pub default_offset: Option<String>,
}

/// The result of [`to_fhir`].
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    /// The FHIR R4 Bundle.
    pub bundle: Value,
    /// Content of the document that has no place in the Bundle's coded resources (sections
    /// with entries of unknown templates, planned activities, unknown nested entries…), in
    /// document order. Narrative is never listed: every section's text is in the Composition.
    pub unmapped: Vec<Unmapped>,
}

/// One part of the document that was not converted to a coded resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// The element's path (`/ClinicalDocument/component/structuredBody/component[4]/section`).
    pub path: String,
    /// The 1-based line of the element's start tag.
    pub line: usize,
    /// What it is: element name, templateId roots and code (`observation 2.16.840.1.113883.10.20.22.4.69 code=...`).
    pub what: String,
    /// Why it was not mapped.
    pub reason: String,
}

/// Why a conversion failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CcdaError {
    /// The input is not well-formed XML (or not UTF-8).
    #[error("not well-formed XML at line {line}: {message}")]
    Xml {
        /// 1-based line.
        line: usize,
        /// What the XML reader found.
        message: String,
    },
    /// The root element is not a CDA `ClinicalDocument`.
    #[error(
        "line {line}: the root element is <{found}>, not a CDA <ClinicalDocument> in namespace urn:hl7-org:v3"
    )]
    NotClinicalDocument {
        /// The root element's name (and namespace when it is another one).
        found: String,
        /// 1-based line of the root element.
        line: usize,
    },
    /// A required element is missing or unusable.
    #[error("{path} (line {line}): {message}")]
    Invalid {
        /// The path of the element that lacks it (or of the element itself).
        path: String,
        /// 1-based line of that element.
        line: usize,
        /// What is wrong (`required element recordTarget is missing`).
        message: String,
    },
    /// The FHIR input of [`to_ccd`] cannot make a CCD.
    #[error("FHIR input {path}: {message}")]
    Fhir {
        /// Where in the input (`Patient`, `resources[3]`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Writing the XML failed.
    #[error("writing the CCD: {0}")]
    Write(String),
}
