//! The file reader on real directories: move, delete, leave, error directory, min_age.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use connectors::file::{AfterRead, FileReader, FileReaderConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::common::{PATIENCE, Recorder, eventually};

struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    fn start(reader: FileReader, recorder: &Arc<Recorder>) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(reader.run(Arc::clone(recorder) as _, async {
            stopped.await.ok();
        }));
        Self {
            stop: Some(stop),
            task,
        }
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("the reader did not stop")
            .unwrap();
    }
}

fn config(dir: &Path) -> FileReaderConfig {
    FileReaderConfig {
        glob: "*.hl7".into(),
        poll_interval: Duration::from_millis(50),
        min_age: Duration::ZERO,
        ..FileReaderConfig::new(dir.join("in"))
    }
}

/// Writes a file whose modification time is `age` ago.
fn write_aged(path: &Path, content: &str, age: Duration) {
    fs::write(path, content).unwrap();
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn accepted_files_move_refused_ones_go_to_the_error_directory() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir(&input).unwrap();
    fs::create_dir(dir.path().join("errors")).unwrap();
    // A file of the same name already in the error directory: the new one gets a suffix.
    fs::write(dir.path().join("errors/c.hl7"), "older").unwrap();
    fs::write(input.join("b.hl7"), "second").unwrap();
    fs::write(input.join("a.hl7"), "first").unwrap();
    fs::write(input.join("c.hl7"), "REJECT me").unwrap();
    fs::write(input.join("notes.txt"), "not matched").unwrap();
    fs::write(input.join(".hidden.hl7"), "hidden").unwrap();
    let reader = FileReaderConfig {
        after: AfterRead::Move,
        move_to: Some(dir.path().join("done")),
        error_directory: Some(dir.path().join("errors")),
        ..config(dir.path())
    }
    .build()
    .unwrap();
    let recorder = Recorder::new();
    let running = Running::start(reader, &recorder);
    eventually("three files handled", || {
        recorder.count() == 3 && names(&input) == [".hidden.hl7", "notes.txt"]
    })
    .await;
    assert_eq!(
        recorder.bodies(),
        ["first", "second", "REJECT me"],
        "name order"
    );
    assert_eq!(recorder.last().origin.as_deref(), Some("c.hl7"));
    assert_eq!(names(&dir.path().join("done")), ["a.hl7", "b.hl7"]);
    assert_eq!(names(&dir.path().join("errors")), ["c-1.hl7", "c.hl7"]);
    assert_eq!(
        fs::read_to_string(dir.path().join("errors/c-1.hl7")).unwrap(),
        "REJECT me"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("errors/c.hl7")).unwrap(),
        "older"
    );

    // A later file with a name already in done/ is kept under a new name.
    fs::write(input.join("a.hl7"), "third").unwrap();
    eventually("the second a.hl7", || {
        names(&dir.path().join("done")) == ["a-1.hl7", "a.hl7", "b.hl7"]
    })
    .await;
    assert_eq!(
        fs::read_to_string(dir.path().join("done/a-1.hl7")).unwrap(),
        "third"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn delete_after_acceptance() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir(&input).unwrap();
    fs::write(input.join("1.hl7"), "one").unwrap();
    fs::write(input.join("2.hl7"), "two").unwrap();
    let reader = FileReaderConfig {
        after: AfterRead::Delete,
        ..config(dir.path())
    }
    .build()
    .unwrap();
    let recorder = Recorder::new();
    let running = Running::start(reader, &recorder);
    eventually("both deleted", || names(&input).is_empty()).await;
    assert_eq!(recorder.bodies(), ["one", "two"]);
    running.shutdown().await;
}

#[tokio::test]
async fn leave_reads_each_version_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir(&input).unwrap();
    write_aged(&input.join("x.hl7"), "v1", Duration::from_mins(1));
    let reader = FileReaderConfig {
        after: AfterRead::Leave,
        ..config(dir.path())
    }
    .build()
    .unwrap();
    let recorder = Recorder::new();
    let running = Running::start(reader, &recorder);
    eventually("read once", || recorder.count() == 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(recorder.count(), 1, "not read again while unchanged");
    assert!(input.join("x.hl7").exists());
    // A new version (other size and time) is read again.
    write_aged(&input.join("x.hl7"), "version 2", Duration::from_secs(30));
    eventually("the new version", || recorder.count() == 2).await;
    assert_eq!(recorder.bodies(), ["v1", "version 2"]);
    running.shutdown().await;
}

