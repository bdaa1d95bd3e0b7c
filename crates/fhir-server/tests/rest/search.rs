//! Search over a small hand-written population: ten patients, their encounters and
//! observations, stored under readable ids (create-on-update) so expectations are plain.

use serde_json::{Value, json};

use crate::common::{TestServer, enc, entries, included, link, match_ids, on_both_backends, set};

on_both_backends!(
    string_search,
    token_search,
    date_search,
    quantity_search,
    reference_search,
    missing_modifier,
    chaining_and_reverse_chaining,
    includes,
    sorting,
    paging_visits_every_match_once,
    totals_summary_elements,
    totals_by_mode,
    id_and_last_updated,
    post_search_and_system_search,
);

const MRN: &str = "urn:oid:1.2.3.4.5";
const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

/// (id, family, given, gender, birthDate, MRN, city)
type PatientRow = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
    Option<&'static str>,
);

const PATIENTS: &[PatientRow] = &[
    (
        "p1",
        "Müller",
        "Hans",
        Some("male"),
        "1970-03-15",
        "1001",
        Some("Berlin"),
    ),
    (
        "p2",
        "Mullins",
        "Anna",
        Some("female"),
        "1985-07-01",
        "1002",
        Some("Boston"),
    ),
    (
        "p3",
        "Smith",
        "John",
        Some("male"),
        "1990-01-20",
        "1003",
        Some("Boston"),
    ),
    (
        "p4",
        "Smithson",
        "Mary",
        Some("female"),
        "1990-06-05",
        "1004",
        Some("Austin"),
    ),
    (
        "p5",
        "García",
        "José",
        Some("male"),
        "2001-12-31",
        "1005",
        Some("Madrid"),
    ),
    (
        "p6",
        "O'Brien",
        "Zoë",
        Some("female"),
        "1955-02-28",
        "1006",
        Some("Dublin"),
    ),
    (
        "p7",
        "Lee",
        "Chen",
        Some("other"),
        "1970-11-02",
        "1007",
        None,
    ),
    (
        "p8",
        "Nguyen",
        "Linh",
        Some("female"),
        "1970",
        "1008",
        Some("Hanoi"),
    ),
    (
        "p9",
        "Brown",
        "Ann-Marie",
        Some("unknown"),
        "1999-05-15",
        "1009",
        Some("Leeds"),
    ),
    (
        "p10",
        "Schmidt",
        "Jürgen",
        None,
        "1962-08-08",
        "1010",
        Some("Hamburg"),
    ),
];

fn patient(row: &PatientRow) -> Value {
    let (id, family, given, gender, birth, mrn, city) = *row;
    let mut p = json!({
        "resourceType": "Patient",
        "id": id,
        "identifier": [{
            "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
            "system": MRN,
            "value": mrn,
        }],
        "name": [{"use": "official", "family": family, "given": [given]}],
        "birthDate": birth,
    });
    if let Some(g) = gender {
        p["gender"] = json!(g);
    }
    if let Some(c) = city {
        p["address"] = json!([{"city": c, "country": "XX"}]);
    }
    if id == "p7" {
        // A second identifier of another type, for :of-type.
        p["identifier"].as_array_mut().expect("array").push(json!({
            "type": {"coding": [{"system": V2_0203, "code": "SS"}]},
            "system": "http://hl7.org/fhir/sid/us-ssn",
            "value": "123-45-6789",
        }));
    }
    if id == "p9" {
        // An identifier without a system, for `|value`.
        p["identifier"]
            .as_array_mut()
            .expect("array")
            .push(json!({"value": "LOCAL-9"}));
    }
    p
}

/// (id, patient, encounter, LOINC code, display, value, unit, effective)
type ObsRow = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
    Option<f64>,
    &'static str,
    &'static str,
);

