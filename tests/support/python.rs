//! The Python interpreter of the test venv, shared by the test crates (included with
//! `#[path]`): `.ci/run` makes the venv from `tests/peers/requirements.txt`.

use std::path::{Path, PathBuf};

/// `$PLEXUS_PYTHON`, else `<root>/.venv/bin/python`. Missing: a failure in CI (`CI` set), else
/// `None` after saying the test is skipped.
pub fn venv_python(root: &Path) -> Option<PathBuf> {
    let p = std::env::var_os("PLEXUS_PYTHON")
        .map_or_else(|| root.join(".venv/bin/python"), PathBuf::from);
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: .ci/run installs tests/peers/requirements.txt into .venv",
        p.display()
    );
    eprintln!("skipped: no Python venv at {}", p.display());
    None
}
