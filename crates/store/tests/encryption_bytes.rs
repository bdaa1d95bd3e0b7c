//! With encryption at rest on, a patient's name and MRN written through the Resources API
//! and the journal appear nowhere in the bytes of the SQLite files (database, WAL, shared
//! memory); with it off, the same scan finds them (so the scan can fail).

#![allow(clippy::unwrap_used)]

use serde_json::json;
use store::{
    AnyStore, EncryptionConfig, Journal, NewMessage, Precondition, ResourceWrite, Resources,
    SqliteConfig, Stage, Store, StoreConfig, Transition, WriteOp,
};

const FAMILY: &str = "Quetzalcoatlus";
const GIVEN: &str = "Zyxandra";
const MRN: &str = "MRN-5550123";

/// Writes the patient and the message into a fresh store, closes it, and returns the
/// needles (lower-cased) found in the bytes of its files.
async fn write_and_scan(encrypted: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("store.key");
    std::fs::write(&key, [0x5au8; 32]).unwrap();
    let data = dir.path().join("data");
    let config = StoreConfig::Sqlite(SqliteConfig {
        encryption: encrypted.then(|| EncryptionConfig::with_key_file("k1", &key)),
        ..SqliteConfig::new(&data)
    });
    let store = AnyStore::open(&config).await.unwrap();

    let patient = json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": MRN,
                        "type": {"text": "Medical record number"}}],
        "name": [{"family": FAMILY, "given": [GIVEN], "text": format!("{GIVEN} {FAMILY}")}],
        "telecom": [{"system": "email", "value": "zyxandra@example.org"}],
        "gender": "female",
        "birthDate": "1980-01-01",
    });
    let index = fhir::index::extract(&patient).unwrap();
    assert!(!index.is_empty());
    store
        .write(vec![ResourceWrite {
            op: WriteOp::Create,
            resource_type: "Patient".into(),
            id: "pat-1".into(),
            resource: Some(patient.clone()),
            index,
            precondition: Precondition::None,
        }])
        .await
        .unwrap();

    let raw = format!(
        "MSH|^~\\&|REG|HOSP|EHR|HOSP|20260101120000||ADT^A01|C42|P|2.5.1\r\
         PID|1||{MRN}^^^HOSP^MR||{}^{}||19800101|F\r",
        FAMILY.to_uppercase(),
        GIVEN.to_uppercase()
    );
    let mut m = NewMessage::new("adt-in", raw.into_bytes())
        .with_metadata("MRN", MRN)
        .with_metadata("NAME", format!("{FAMILY}, {GIVEN}"));
    m.content
        .push((0, Stage::Transformed, serde_json::to_vec(&patient).unwrap()));
    let id = store.append(m).await.unwrap();
    let mut t = Transition::new(id);
    t.content.push((
        1,
        Stage::Encoded,
        format!("{FAMILY}|{GIVEN}|{MRN}").into_bytes(),
    ));
    store.apply(vec![t]).await.unwrap();
    // read back through the store: everything is there in clear
    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(got.metadata[0].1, MRN);
    assert!(String::from_utf8_lossy(&got.content[2].bytes).contains(FAMILY));
    let r = store.read("Patient", "pat-1", None).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&r.content).contains(GIVEN));
    store.close().await.unwrap();

    let mut files = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = data.join(format!("{}{suffix}", SqliteConfig::DB_FILE));
        if let Ok(bytes) = std::fs::read(&path) {
            files.push(bytes.to_ascii_lowercase());
        }
    }
    assert!(!files.is_empty(), "no database file in {}", data.display());
    [FAMILY, GIVEN, MRN, "zyxandra@example.org"]
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .filter(|needle| {
            files
                .iter()
                .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

#[tokio::test]
async fn encrypted_store_files_hold_no_name_and_no_mrn() {
    let found = write_and_scan(true).await;
    assert!(found.is_empty(), "found in the SQLite files: {found:?}");
}

#[tokio::test]
async fn plaintext_store_files_hold_them() {
    let found = write_and_scan(false).await;
    assert_eq!(
        found,
        vec![
            FAMILY.to_ascii_lowercase(),
            GIVEN.to_ascii_lowercase(),
            MRN.to_ascii_lowercase(),
            "zyxandra@example.org".to_owned()
        ]
    );
}