const OBSERVATIONS: &[ObsRow] = &[
    (
        "g1",
        "p1",
        Some("e1"),
        "2339-0",
        "Glucose [Mass/volume] in Blood",
        Some(95.0),
        "mg/dL",
        "2024-01-10T08:00:00Z",
    ),
    (
        "g2",
        "p1",
        None,
        "2339-0",
        "Glucose [Mass/volume] in Blood",
        Some(150.0),
        "mg/dL",
        "2024-06-10T08:00:00Z",
    ),
    (
        "g3",
        "p3",
        Some("e2"),
        "2339-0",
        "Glucose [Mass/volume] in Blood",
        Some(250.0),
        "mg/dL",
        "2025-02-01T10:00:00Z",
    ),
    (
        "hr1",
        "p3",
        Some("e2"),
        "8867-4",
        "Heart rate",
        Some(72.0),
        "/min",
        "2025-02-01T10:05:00Z",
    ),
    (
        "hr2",
        "p5",
        Some("e3"),
        "8867-4",
        "Heart rate",
        Some(110.0),
        "/min",
        "2023-11-30T23:30:00Z",
    ),
    (
        "chol",
        "p2",
        None,
        "2093-3",
        "Cholesterol [Mass/volume] in Serum or Plasma",
        Some(210.0),
        "mg/dL",
        "2024-06-15",
    ),
    (
        "wt",
        "p4",
        None,
        "29463-7",
        "Body weight",
        Some(70.5),
        "kg",
        "2022-03",
    ),
    (
        "gx",
        "p6",
        None,
        "2339-0",
        "Glucose [Mass/volume] in Blood",
        None,
        "",
        "2024-01-10T09:00:00Z",
    ),
];

fn observation(row: &ObsRow) -> Value {
    let (id, patient, encounter, code, display, value, unit, effective) = *row;
    let mut o = json!({
        "resourceType": "Observation",
        "id": id,
        "status": if value.is_some() { "final" } else { "registered" },
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": effective,
    });
    match value {
        Some(v) => {
            o["valueQuantity"] = json!({"value": v, "unit": unit, "system": UCUM, "code": unit});
        }
        None => {
            o["dataAbsentReason"] = json!({"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                "code": "not-performed",
            }]});
        }
    }
    if let Some(e) = encounter {
        o["encounter"] = json!({"reference": format!("Encounter/{e}")});
    }
    o
}

/// (id, patient, start, end)
const ENCOUNTERS: &[(&str, &str, &str, &str)] = &[
    ("e1", "p1", "2024-01-10T07:45:00Z", "2024-01-10T08:30:00Z"),
    ("e2", "p3", "2025-02-01T09:50:00Z", "2025-02-01T10:30:00Z"),
    ("e3", "p5", "2023-11-30T23:00:00Z", "2023-11-30T23:45:00Z"),
];

fn encounter(row: &(&str, &str, &str, &str)) -> Value {
    let (id, patient, start, end) = *row;
    json!({
        "resourceType": "Encounter",
        "id": id,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": format!("Patient/{patient}")},
        "period": {"start": start, "end": end},
    })
}

/// Stores the population.
async fn load(s: &TestServer) {
    for p in PATIENTS {
        s.put_resource(&patient(p)).await;
    }
    for e in ENCOUNTERS {
        s.put_resource(&encounter(e)).await;
    }
    for o in OBSERVATIONS {
        s.put_resource(&observation(o)).await;
    }
}

/// Asserts the matches of a search (any order).
async fn expect(s: &TestServer, query: &str, ids: &[&str]) {
    let got = s.sorted_ids(&format!("{query}&_count=100")).await;
    assert_eq!(got, set(ids), "{} on {:?}", query, s.backend);
}

async fn string_search(s: &TestServer) {
    load(s).await;
    // Default: starts with, case- and accent-insensitive, on family and given.
    expect(s, "Patient?name=mull", &["p1", "p2"]).await;
    expect(s, "Patient?name=MÜLL", &["p1", "p2"]).await;
    expect(s, "Patient?name=muller", &["p1"]).await;
    expect(s, "Patient?family=garcia", &["p5"]).await;
    expect(s, "Patient?name=jose", &["p5"]).await;
    expect(s, "Patient?name=zoe", &["p6"]).await;
    expect(s, "Patient?name=ann", &["p2", "p9"]).await;
    expect(s, "Patient?given=jurgen", &["p10"]).await;
    expect(s, "Patient?name=smith", &["p3", "p4"]).await;
    // Not a substring match by default.
    expect(s, "Patient?name=mith", &[]).await;
    // :exact is case- and accent-sensitive and whole-string.
    expect(s, "Patient?name:exact=Müller", &["p1"]).await;
    expect(s, "Patient?name:exact=Muller", &[]).await;
    expect(s, "Patient?name:exact=müller", &[]).await;
    expect(s, "Patient?family:exact=Smith", &["p3"]).await;
    // :contains anywhere.
    expect(s, "Patient?name:contains=mith", &["p3", "p4"]).await;
    expect(s, "Patient?family:contains=ULL", &["p1", "p2"]).await;
    // OR within a parameter, AND across parameters.
    expect(s, "Patient?name=lee,nguyen", &["p7", "p8"]).await;
    expect(s, "Patient?name=smith&name=mary", &["p4"]).await;
    // Address parts.
    expect(s, "Patient?address-city=boston", &["p2", "p3"]).await;
    expect(s, "Patient?address=dub", &["p6"]).await;
    // Special characters in values are taken literally.
    expect(s, &format!("Patient?name={}", enc("o'brien")), &["p6"]).await;
    expect(s, &format!("Patient?name={}", enc("%")), &[]).await;
    expect(s, &format!("Patient?name:contains={}", enc("_")), &[]).await;
}

