//! Helpers shared by the integration tests: where the corpus and the Python peers are.

#![allow(dead_code)]

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.hl7` file of the shared third-party corpus, or `None` (after saying so) when the
/// corpus is absent. CI always has it.
pub fn corpus_files() -> Option<Vec<PathBuf>> {
    let dir = root().join("../shared/corpus/hl7v2");
    if !dir.exists() {
        eprintln!("skipped: the shared corpus {} is absent", dir.display());
        return None;
    }
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read corpus dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "hl7") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "the corpus holds no .hl7 file");
    Some(files)
}

/// The project's own fixtures (written for Plexus, committed).
pub fn fixture_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "hl7"))
        .collect();
    files.sort();
    files
}

#[path = "../../../../tests/support/python.rs"]
mod support_python;

/// The Python interpreter of the test venv (see `tests/support/python.rs`).
pub fn python() -> Option<PathBuf> {
    support_python::venv_python(&root())
}
