//! The example channels of `examples/channels/` pass `plexus test` with their fixtures, and
//! `plexus test` catches a changed output.

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/channels")
}

fn plexus_test(channel: &Path, fixtures: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .arg("test")
        .arg(channel)
        .arg("--fixtures")
        .arg(fixtures)
        .output()
        .expect("run plexus test");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn every_example_channel_passes_its_fixtures() {
    let dir = examples();
    let channels = engine::load_dir(&dir).expect("the example channel files are valid");
    assert_eq!(channels.len(), 4, "four example channels");
    for c in channels {
        let fixtures = dir.join("fixtures").join(&c.name);
        let (code, out) = plexus_test(&c.file, &fixtures);
        assert_eq!(code, Some(0), "{}:\n{out}", c.name);
        assert!(out.contains(" 0 failed"), "{out}");
        assert!(!out.contains("FAIL"), "{out}");
    }
}

#[test]
fn a_changed_output_fails_with_a_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let src = examples();
    // the ADT router with billing's MSH-5 changed, and its code table next to it
    let text = std::fs::read_to_string(src.join("adt-router.toml"))
        .unwrap()
        .replace("value = \"BILLING\"", "value = \"ACCOUNTS\"");
    std::fs::write(tmp.path().join("adt-router.toml"), text).unwrap();
    std::fs::create_dir(tmp.path().join("tables")).unwrap();
    std::fs::copy(
        src.join("tables/patient-class.csv"),
        tmp.path().join("tables/patient-class.csv"),
    )
    .unwrap();
    let (code, out) = plexus_test(
        &tmp.path().join("adt-router.toml"),
        &src.join("fixtures/adt-router"),
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL"), "{out}");
    assert!(
        out.contains("- MSH|^~\\&|PLEXUS-ADT|PLEXUS-HOSP|BILLING|FINANCE"),
        "{out}"
    );
    assert!(
        out.contains("+ MSH|^~\\&|PLEXUS-ADT|PLEXUS-HOSP|ACCOUNTS|FINANCE"),
        "{out}"
    );
    // the lab output and the filtered messages still pass
    assert!(
        out.contains("ok    ") && out.contains("oru-filtered.hl7"),
        "{out}"
    );
}

#[test]
fn a_bad_channel_file_names_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.toml");
    std::fs::write(
        &file,
        "[[filter]]\ntype = \"message-type\"\naccept = [\"ADT\"]\n\n[[transformer]]\ntype = \"set\"\npath = \"PID-5\"\nvalu = \"x\"\n",
    )
    .unwrap();
    let (code, out) = plexus_test(&file, tmp.path());
    assert_ne!(code, Some(0));
    assert!(out.contains("bad.toml:5:"), "{out}");
    assert!(out.contains("valu"), "{out}");
}