async fn token_search(s: &TestServer) {
    load(s).await;
    expect(s, "Patient?gender=male", &["p1", "p3", "p5"]).await;
    expect(s, "Patient?gender=male,other", &["p1", "p3", "p5", "p7"]).await;
    // :not includes resources without a value.
    expect(
        s,
        "Patient?gender:not=male",
        &["p2", "p4", "p6", "p7", "p8", "p9", "p10"],
    )
    .await;
    expect(
        s,
        &format!("Patient?identifier={}", enc(&format!("{MRN}|1001"))),
        &["p1"],
    )
    .await;
    expect(s, "Patient?identifier=1003", &["p3"]).await;
    expect(
        s,
        &format!("Patient?identifier={}", enc("http://other|1003")),
        &[],
    )
    .await;
    // `|code`: no system.
    expect(
        s,
        &format!("Patient?identifier={}", enc("|LOCAL-9")),
        &["p9"],
    )
    .await;
    expect(s, &format!("Patient?identifier={}", enc("|1001")), &[]).await;
    // `system|`: any code of the system.
    expect(
        s,
        &format!(
            "Patient?identifier={}",
            enc("http://hl7.org/fhir/sid/us-ssn|")
        ),
        &["p7"],
    )
    .await;
    // :of-type.
    expect(
        s,
        &format!(
            "Patient?identifier:of-type={}",
            enc(&format!("{V2_0203}|MR|1001"))
        ),
        &["p1"],
    )
    .await;
    expect(
        s,
        &format!(
            "Patient?identifier:of-type={}",
            enc(&format!("{V2_0203}|SS|123-45-6789"))
        ),
        &["p7"],
    )
    .await;
    expect(
        s,
        &format!(
            "Patient?identifier:of-type={}",
            enc(&format!("{V2_0203}|MR|123-45-6789"))
        ),
        &[],
    )
    .await;
    // Codes of observations.
    expect(
        s,
        &format!("Observation?code={}", enc(&format!("{LOINC}|2339-0"))),
        &["g1", "g2", "g3", "gx"],
    )
    .await;
    expect(s, "Observation?code=2339-0", &["g1", "g2", "g3", "gx"]).await;
    expect(
        s,
        &format!("Observation?code={}", enc("http://snomed.info/sct|2339-0")),
        &[],
    )
    .await;
    expect(s, "Observation?code=8867-4,2093-3", &["hr1", "hr2", "chol"]).await;
    // :text on the display/text, folded, starts-with.
    expect(
        s,
        "Observation?code:text=glucose",
        &["g1", "g2", "g3", "gx"],
    )
    .await;
    expect(s, "Observation?code:text=HEART", &["hr1", "hr2"]).await;
    // :not on a code.
    expect(
        s,
        "Observation?code:not=2339-0",
        &["hr1", "hr2", "chol", "wt"],
    )
    .await;
    expect(s, "Observation?status=registered", &["gx"]).await;
    // Booleans are tokens too.
    expect(s, "Patient?active=true", &[]).await;
}

