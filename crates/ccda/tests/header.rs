//! Header details: an author acting for an organization becomes a PractitionerRole that the
//! Composition references; encounter performers are the Encounter's participants.

mod common;

use ccda::Options;

#[test]
fn author_with_organization_is_a_practitioner_role() {
    let xml = r#"<ClinicalDocument xmlns="urn:hl7-org:v3">
  <id root="1.2.3" extension="d"/><effectiveTime value="20240102"/>
  <recordTarget><patientRole><id root="1.2.3.4" extension="p"/></patientRole></recordTarget>
  <author><time value="20240102"/><assignedAuthor><id root="2.16.840.1.113883.4.6" extension="1234567893"/>
    <code code="207Q00000X" codeSystem="2.16.840.1.113883.6.101" displayName="Family Medicine"/>
    <assignedPerson><name><given>Ann</given><family>Lee</family></name></assignedPerson>
    <representedOrganization><id root="1.2.3.5"/><name>Clinic</name></representedOrganization></assignedAuthor></author>
  <legalAuthenticator><time value="20240103"/><signatureCode code="S"/><assignedEntity><id root="2.16.840.1.113883.4.6" extension="1234567893"/>
    <assignedPerson><name><given>Ann</given><family>Lee</family></name></assignedPerson>
    <representedOrganization><id root="1.2.3.5"/><name>Clinic</name></representedOrganization></assignedEntity></legalAuthenticator>
  <componentOf><encompassingEncounter><id root="1.2.3.6" extension="v1"/>
    <code code="AMB" codeSystem="2.16.840.1.113883.5.4" displayName="ambulatory"/>
    <effectiveTime><low value="20240102"/><high value="20240102"/></effectiveTime>
  </encompassingEncounter></componentOf>
</ClinicalDocument>"#;
    let conv = ccda::to_fhir(xml.as_bytes(), &Options::default()).expect("converts");
    assert!(
        common::validation_errors(&conv.bundle).is_empty(),
        "{:#?}",
        common::validation_errors(&conv.bundle)
    );
    let rs = common::resources(&conv.bundle);
    let of = |t: &str| {
        rs.iter()
            .filter(|r| r["resourceType"] == t)
            .collect::<Vec<_>>()
    };
    let roles = of("PractitionerRole");
    assert_eq!(
        roles.len(),
        1,
        "one role for the author and the legal authenticator"
    );
    assert_eq!(of("Practitioner").len(), 1);
    assert_eq!(of("Organization").len(), 1);
    let role_ref = format!("urn:uuid:{}", roles[0]["id"].as_str().expect("id"));
    let comp = &rs[0];
    assert_eq!(comp["author"][0]["reference"], role_ref.as_str());
    assert_eq!(comp["attester"][0]["party"]["reference"], role_ref.as_str());
    assert_eq!(comp["attester"][0]["time"], "2024-01-03");
    assert_eq!(
        roles[0]["code"][0]["coding"][0]["system"],
        "http://nucc.org/provider-taxonomy"
    );
    assert_eq!(
        roles[0]["practitioner"]["reference"],
        format!(
            "urn:uuid:{}",
            of("Practitioner")[0]["id"].as_str().expect("id")
        )
    );
    assert_eq!(
        roles[0]["organization"]["reference"],
        format!(
            "urn:uuid:{}",
            of("Organization")[0]["id"].as_str().expect("id")
        )
    );
    let enc = of("Encounter")[0];
    assert_eq!(enc["class"]["code"], "AMB");
    assert_eq!(enc["status"], "finished");
    assert_eq!(
        comp["encounter"]["reference"],
        format!("urn:uuid:{}", enc["id"].as_str().expect("id"))
    );
}
