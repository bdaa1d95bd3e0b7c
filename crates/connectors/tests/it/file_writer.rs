//! The file writer on real directories: templates, temp + rename, append, escapes refused.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use connectors::file::{FileWriter, FileWriterConfig};
use connectors::{Destination, Template};

use crate::common::fields;

fn writer(dir: &Path, name: &str) -> FileWriter {
    FileWriterConfig {
        directory: dir.to_owned(),
        name: Template::parse(name).unwrap(),
        ..FileWriterConfig::default()
    }
    .build()
    .unwrap()
}

fn all_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(
                all_files(&entry.path())
                    .into_iter()
                    .map(|n| format!("{name}/{n}")),
            );
        } else {
            out.push(name);
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn names_from_templates_and_no_temporary_files_left() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let w = writer(&out, "${PID-3-1}_${utcdate:%Y%m%d}_${messageId}.hl7");
    let f = fields(&[("PID-3-1", "12345"), ("messageId", "01J0")]);
    let delivered = w.send(b"MSH|1\r", &f).await.unwrap();
    let files = all_files(&out);
    assert_eq!(files.len(), 1, "{files:?}");
    let name = &files[0];
    assert!(
        name.starts_with("12345_20") && name.ends_with("_01J0.hl7"),
        "{name}"
    );
    assert_eq!(fs::read(out.join(name)).unwrap(), b"MSH|1\r");
    assert!(
        delivered.detail.contains(name.as_str()),
        "{}",
        delivered.detail
    );

    // The same name again replaces the file.
    let w = writer(&out, "fixed.hl7");
    w.send(b"one", &f).await.unwrap();
    w.send(b"two", &f).await.unwrap();
    assert_eq!(fs::read(out.join("fixed.hl7")).unwrap(), b"two");

    // Subdirectories from the template are created.
    let w = writer(&out, "${utcdate:%Y}/${messageId}.hl7");
    w.send(b"nested", &f).await.unwrap();
    assert!(all_files(&out).iter().any(|n| n.ends_with("/01J0.hl7")));
    assert!(
        all_files(&out).iter().all(|n| !n.contains(".tmp")),
        "{:?}",
        all_files(&out)
    );
}

#[tokio::test]
async fn in_place_and_append() {
    let dir = tempfile::tempdir().unwrap();
    let f = fields(&[("MSH-7", "20260101")]);
    let direct = FileWriterConfig {
        directory: dir.path().to_owned(),
        name: Template::parse("direct.hl7").unwrap(),
        temp_then_rename: false,
        ..FileWriterConfig::default()
    }
    .build()
    .unwrap();
    direct.send(b"in place", &f).await.unwrap();
    assert_eq!(
        fs::read(dir.path().join("direct.hl7")).unwrap(),
        b"in place"
    );

    let batch = Arc::new(
        FileWriterConfig {
            directory: dir.path().to_owned(),
            name: Template::parse("batch_${MSH-7}.txt").unwrap(),
            append: true,
            ..FileWriterConfig::default()
        }
        .build()
        .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (batch, f) = (Arc::clone(&batch), f.clone());
        tasks.push(tokio::spawn(async move {
            batch
                .send(format!("line {i:02}\n").as_bytes(), &f)
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let content = fs::read_to_string(dir.path().join("batch_20260101.txt")).unwrap();
    let mut lines: Vec<&str> = content.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines.len(), 20);
    assert_eq!(lines[0], "line 00");
    assert_eq!(lines[19], "line 19");
}

#[tokio::test]
async fn concurrent_messages_get_their_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let w = Arc::new(writer(dir.path(), "${messageId}.hl7"));
    let mut tasks = Vec::new();
    for i in 0..30 {
        let w = Arc::clone(&w);
        tasks.push(tokio::spawn(async move {
            let f = fields(&[("messageId", &format!("m{i:02}"))]);
            let dest: &dyn Destination = w.as_ref();
            dest.send(format!("body {i}").as_bytes(), &f).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let files = all_files(dir.path());
    assert_eq!(files.len(), 30, "{files:?}");
    assert_eq!(
        fs::read_to_string(dir.path().join("m07.hl7")).unwrap(),
        "body 7"
    );
}

#[tokio::test]
async fn paths_leaving_the_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();

    // Separators in values are replaced: the file stays inside.
    let w = writer(&out, "${PID-3-1}.hl7");
    w.send(b"x", &fields(&[("PID-3-1", "../../outside/evil")]))
        .await
        .unwrap();
    assert_eq!(all_files(&out), [".._.._outside_evil.hl7"]);

    // A `..` part made by a value alone, or an absolute or empty name.
    let cases = [
        ("${a}/x.hl7", ".."),
        ("${a}", ".."),
        ("${a}/x", ""),
        ("${a}", ""),
    ];
    for (template, value) in cases {
        let err = writer(&out, template)
            .send(b"x", &fields(&[("a", value)]))
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{template}: {err}");
    }

    // A link inside the directory that leads outside is not followed.
    std::os::unix::fs::symlink(&outside, out.join("link")).unwrap();
    let err = writer(&out, "link/${a}.hl7")
        .send(b"x", &fields(&[("a", "y")]))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    std::os::unix::fs::symlink(outside.join("target.hl7"), out.join("file-link.hl7")).unwrap();
    let err = writer(&out, "file-link.hl7")
        .send(b"x", &fields(&[]))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(all_files(&outside).is_empty(), "{:?}", all_files(&outside));
}
