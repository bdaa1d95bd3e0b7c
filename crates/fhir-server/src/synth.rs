//! Synthetic patients for tests and benchmarks: each one a transaction Bundle of a Patient
//! with Encounters, Observations (vital signs and laboratory results), Conditions and
//! MedicationRequests that reference it through `urn:uuid:` full URLs.
//!
//! The data is deterministic: the same seed and patient number give the same Bundle, so a
//! test can know what it will find. Codes are real LOINC, SNOMED CT, RxNorm and UCUM codes.

use serde_json::{Value, json};

/// A small deterministic random number generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Family names (with some accents, for search folding).
pub const FAMILY: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "García",
    "Miller",
    "Davis",
    "Rodríguez",
    "Martínez",
    "Hernández",
    "López",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Pérez",
    "Thompson",
    "White",
    "Harris",
    "Sánchez",
    "Clark",
    "Ramírez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
];

/// Given names.
pub const GIVEN: &[&str] = &[
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Nancy",
    "Daniel",
    "Lisa",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "José",
    "Zoë",
    "Renée",
    "Björn",
    "Chloé",
];

const CITIES: &[(&str, &str, &str)] = &[
    ("Boston", "MA", "02115"),
    ("Springfield", "IL", "62701"),
    ("Madison", "WI", "53703"),
    ("Austin", "TX", "78701"),
    ("Portland", "OR", "97201"),
    ("Denver", "CO", "80202"),
];

/// (LOINC code, display, UCUM unit, low, high) of the vital signs generated.
const VITALS: &[(&str, &str, &str, f64, f64)] = &[
    ("8867-4", "Heart rate", "/min", 50.0, 120.0),
    ("29463-7", "Body weight", "kg", 45.0, 130.0),
    ("8302-2", "Body height", "cm", 150.0, 200.0),
    ("8310-5", "Body temperature", "Cel", 36.0, 39.5),
    ("9279-1", "Respiratory rate", "/min", 10.0, 28.0),
];

/// (LOINC code, display, UCUM unit, low, high) of the laboratory results generated.
const LABS: &[(&str, &str, &str, f64, f64)] = &[
    (
        "2339-0",
        "Glucose [Mass/volume] in Blood",
        "mg/dL",
        60.0,
        250.0,
    ),
    (
        "2093-3",
        "Cholesterol [Mass/volume] in Serum or Plasma",
        "mg/dL",
        120.0,
        300.0,
    ),
    (
        "718-7",
        "Hemoglobin [Mass/volume] in Blood",
        "g/dL",
        9.0,
        18.0,
    ),
    (
        "2160-0",
        "Creatinine [Mass/volume] in Serum or Plasma",
        "mg/dL",
        0.5,
        2.5,
    ),
    (
        "4548-4",
        "Hemoglobin A1c/Hemoglobin.total in Blood",
        "%",
        4.5,
        11.0,
    ),
];

/// (SNOMED CT code, display) of the conditions generated.
const CONDITIONS: &[(&str, &str)] = &[
    ("44054006", "Diabetes mellitus type 2"),
    ("38341003", "Hypertensive disorder"),
    ("195967001", "Asthma"),
    ("55822004", "Hyperlipidemia"),
    ("40055000", "Chronic sinusitis"),
    ("271737000", "Anemia"),
];

/// (RxNorm code, display) of the medications generated.
const MEDICATIONS: &[(&str, &str)] = &[
    (
        "860975",
        "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
    ),
    ("314076", "Lisinopril 10 MG Oral Tablet"),
    ("617312", "Atorvastatin 10 MG Oral Tablet"),
    (
        "745679",
        "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
    ),
    ("310965", "Ibuprofen 200 MG Oral Tablet"),
];

/// The medical record number of synthetic patient `n`.
pub fn mrn(n: u64) -> String {
    format!("MRN{n:08}")
}

/// The identifier system of synthetic MRNs.
pub const MRN_SYSTEM: &str = "urn:oid:2.16.840.1.113883.19.5.99999.1";