async fn date_search(s: &TestServer) {
    load(s).await;
    let all = ["p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10"];
    let but = |skip: &[&str]| -> Vec<&str> {
        all.iter().copied().filter(|p| !skip.contains(p)).collect()
    };
    // eq at year, month and day precision (p8 was born in "1970").
    expect(s, "Patient?birthdate=1970", &["p1", "p7", "p8"]).await;
    expect(s, "Patient?birthdate=eq1970", &["p1", "p7", "p8"]).await;
    expect(s, "Patient?birthdate=1970-03", &["p1"]).await;
    expect(s, "Patient?birthdate=1970-03-15", &["p1"]).await;
    expect(s, "Patient?birthdate=1970-03-16", &[]).await;
    expect(s, "Patient?birthdate=ne1970", &but(&["p1", "p7", "p8"])).await;
    expect(s, "Patient?birthdate=ne1970-03-15", &but(&["p1"])).await;
    // gt/lt/ge/le.
    expect(s, "Patient?birthdate=gt1990-01-20", &["p4", "p5", "p9"]).await;
    expect(
        s,
        "Patient?birthdate=ge1990-01-20",
        &["p3", "p4", "p5", "p9"],
    )
    .await;
    expect(s, "Patient?birthdate=lt1962-08-08", &["p6"]).await;
    expect(s, "Patient?birthdate=le1962-08-08", &["p6", "p10"]).await;
    expect(s, "Patient?birthdate=ge1990-06", &["p4", "p5", "p9"]).await;
    expect(s, "Patient?birthdate=gt1990", &["p5", "p9"]).await;
    // lt: the resource's range starts before the value (1970 starts in January).
    expect(s, "Patient?birthdate=lt1970-04", &["p1", "p6", "p8", "p10"]).await;
    // sa/eb: starts after the end / ends before the start.
    expect(s, "Patient?birthdate=sa1990", &["p5", "p9"]).await;
    expect(s, "Patient?birthdate=eb1962", &["p6"]).await;
    expect(s, "Patient?birthdate=eb1970-06", &["p6", "p10", "p1"]).await;
    // Two bounds: a range.
    expect(
        s,
        "Patient?birthdate=ge1985&birthdate=lt1991",
        &["p2", "p3", "p4"],
    )
    .await;
    // ap: near the value (the exact width is the server's choice).
    let near = s
        .sorted_ids("Patient?birthdate=ap1970-03-15&_count=100")
        .await;
    assert!(near.contains(&"p1".to_owned()), "{near:?}");
    assert!(
        !near.contains(&"p5".to_owned()) && !near.contains(&"p6".to_owned()),
        "{near:?}"
    );
    // dateTimes with time zones, Periods and partial dates.
    expect(s, "Observation?date=2024-01-10", &["g1", "gx"]).await;
    expect(s, "Observation?date=2024", &["g1", "g2", "chol", "gx"]).await;
    expect(s, "Observation?date=2022-03-15", &[]).await;
    expect(s, "Observation?date=ap2022-03-15", &["wt"]).await;
    expect(s, "Observation?date=2022", &["wt"]).await;
    expect(
        s,
        "Observation?date=lt2024-01-10T08:30:00Z",
        &["g1", "hr2", "wt"],
    )
    .await;
    expect(
        s,
        &format!("Observation?date=gt{}", enc("2024-01-10T09:30:00+01:00")),
        &["g2", "g3", "hr1", "chol", "gx"],
    )
    .await;
    // 23:30 UTC on Nov 30 is still November in UTC.
    expect(s, "Observation?date=2023-11", &["hr2"]).await;
    expect(s, "Encounter?date=2024-01-10", &["e1"]).await;
    expect(s, "Encounter?date=ge2025", &["e2"]).await;
}

async fn quantity_search(s: &TestServer) {
    load(s).await;
    let q = |v: &str| format!("Observation?value-quantity={}", enc(v));
    expect(s, &q(&format!("gt100|{UCUM}|mg/dL")), &["g2", "g3", "chol"]).await;
    expect(s, &q("gt100"), &["g2", "g3", "chol", "hr2"]).await;
    expect(s, &q("lt100||mg/dL"), &["g1"]).await;
    expect(s, &q(&format!("150|{UCUM}|mg/dL")), &["g2"]).await;
    // Precision: 70 means [69.5, 70.5); 70.5 is 70.5 exactly.
    expect(s, &q("70.5"), &["wt"]).await;
    expect(s, &q("ge72"), &["g1", "g2", "g3", "hr1", "hr2", "chol"]).await;
    expect(s, &q("le72|http://unitsofmeasure.org|/min"), &["hr1"]).await;
    expect(s, &q("ne150||mg/dL"), &["g1", "g3", "chol"]).await;
    expect(s, &q(&format!("gt100|{UCUM}|kg")), &[]).await;
    // Scientific notation.
    expect(s, &q("gt1e2||mg/dL"), &["g2", "g3", "chol"]).await;
    // A value that is no number: 400.
    s.get(&q("lots")).await.expect(400);
}

