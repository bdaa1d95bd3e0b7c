//! Code systems and identifier systems: C-CDA names them by OID, FHIR by URI.
//!
//! The named table holds the systems C-CDA R2.1 documents use (the FHIR URIs are those of the
//! FHIR R4 terminology page and terminology.hl7.org). Two families follow a rule instead of a
//! row: HL7 v3 code systems (`2.16.840.1.113883.5.*`, listed by name below) become
//! `http://terminology.hl7.org/CodeSystem/v3-Name`, and HL7 v2 tables
//! (`2.16.840.1.113883.12.N`) become `http://terminology.hl7.org/CodeSystem/v2-NNNN`. Any other
//! OID becomes `urn:oid:…`, which FHIR accepts for every system, and comes back unchanged.

/// OID ↔ URI of the named code and identifier systems; the first row of a URI wins when going
/// back to an OID.
const NAMED: &[(&str, &str)] = &[
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
    (
        "2.16.840.1.113883.4.642.3.1",
        "http://hl7.org/fhir/sid/ex-icd-10-procedures",
    ),
    // Identifier systems.
    ("2.16.840.1.113883.4.6", "http://hl7.org/fhir/sid/us-npi"),
    ("2.16.840.1.113883.4.1", "http://hl7.org/fhir/sid/us-ssn"),
    ("2.16.840.1.113883.4.572", "http://hl7.org/fhir/sid/us-mbi"),
];

/// HL7 v3 code systems: the last OID arc under `2.16.840.1.113883.5` and the name used in
/// `http://terminology.hl7.org/CodeSystem/v3-<name>`.
const V3: &[(&str, &str)] = &[
    ("1", "AdministrativeGender"),
    ("2", "MaritalStatus"),
    ("4", "ActCode"),
    ("6", "ActClass"),
    ("7", "ActPriority"),
    ("8", "ActReason"),
    ("14", "ActStatus"),
    ("25", "Confidentiality"),
    ("45", "EntityNameUse"),
    ("50", "Ethnicity"),
    ("83", "ObservationInterpretation"),
    ("85", "orderableDrugForm"),
    ("88", "ParticipationFunction"),
    ("90", "ParticipationType"),
    ("104", "Race"),
    ("110", "RoleClass"),
    ("111", "RoleCode"),
    ("112", "RouteOfAdministration"),
    ("129", "SpecimenType"),
    ("139", "TimingEvent"),
    ("1001", "ActMood"),
    ("1002", "ActRelationshipType"),
    ("1008", "NullFlavor"),
    ("1063", "ObservationValue"),
    ("1064", "ParticipationMode"),
    ("1076", "ReligiousAffiliation"),
    ("1119", "AddressUse"),
];

const V3_OID: &str = "2.16.840.1.113883.5.";
const V3_URI: &str = "http://terminology.hl7.org/CodeSystem/v3-";
const V2_OID: &str = "2.16.840.1.113883.12.";
const V2_URI: &str = "http://terminology.hl7.org/CodeSystem/v2-";

/// The FHIR system URI of a C-CDA code system or identifier root.
pub fn oid_to_uri(oid: &str) -> String {
    let oid = oid.trim();
    if let Some((_, uri)) = NAMED.iter().find(|(o, _)| *o == oid) {
        return (*uri).to_owned();
    }
    if let Some(arc) = oid.strip_prefix(V3_OID)
        && let Some((_, name)) = V3.iter().find(|(a, _)| *a == arc)
    {
        return format!("{V3_URI}{name}");
    }
    if let Some(arc) = oid.strip_prefix(V2_OID)
        && !arc.is_empty()
        && arc.len() <= 4
        && arc.bytes().all(|b| b.is_ascii_digit())
    {
        return format!("{V2_URI}{arc:0>4}");
    }
    format!("urn:oid:{oid}")
}

/// The OID of a FHIR system URI, when there is one (`None` for URIs no OID is known for).
pub fn uri_to_oid(uri: &str) -> Option<String> {
    let uri = uri.trim();
    if let Some(oid) = uri.strip_prefix("urn:oid:") {
        return Some(oid.to_owned());
    }
    if let Some((oid, _)) = NAMED.iter().find(|(_, u)| *u == uri) {
        return Some((*oid).to_owned());
    }
    if let Some(name) = uri.strip_prefix(V3_URI)
        && let Some((arc, _)) = V3.iter().find(|(_, n)| *n == name)
    {
        return Some(format!("{V3_OID}{arc}"));
    }
    if let Some(num) = uri.strip_prefix(V2_URI)
        && !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit())
    {
        let n = num.trim_start_matches('0');
        return Some(format!("{V2_OID}{}", if n.is_empty() { "0" } else { n }));
    }
    None
}

/// A readable name of a code system for `codeSystemName` (C-CDA writes it beside the OID).
pub fn system_name(uri: &str) -> Option<&'static str> {
    Some(match uri {
        "http://snomed.info/sct" => "SNOMED CT",
        "http://loinc.org" => "LOINC",
        "http://www.nlm.nih.gov/research/umls/rxnorm" => "RxNorm",
        "http://hl7.org/fhir/sid/cvx" => "CVX",
        "http://hl7.org/fhir/sid/icd-10-cm" => "ICD-10-CM",
        "http://hl7.org/fhir/sid/icd-9-cm" => "ICD-9-CM",
        "http://hl7.org/fhir/sid/ndc" => "NDC",
        "http://unitsofmeasure.org" => "UCUM",
        "http://www.ama-assn.org/go/cpt" => "CPT-4",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_systems_map_both_ways() {
        for (oid, uri) in [
            ("2.16.840.1.113883.6.96", "http://snomed.info/sct"),
            ("2.16.840.1.113883.6.1", "http://loinc.org"),
            (
                "2.16.840.1.113883.6.88",
                "http://www.nlm.nih.gov/research/umls/rxnorm",
            ),
            ("2.16.840.1.113883.12.292", "http://hl7.org/fhir/sid/cvx"),
            (
                "2.16.840.1.113883.6.90",
                "http://hl7.org/fhir/sid/icd-10-cm",
            ),
        ] {
            assert_eq!(oid_to_uri(oid), uri);
            assert_eq!(uri_to_oid(uri).as_deref(), Some(oid));
        }
    }

    #[test]
    fn v3_v2_and_unknown_systems_follow_rules() {
        assert_eq!(
            oid_to_uri("2.16.840.1.113883.5.4"),
            "http://terminology.hl7.org/CodeSystem/v3-ActCode"
        );
        assert_eq!(
            uri_to_oid("http://terminology.hl7.org/CodeSystem/v3-ParticipationType").as_deref(),
            Some("2.16.840.1.113883.5.90")
        );
        assert_eq!(
            oid_to_uri("2.16.840.1.113883.12.203"),
            "http://terminology.hl7.org/CodeSystem/v2-0203"
        );
        assert_eq!(
            uri_to_oid("http://terminology.hl7.org/CodeSystem/v2-0203").as_deref(),
            Some("2.16.840.1.113883.12.203")
        );
        assert_eq!(oid_to_uri("1.2.3.4"), "urn:oid:1.2.3.4");
        assert_eq!(uri_to_oid("urn:oid:1.2.3.4").as_deref(), Some("1.2.3.4"));
        assert_eq!(uri_to_oid("http://example.org/codes"), None);
    }
}