fn uuid(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "urn:uuid:{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// A date `days` days after 2015-01-01 (`YYYY-MM-DD`).
fn date_after_2015(days: u64) -> String {
    date_after(2015, days)
}

/// A date `days` days after January 1st of `year` (`YYYY-MM-DD`).
fn date_after(year: i32, days: u64) -> String {
    let t = chrono::NaiveDate::from_ymd_opt(year, 1, 1)
        .and_then(|d| d.checked_add_days(chrono::Days::new(days)))
        .unwrap_or_default();
    t.format("%Y-%m-%d").to_string()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The Patient of [`patient_bundle`]`(seed, n)` alone (its first entry's resource), without
/// generating the rest of the Bundle.
pub fn patient(seed: u64, n: u64) -> Value {
    let mut rng = Rng::new(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let _patient_url = uuid(&mut rng);
    patient_of(&mut rng, n)
}

/// The Patient of synthetic patient `n`, drawing from `rng` as [`patient_bundle`] does.
fn patient_of(rng: &mut Rng, n: u64) -> Value {
    let family = *rng.pick(FAMILY);
    let given = *rng.pick(GIVEN);
    let (city, state, postal) = *rng.pick(CITIES);
    let birth = date_after(1940, rng.below(365 * 65));
    let gender = *rng.pick(&["male", "female", "other", "unknown"]);
    json!({
        "resourceType": "Patient",
        "identifier": [{
            "use": "usual",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
            "system": MRN_SYSTEM,
            "value": mrn(n),
        }],
        "active": true,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "telecom": [{"system": "phone", "value": format!("555-{:04}", rng.below(10_000)), "use": "home"}],
        "gender": gender,
        "birthDate": birth,
        "address": [{"line": [format!("{} Main St", 1 + rng.below(999))], "city": city, "state": state, "postalCode": postal, "country": "US"}],
    })
}

/// The transaction Bundle of synthetic patient `n` (seeded by `seed`): 1 Patient, 1–3
/// Encounters, 2–4 Observations per Encounter, 0–2 Conditions and 0–2 MedicationRequests.
pub fn patient_bundle(seed: u64, n: u64) -> Value {
    let mut rng = Rng::new(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let patient_url = uuid(&mut rng);
    let patient = patient_of(&mut rng, n);
    let mut entries = vec![entry(&patient_url, patient)];
    for _ in 0..=rng.below(3) {
        let enc_url = uuid(&mut rng);
        let day = rng.below(365 * 11);
        let date = date_after_2015(day);
        let inpatient = rng.below(4) == 0;
        let (class_code, class_display) = if inpatient {
            ("IMP", "inpatient encounter")
        } else {
            ("AMB", "ambulatory")
        };
        entries.push(entry(
            &enc_url,
            json!({
                "resourceType": "Encounter",
                "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5.99999.2", "value": format!("V{n:08}-{day}")}],
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class_code, "display": class_display},
                "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "185349003", "display": "Encounter for check up"}]}],
                "subject": {"reference": patient_url},
                "period": {"start": format!("{date}T09:00:00Z"), "end": format!("{date}T09:30:00Z")},
            }),
        ));
        for k in 0..2 + rng.below(3) {
            let lab = k % 2 == 1;
            let (code, display, unit, low, high) = *rng.pick(if lab { LABS } else { VITALS });
            let value = round1(
                low + (high - low)
                    * (f64::from(u32::try_from(rng.below(1000)).unwrap_or(0)) / 1000.0),
            );
            let category = if lab { "laboratory" } else { "vital-signs" };
            entries.push(entry(
                &uuid(&mut rng),
                json!({
                    "resourceType": "Observation",
                    "status": "final",
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
                    "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
                    "subject": {"reference": patient_url},
                    "encounter": {"reference": enc_url},
                    "effectiveDateTime": format!("{date}T09:{:02}:00Z", 5 + k),
                    "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
                }),
            ));
        }
    }
    for _ in 0..rng.below(3) {
        let (code, display) = *rng.pick(CONDITIONS);
        entries.push(entry(
            &uuid(&mut rng),
            json!({
                "resourceType": "Condition",
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}], "text": display},
                "subject": {"reference": patient_url},
                "onsetDateTime": format!("{}T00:00:00Z", date_after_2015(rng.below(365 * 10))),
            }),
        ));
    }
    for _ in 0..rng.below(3) {
        let (code, display) = *rng.pick(MEDICATIONS);
        entries.push(entry(
            &uuid(&mut rng),
            json!({
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code, "display": display}], "text": display},
                "subject": {"reference": patient_url},
                "authoredOn": date_after_2015(rng.below(365 * 11)),
            }),
        ));
    }
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

fn entry(full_url: &str, resource: Value) -> Value {
    let t = resource["resourceType"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut entry = json!({"fullUrl": full_url, "request": {"method": "POST", "url": t}});
    entry["resource"] = resource;
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_are_deterministic_and_reference_their_patient() {
        let a = patient_bundle(7, 3);
        assert_eq!(a, patient_bundle(7, 3));
        assert_ne!(a, patient_bundle(7, 4));
        let entries = a["entry"].as_array().expect("entries");
        let patient_url = entries[0]["fullUrl"].as_str().expect("fullUrl");
        assert_eq!(entries[0]["resource"]["identifier"][0]["value"], mrn(3));
        for e in &entries[1..] {
            assert_eq!(e["resource"]["subject"]["reference"], patient_url);
        }
    }

    #[test]
    fn the_patient_alone_is_the_bundles_first_resource() {
        for n in [0, 1, 17, 999_999] {
            let bundle = patient_bundle(7, n);
            assert_eq!(patient(7, n), bundle["entry"][0]["resource"]);
        }
    }
}