async fn reference_search(s: &TestServer) {
    load(s).await;
    expect(s, "Observation?subject=Patient/p1", &["g1", "g2"]).await;
    expect(s, "Observation?subject:Patient=p1", &["g1", "g2"]).await;
    expect(s, "Observation?subject=p1", &["g1", "g2"]).await;
    expect(s, "Observation?patient=p1", &["g1", "g2"]).await;
    expect(s, "Observation?patient=Patient/p3", &["g3", "hr1"]).await;
    expect(
        s,
        "Observation?subject=Patient/p1,Patient/p2",
        &["g1", "g2", "chol"],
    )
    .await;
    expect(s, "Observation?subject:Group=p1", &[]).await;
    expect(s, "Observation?encounter=Encounter/e2", &["g3", "hr1"]).await;
    expect(s, "Encounter?patient=p5", &["e3"]).await;
    // A prefix of an id is not a match.
    expect(s, "Observation?subject=Patient/p", &[]).await;
    expect(s, "Observation?subject=Patient/p1&code=8867-4", &[]).await;
    // An absolute URL on this server's base is the same reference as the relative one.
    expect(
        s,
        &format!(
            "Observation?subject={}",
            enc(&format!("{}/Patient/p1", s.base))
        ),
        &["g1", "g2"],
    )
    .await;
}

async fn missing_modifier(s: &TestServer) {
    load(s).await;
    expect(s, "Patient?gender:missing=true", &["p10"]).await;
    expect(s, "Patient?address-city:missing=true", &["p7"]).await;
    let present = s
        .sorted_ids("Patient?gender:missing=false&_count=100")
        .await;
    assert_eq!(present.len(), 9, "{present:?}");
    expect(s, "Observation?value-quantity:missing=true", &["gx"]).await;
    expect(
        s,
        "Observation?encounter:missing=true",
        &["g2", "chol", "wt", "gx"],
    )
    .await;
    expect(
        s,
        "Observation?encounter:missing=false",
        &["g1", "g3", "hr1", "hr2"],
    )
    .await;
    s.get("Patient?gender:missing=maybe").await.expect(400);
}

async fn chaining_and_reverse_chaining(s: &TestServer) {
    load(s).await;
    expect(s, "Observation?subject:Patient.name=muller", &["g1", "g2"]).await;
    expect(
        s,
        "Observation?subject:Patient.name=smith",
        &["g3", "hr1", "wt"],
    )
    .await;
    expect(s, "Observation?patient.gender=female&code=2339-0", &["gx"]).await;
    expect(
        s,
        &format!(
            "Observation?subject:Patient.identifier={}",
            enc(&format!("{MRN}|1005"))
        ),
        &["hr2"],
    )
    .await;
    expect(s, "Observation?encounter.date=2025", &["g3", "hr1"]).await;
    // Reverse chaining.
    expect(s, "Patient?_has:Observation:patient:code=2093-3", &["p2"]).await;
    expect(
        s,
        "Patient?_has:Observation:patient:code=2339-0",
        &["p1", "p3", "p6"],
    )
    .await;
    expect(
        s,
        "Patient?_has:Observation:subject:code=8867-4&gender=male",
        &["p3", "p5"],
    )
    .await;
    expect(s, "Patient?_has:Encounter:patient:date=2024", &["p1"]).await;
    // A chain on something that is not a reference: 400.
    s.get("Patient?name.family=x").await.expect(400);
    s.get("Patient?_has:Observation:code=x").await.expect(400);
}

async fn includes(s: &TestServer) {
    load(s).await;
    let b = s
        .search("Observation?code=2339-0&_include=Observation:subject&_count=100")
        .await;
    assert_eq!(
        set(&match_ids(&b).iter().map(String::as_str).collect::<Vec<_>>()),
        set(&["g1", "g2", "g3", "gx"])
    );
    assert_eq!(
        included(&b),
        set(&["Patient/p1", "Patient/p3", "Patient/p6"]),
        "{b}"
    );
    assert_eq!(b["total"], 4, "the total counts matches only: {b}");

    // With a target type.
    let b = s
        .search("Observation?_id=g1&_include=Observation:subject:Patient")
        .await;
    assert_eq!(included(&b), set(&["Patient/p1"]), "{b}");
    let b = s
        .search("Observation?_id=g1&_include=Observation:subject:Group")
        .await;
    assert_eq!(included(&b), Vec::<String>::new(), "{b}");

    // _revinclude.
    let b = s
        .search("Patient?_id=p1&_revinclude=Observation:subject")
        .await;
    assert_eq!(match_ids(&b), ["p1"]);
    assert_eq!(
        included(&b),
        set(&["Observation/g1", "Observation/g2"]),
        "{b}"
    );
    let b = s
        .search("Patient?_id=p3,p5&_revinclude=Observation:subject&_revinclude=Encounter:subject")
        .await;
    assert_eq!(
        included(&b),
        set(&[
            "Observation/g3",
            "Observation/hr1",
            "Observation/hr2",
            "Encounter/e2",
            "Encounter/e3"
        ]),
        "{b}"
    );

    // :iterate follows references of included resources too.
    let plain = s
        .search("Observation?_id=g1&_include=Observation:encounter&_include=Encounter:subject")
        .await;
    assert_eq!(included(&plain), set(&["Encounter/e1"]), "{plain}");
    let iterated = s
        .search(
            "Observation?_id=g1&_include=Observation:encounter&_include:iterate=Encounter:subject",
        )
        .await;
    assert_eq!(
        included(&iterated),
        set(&["Encounter/e1", "Patient/p1"]),
        "{iterated}"
    );

    // An include of a parameter that does not exist: 400.
    s.get("Observation?_include=Observation:nonsense")
        .await
        .expect(400);
}