#[tokio::test]
async fn young_files_wait_for_min_age() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir(&input).unwrap();
    write_aged(&input.join("old.hl7"), "old", Duration::from_mins(1));
    fs::write(input.join("new.hl7"), "new").unwrap();
    let written = std::time::Instant::now();
    let min_age = Duration::from_secs(2);
    // File times come from a coarse clock: allow a little.
    let nearly = Duration::from_millis(1900);
    let reader = FileReaderConfig {
        min_age,
        ..config(dir.path())
    }
    .build()
    .unwrap();
    let recorder = Recorder::new();
    let running = Running::start(reader, &recorder);
    eventually("the old file", || recorder.count() >= 1).await;
    assert_eq!(recorder.bodies()[0], "old");
    if written.elapsed() < nearly {
        assert_eq!(recorder.count(), 1, "new.hl7 is too young");
        assert!(
            input.join("new.hl7").exists(),
            "still being written, as far as we know"
        );
    }
    eventually("the new file once old enough", || recorder.count() == 2).await;
    assert!(written.elapsed() >= nearly);
    // the reader removes the file after its submission returned, so that may take a moment
    eventually("new.hl7 removed once submitted", || {
        !input.join("new.hl7").exists()
    })
    .await;
    running.shutdown().await;
}

#[tokio::test]
async fn too_large_and_unerrored_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir(&input).unwrap();
    fs::write(input.join("big.hl7"), "x".repeat(100)).unwrap();
    fs::write(input.join("bad.hl7"), "REJECT").unwrap();
    // Without an error directory, refused files stay and are not submitted again.
    let reader = FileReaderConfig {
        max_file_bytes: 50,
        ..config(dir.path())
    }
    .build()
    .unwrap();
    let recorder = Recorder::new();
    let running = Running::start(reader, &recorder);
    eventually("bad.hl7 submitted", || recorder.count() == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        recorder.bodies(),
        ["REJECT"],
        "big.hl7 never submitted, bad.hl7 once"
    );
    assert_eq!(names(&input), ["bad.hl7", "big.hl7"]);
    running.shutdown().await;

    // With one, both go there; big.hl7 unread.
    let reader = FileReaderConfig {
        max_file_bytes: 50,
        error_directory: Some(dir.path().join("errors")),
        ..config(dir.path())
    }
    .build()
    .unwrap();
    let recorder = Recorder::new();
    let running = Running::start(reader, &recorder);
    eventually("both moved", || names(&input).is_empty()).await;
    assert_eq!(names(&dir.path().join("errors")), ["bad.hl7", "big.hl7"]);
    assert_eq!(recorder.bodies(), ["REJECT"]);
    running.shutdown().await;
}

#[tokio::test]
async fn a_file_in_progress_is_finished_before_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir(&input).unwrap();
    fs::write(input.join("1.hl7"), "one").unwrap();
    fs::write(input.join("2.hl7"), "two").unwrap();
    let reader = config(dir.path()).build().unwrap();
    let recorder = Recorder::gated();
    let mut running = Running::start(reader, &recorder);
    eventually("the first submit", || recorder.count() == 1).await;
    let _ = running.stop.take().unwrap().send(());
    recorder.gate.as_ref().unwrap().add_permits(10);
    tokio::time::timeout(PATIENCE, &mut running.task)
        .await
        .expect("stopped")
        .unwrap();
    assert_eq!(recorder.count(), 1, "no new file after shutdown");
    assert_eq!(
        names(&input),
        ["2.hl7"],
        "the accepted file was still deleted"
    );
}

#[tokio::test]
async fn a_file_that_could_not_be_stored_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir(&input).unwrap();
    fs::write(input.join("m.hl7"), "STOREFAIL").unwrap();
    let reader = FileReaderConfig {
        error_directory: Some(dir.path().join("errors")),
        ..config(dir.path())
    }
    .build()
    .unwrap();
    let recorder = Recorder::new();
    let running = Running::start(reader, &recorder);
    eventually("three attempts", || recorder.count() >= 3).await;
    assert_eq!(names(&input), ["m.hl7"], "kept for the next try");
    assert!(names(&dir.path().join("errors")).is_empty());
    // Once the engine can store it, it goes like any other.
    fs::write(input.join("m.hl7"), "stored now").unwrap();
    eventually("deleted after acceptance", || names(&input).is_empty()).await;
    running.shutdown().await;
}
