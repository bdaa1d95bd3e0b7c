//! Blocking file operations that keep data safe: moves that never overwrite, and directory
//! syncs so that a rename survives a crash.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Most `-N` suffixes tried before giving up on a free name.
const MAX_SUFFIX: u32 = 10_000;

/// Makes a directory's entries (a created, renamed or removed file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `name` with `-n` before its extension: `a.hl7` → `a-1.hl7`, `README` → `README-1`.
pub fn suffixed(name: &OsStr, n: u32) -> OsString {
    let path = Path::new(name);
    let stem = path.file_stem().unwrap_or(name);
    let mut out = stem.to_owned();
    out.push(format!("-{n}"));
    if let Some(ext) = path.extension() {
        out.push(".");
        out.push(ext);
    }
    out
}

/// Moves `src` into `dir` under its own name, or `name-1.ext`, `name-2.ext` … if that is
/// taken; never replaces a file. Returns where it went.
///
/// A hard link then an unlink makes the no-replace check atomic; where links are not possible
/// (another file system, or one without links) the file is copied to a new file, synced, then
/// removed.
pub fn move_no_clobber(src: &Path, dir: &Path) -> io::Result<PathBuf> {
    let name = src
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    for n in 0..=MAX_SUFFIX {
        let target = if n == 0 {
            dir.join(name)
        } else {
            dir.join(suffixed(name, n))
        };
        match fs::hard_link(src, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => match copy_new(src, &target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            },
        }
        sync_dir(dir)?;
        fs::remove_file(src)?;
        if let Some(parent) = src.parent() {
            sync_dir(parent)?;
        }
        return Ok(target);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "no free name for {} in {}",
            Path::new(name).display(),
            dir.display()
        ),
    ))
}

/// Copies `src` to a file that must not exist yet, and syncs it. A partial copy is removed.
fn copy_new(src: &Path, target: &Path) -> io::Result<()> {
    let mut from = File::open(src)?;
    let mut to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)?;
    let copied = io::copy(&mut from, &mut to).and_then(|_| to.sync_all());
    if let Err(e) = copied {
        drop(to);
        let _ = fs::remove_file(target);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_goes_before_the_extension() {
        assert_eq!(suffixed(OsStr::new("a.hl7"), 1), "a-1.hl7");
        assert_eq!(suffixed(OsStr::new("a.tar.gz"), 2), "a.tar-2.gz");
        assert_eq!(suffixed(OsStr::new("README"), 3), "README-3");
        assert_eq!(suffixed(OsStr::new(".hidden"), 1), ".hidden-1");
    }

    #[test]
    fn moves_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (src_dir, dst) = (dir.path().join("in"), dir.path().join("out"));
        fs::create_dir_all(&src_dir).unwrap();
        fs::create_dir_all(&dst).unwrap();
        for (i, content) in ["first", "second", "third"].iter().enumerate() {
            let src = src_dir.join("m.hl7");
            fs::write(&src, content).unwrap();
            let to = move_no_clobber(&src, &dst).unwrap();
            assert!(!src.exists());
            let expected = if i == 0 {
                "m.hl7".to_owned()
            } else {
                format!("m-{i}.hl7")
            };
            assert_eq!(to, dst.join(expected));
            assert_eq!(fs::read_to_string(&to).unwrap(), *content);
        }
    }
}