async fn sorting(s: &TestServer) {
    load(s).await;
    // p8 ("1970") is left out: where a year sorts against days of it is the server's choice.
    let only_days =
        |ids: Vec<String>| -> Vec<String> { ids.into_iter().filter(|i| i != "p8").collect() };
    let up = only_days(s.ids("Patient?_sort=birthdate&_count=100").await);
    assert_eq!(up, ["p6", "p10", "p1", "p7", "p2", "p3", "p4", "p9", "p5"]);
    let down = only_days(s.ids("Patient?_sort=-birthdate&_count=100").await);
    assert_eq!(
        down,
        ["p5", "p9", "p4", "p3", "p2", "p7", "p1", "p10", "p6"]
    );
    // Two keys.
    let two = s
        .ids("Patient?gender=male,female&_sort=gender,-birthdate&_count=100")
        .await;
    assert_eq!(two, ["p4", "p2", "p8", "p6", "p5", "p3", "p1"]);
    let by_name = s
        .ids("Patient?_sort=family&name=smith,mull&_count=100")
        .await;
    assert_eq!(by_name, ["p1", "p2", "p3", "p4"]);
    let by_id = s.ids("Patient?_sort=-_id&_count=3").await;
    assert_eq!(by_id, ["p9", "p8", "p7"]);
    // gx has no value: where it sorts is the server's choice.
    let by_value: Vec<String> = s
        .ids("Observation?code=2339-0&_sort=value-quantity")
        .await
        .into_iter()
        .filter(|i| i != "gx")
        .collect();
    assert_eq!(by_value, ["g1", "g2", "g3"]);
    let by_date = s.ids("Observation?_sort=-date&code=2339-0,8867-4").await;
    assert_eq!(by_date, ["hr1", "g3", "g2", "gx", "g1", "hr2"]);
    s.get("Patient?_sort=nonsense").await.expect(400);
}

async fn paging_visits_every_match_once(s: &TestServer) {
    load(s).await;
    for query in [
        "Patient?_count=3",
        "Patient?_count=3&_sort=-birthdate",
        "Patient?_count=1&gender:not=male",
    ] {
        let mut seen = Vec::new();
        let mut b = s.search(query).await;
        let first_total = b["total"].clone();
        let mut pages = 0;
        loop {
            pages += 1;
            let ids = match_ids(&b);
            assert!(ids.len() <= 3, "{query}: a page of {}: {b}", ids.len());
            seen.extend(ids);
            let Some(next) = link(&b, "next") else { break };
            assert!(next.starts_with(&s.base), "{next}");
            assert!(pages < 20, "{query}: the next links do not end");
            b = s.search(&next).await;
        }
        let expected = if query.contains("gender") { 7 } else { 10 };
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "{query}: seen twice: {seen:?}");
        assert_eq!(seen.len(), expected, "{query}: {seen:?}");
        if !first_total.is_null() {
            assert_eq!(first_total, expected, "{query}");
        }
        assert!(link(&b, "self").is_some());
    }
    // The last page's previous link leads back.
    let b = s.search("Patient?_count=4&_offset=8").await;
    assert_eq!(match_ids(&b).len(), 2);
    let prev = link(&b, "previous").expect("previous");
    assert_eq!(match_ids(&s.search(&prev).await).len(), 4);
}

/// `_total`: absent, the server counts only when it is cheap (the page shows the end of
/// the matches, or one filter is counted from its index); `accurate` and `estimate` count;
/// `none` never does. A page without a total has a `next` link exactly when more follow.
async fn totals_by_mode(s: &TestServer) {
    load(s).await;
    let two = "Patient?gender=female&birthdate=ge1980";
    let one = "Patient?gender=female";
    for (query, total, next) in [
        // several filters, more matches after the page: no total, a next link
        (format!("{two}&_count=1"), Value::Null, true),
        // the page shows the end (also when exactly full): the total from the page
        (format!("{two}&_count=2"), json!(2), false),
        (format!("{two}&_count=5"), json!(2), false),
        (format!("{two}&_count=1&_offset=1"), json!(2), false),
        // one filter: counted from its index
        (format!("{one}&_count=1"), json!(4), true),
        // no filter, more after the page: no total
        ("Patient?_count=3".to_owned(), Value::Null, true),
        (format!("{two}&_count=1&_total=accurate"), json!(2), true),
        (format!("{two}&_count=1&_total=estimate"), json!(2), true),
        (format!("{one}&_count=1&_total=none"), Value::Null, true),
        (format!("{two}&_count=5&_total=none"), Value::Null, false),
        (format!("{two}&_summary=count"), json!(2), false),
    ] {
        let b = s.search(&query).await;
        assert_eq!(b["total"], total, "{query}: {b}");
        assert_eq!(link(&b, "next").is_some(), next, "{query}: {b}");
    }
    // the pages of a search without totals visit each match once, and the last one (which
    // shows the end) has the total
    let mut seen = Vec::new();
    let mut b = s.search(&format!("{two}&_count=1")).await;
    loop {
        seen.extend(match_ids(&b));
        let Some(next) = link(&b, "next") else { break };
        assert!(seen.len() < 5, "the next links do not end: {b}");
        b = s.search(&next).await;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_ne!(seen[0], seen[1]);
    assert_eq!(b["total"], 2, "{b}");
}

async fn totals_summary_elements(s: &TestServer) {
    load(s).await;
    let b = s.search("Patient?_count=2&_total=accurate").await;
    assert_eq!(b["total"], 10, "{b}");
    assert_eq!(entries(&b).len(), 2);
    let b = s.search("Patient?_count=2&_total=none").await;
    assert_eq!(entries(&b).len(), 2);
    let b = s.search("Patient?gender=female&_summary=count").await;
    assert_eq!(b["total"], 4, "{b}");
    assert!(entries(&b).is_empty(), "_summary=count has no entries: {b}");
    let b = s.search("Observation?_summary=count").await;
    assert_eq!(b["total"], 8, "{b}");
    // Totals of several filters (on SQLite counted from the index rows: the driving filter's
    // rows, the others checked per candidate) agree with the matches listed.
    for (query, expected) in [
        ("Patient?name=mu&gender=female&birthdate=ge1980", 1),
        ("Patient?gender=female&birthdate=ge1980", 2),
        ("Patient?address-city=boston&birthdate=ge1980", 2),
        ("Patient?name=s&gender=male", 1),
        ("Patient?identifier=1004&name=smi&gender=female", 1),
        ("Patient?name=smi&gender=female&birthdate=lt1980", 0),
    ] {
        let b = s.search(&format!("{query}&_summary=count")).await;
        assert_eq!(b["total"], expected, "{query}: {b}");
        let listed = s.ids(&format!("{query}&_count=50")).await;
        assert_eq!(listed.len(), expected, "{query}: {listed:?}");
        let b = s.search(&format!("{query}&_count=1&_total=accurate")).await;
        assert_eq!(b["total"], expected, "{query}: {b}");
    }

    // _elements: the named elements, the mandatory ones, and a SUBSETTED tag.
    let b = s.search("Patient?_id=p1&_elements=name").await;
    let p = &entries(&b)[0]["resource"];
    assert_eq!(p["name"][0]["family"], "Müller");
    assert!(
        p.get("birthDate").is_none() && p.get("address").is_none(),
        "{p}"
    );
    assert_eq!(p["id"], "p1");
    assert!(
        p["meta"]["tag"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["code"] == "SUBSETTED")),
        "{p}"
    );
    let b = s.search("Observation?_id=g1&_elements=subject").await;
    let o = &entries(&b)[0]["resource"];
    assert!(o.get("valueQuantity").is_none(), "{o}");
    assert_eq!(o["subject"]["reference"], "Patient/p1");
    // Mandatory elements stay.
    assert_eq!(o["status"], "final");
    assert!(o.get("code").is_some(), "{o}");

    // _summary=true keeps summary elements only; read takes it too.
    let r = s.get("Patient/p1?_summary=true").await.expect(200).json();
    assert!(
        r.get("name").is_some() && r.get("birthDate").is_some(),
        "{r}"
    );
    let r = s
        .get("Patient/p1?_elements=gender")
        .await
        .expect(200)
        .json();
    assert!(r.get("name").is_none(), "{r}");
    assert_eq!(r["gender"], "male");
    // Unchanged without.
    let r = s.get("Patient/p1").await.expect(200).json();
    assert!(r["meta"].get("tag").is_none(), "{r}");
}

async fn id_and_last_updated(s: &TestServer) {
    load(s).await;
    expect(s, "Patient?_id=p1", &["p1"]).await;
    expect(s, "Patient?_id=p1,p3,nobody", &["p1", "p3"]).await;
    expect(s, "Observation?_id=p1", &[]).await;
    let all: Vec<&str> = PATIENTS.iter().map(|p| p.0).collect();
    expect(s, "Patient?_lastUpdated=gt2020-01-01", &all).await;
    expect(s, "Patient?_lastUpdated=lt2020-01-01", &[]).await;
    // Two updates a little apart: lastUpdated separates them.
    let mut p2 = patient(&PATIENTS[1]);
    p2["active"] = json!(true);
    let v2 = s.put("Patient/p2", &p2).await.expect(200).json();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let mut p1 = patient(&PATIENTS[0]);
    p1["active"] = json!(true);
    let v1 = s.put("Patient/p1", &p1).await.expect(200).json();
    let t2 = v2["meta"]["lastUpdated"].as_str().expect("lastUpdated");
    let t1 = v1["meta"]["lastUpdated"].as_str().expect("lastUpdated");
    expect(s, &format!("Patient?_lastUpdated=gt{}", enc(t2)), &["p1"]).await;
    expect(
        s,
        &format!("Patient?_lastUpdated=ge{}", enc(t2)),
        &["p1", "p2"],
    )
    .await;
    expect(s, &format!("Patient?_lastUpdated=ge{}", enc(t1)), &["p1"]).await;
    let before: Vec<&str> = all.iter().copied().filter(|p| *p != "p1").collect();
    expect(s, &format!("Patient?_lastUpdated=lt{}", enc(t1)), &before).await;
    expect(s, &format!("Patient?_lastUpdated=eq{}", enc(t1)), &["p1"]).await;
    let sorted = s.ids("Patient?_sort=-_lastUpdated&_count=2").await;
    assert_eq!(sorted, ["p1", "p2"]);
}

async fn post_search_and_system_search(s: &TestServer) {
    load(s).await;
    let r = s
        .call(
            "POST",
            "Patient/_search",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(b"name=smith&_count=100".to_vec()),
        )
        .await
        .expect(200);
    let b = r.json();
    assert_eq!(b["type"], "searchset");
    let mut ids = match_ids(&b);
    ids.sort();
    assert_eq!(ids, set(&["p3", "p4"]));
    // Query and body parameters combine (AND).
    let r = s
        .call(
            "POST",
            "Patient/_search?gender=female",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(format!("name=smith&birthdate={}", enc("ge1990")).into_bytes()),
        )
        .await
        .expect(200);
    assert_eq!(match_ids(&r.json()), ["p4"]);
    // A next link of a POST search is a GET that works.
    let r = s
        .call(
            "POST",
            "Patient/_search",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(b"_count=4".to_vec()),
        )
        .await
        .expect(200);
    let next = link(&r.json(), "next").expect("next");
    assert_eq!(match_ids(&s.search(&next).await).len(), 4);

    // System search: all types, or the ones `_type` names.
    let b = s.search("?_id=p1,g1,e1").await;
    let mut found: Vec<String> = entries(&b)
        .iter()
        .map(|e| crate::common::type_id(&e["resource"]))
        .collect();
    found.sort();
    assert_eq!(
        found,
        set(&["Encounter/e1", "Observation/g1", "Patient/p1"]),
        "{b}"
    );
    // `_type` is optional: if the server takes it, it must restrict the types.
    let r = s.get("?_type=Patient,Encounter&_count=100").await;
    if r.status == 200 {
        let b = r.json();
        assert_eq!(entries(&b).len(), 13, "{b}");
        assert!(
            entries(&b)
                .iter()
                .all(|e| e["resource"]["resourceType"] != "Observation")
        );
        let b = s.search("?_type=Encounter&_summary=count").await;
        assert_eq!(b["total"], 3, "{b}");
    } else {
        eprintln!("_type is not supported: {}", r.text());
    }
}
