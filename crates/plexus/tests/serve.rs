//! End-to-end tests of `plexus serve` and `plexus send` against independent peers: python-hl7's
//! `mllp_send`, an hl7apy MLLP server, Python `ssl` clients and servers; bad input; and the
//! crash test (SIGKILL under load, then every ACKed message is in the journal exactly once).

mod common;

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Peer, Pki, Server, StoreKind};
use hl7v2::{Message, MessageReader};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Sends one framed payload on a new connection and reads one framed reply (None if closed).
fn roundtrip(port: u16, payload: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut frame = vec![0x0B];
    frame.extend_from_slice(payload);
    frame.extend_from_slice(&[0x1C, 0x0D]);
    s.write_all(&frame).expect("write");
    read_frame(&mut s)
}

fn read_frame(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while s.read(&mut byte).ok()? == 1 {
        buf.push(byte[0]);
        if buf.ends_with(&[0x1C, 0x0D]) {
            let start = buf.iter().position(|&b| b == 0x0B)? + 1;
            return Some(text(&buf[start..buf.len() - 2]));
        }
    }
    None
}

fn msa(ack: &str) -> (String, String) {
    let m = Message::parse(ack.as_bytes()).expect("ack parses");
    (
        m.value("MSA-1")
            .ok()
            .flatten()
            .unwrap_or_default()
            .into_owned(),
        m.value("MSA-2")
            .ok()
            .flatten()
            .unwrap_or_default()
            .into_owned(),
    )
}

const ADT: &str = "MSH|^~\\&|LAB|HOSP|PLEXUS|HOSP|20240101120000||ADT^A01^ADT_A01|{ID}|P|2.5.1\rEVN|A01|20240101120000\rPID|1||{ID}^^^HOSP^MR||TESTPATIENT^ALPHA||19800101|F\rPV1|1|I\r";

fn adt(id: &str) -> String {
    ADT.replace("{ID}", id)
}

#[tokio::test(flavor = "multi_thread")]
async fn mllp_send_delivers_the_corpus_acked_and_stored_byte_for_byte() {
    let (Some(corpus), Some(python)) = (common::corpus_dir(), common::python()) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let mllp_send = python.with_file_name("mllp_send");
    // python-hl7's mllp_send --loose splits a file at each "MSH|^~\&|" and would send a
    // leading byte-order mark as a message of its own: use the corpus files without one
    let files: Vec<_> = std::fs::read_dir(&corpus)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "hl7")
                && !std::fs::read(p).expect("read").starts_with(b"\xEF\xBB\xBF")
        })
        .collect();
    assert!(files.len() >= 40, "only {} corpus files", files.len());

    // first what mllp_send puts on the wire, as an independent server (hl7apy) records it
    let peer_log = tmp.path().join("peer.log");
    let peer = Peer::start(
        &python,
        "mllp_ack_server.py",
        &["--log".as_ref(), peer_log.as_os_str()],
    );
    let peer_port = peer.port;

    let server = Server::start(&tmp.path().join("srv"), StoreKind::Sqlite, "");
    let mut expected_count = 0;
    for f in &files {
        for port in [peer_port, server.port] {
            let out = Command::new(&mllp_send)
                .args(["--loose", "-f"])
                .arg(f)
                .args(["-p", &port.to_string(), "127.0.0.1"])
                .output()
                .expect("mllp_send");
            assert!(
                out.status.success(),
                "{}: {}",
                f.display(),
                text(&out.stderr)
            );
            let stdout = text(&out.stdout);
            let acks: Vec<&str> = stdout.lines().collect();
            if port == server.port {
                assert!(!acks.is_empty());
                for a in &acks {
                    // CA where the message asks for enhanced mode (MSH-15/16)
                    assert!(
                        a.contains("\rMSA|AA|") || a.contains("\rMSA|CA|"),
                        "{}: {a:?}",
                        f.display()
                    );
                }
                expected_count += acks.len();
            }
        }
    }
    drop(peer);
    server.stop();
    let sent = split_log(&std::fs::read(&peer_log).expect("peer log"));
    let stored = common::stored(&StoreKind::Sqlite.config(&tmp.path().join("srv"))).await;
    assert_eq!(stored.len(), expected_count);
    assert_eq!(sent.len(), expected_count);
    let mut by_bytes: HashMap<&[u8], usize> = HashMap::new();
    for m in &stored {
        *by_bytes.entry(m.raw().expect("raw")).or_default() += 1;
        assert_eq!(m.summary.status, store::Status::Received);
        assert_eq!(m.summary.channel, "test");
    }
    for s in &sent {
        let n = by_bytes.get(s.as_slice()).copied().unwrap_or(0);
        assert!(
            n >= 1,
            "a message mllp_send sent is not stored byte for byte: {:?}",
            text(&s[..s.len().min(120)])
        );
    }
}

/// Splits the peer server's log into the messages it recorded.
fn split_log(all: &[u8]) -> Vec<Vec<u8>> {
    let sep = b"=== END OF MESSAGE ===\n";
    let mut out = Vec::new();
    let mut rest = all;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(rest[..i].to_vec());
        rest = &rest[i + sep.len()..];
    }
    out
}

#[test]
fn plexus_send_delivers_to_an_hl7apy_server() {
    let Some(python) = common::python() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let fixtures = common::root().join("crates/hl7v2/tests/fixtures");
    let files = [
        "adt_a01.hl7",
        "oru_r01.hl7",
        "many_messages.hl7",
        "lf_terminators.hl7",
        "batch.hl7",
    ]
    .map(|f| fixtures.join(f));
    for reply in ["AA", "AE"] {
        let log = tmp.path().join(format!("peer-{reply}.log"));
        let peer = Peer::start(
            &python,
            "mllp_ack_server.py",
            &[
                "--reply".as_ref(),
                reply.as_ref(),
                "--log".as_ref(),
                log.as_os_str(),
            ],
        );
        let port = peer.port.to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_plexus"))
            .args(["send", "--port", &port])
            .args(&files)
            .output()
            .expect("plexus send");
        drop(peer);
        let mut expected = Vec::new();
        for f in &files {
            let bytes = std::fs::read(f).expect("fixture");
            for m in MessageReader::new(std::io::BufReader::new(&bytes[..])) {
                expected.push(m.expect("message").bytes);
            }
        }
        let received = split_log(&std::fs::read(&log).expect("log"));
        assert_eq!(
            received, expected,
            "the peer did not receive exactly the messages of the files"
        );
        let summary = text(&out.stdout);
        assert!(
            summary.contains(&format!("sent {} messages", expected.len())),
            "{summary}"
        );
        if reply == "AA" {
            assert!(out.status.success(), "{summary}{}", text(&out.stderr));
            assert!(
                summary.contains(&format!("{} accepted", expected.len())),
                "{summary}"
            );
        } else {
            assert_eq!(out.status.code(), Some(1));
            assert!(
                summary.contains(&format!("{} with errors", expected.len())),
                "{summary}"
            );
            assert!(text(&out.stderr).contains(": AE"), "{}", text(&out.stderr));
        }
    }
}

fn tls_listener(pki: &Pki, mutual: bool) -> String {
    let mut t = format!(
        "[listener.tls]\ncert = {:?}\nkey = {:?}\n",
        pki.server_cert.display().to_string(),
        pki.server_key.display().to_string()
    );
    if mutual {
        use std::fmt::Write as _;
        let _ = writeln!(t, "client_ca = {:?}", pki.ca.display().to_string());
    }
    t
}

fn python_tls_client(
    python: &std::path::Path,
    port: u16,
    pki: &Pki,
    cert: Option<(&std::path::Path, &std::path::Path)>,
    version: &str,
    file: &std::path::Path,
) -> (Option<i32>, String) {
    let mut cmd = Command::new(python);
    cmd.arg(common::root().join("tests/peers/tls_mllp_client.py"))
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--tls-version",
            version,
            "--ca",
        ])
        .arg(&pki.ca);
    if let Some((c, k)) = cert {
        cmd.arg("--cert").arg(c).arg("--key").arg(k);
    }
    let out = cmd
        .arg(file)
        .stderr(Stdio::null())
        .output()
        .expect("python tls client");
    (out.status.code(), text(&out.stdout))
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_and_mutual_tls_with_python_ssl_peers() {
    let Some(python) = common::python() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let pki = Pki::new(&tmp.path().join("pki"));
    let file = tmp.path().join("adt.hl7");
    std::fs::write(&file, adt("TLS-1")).expect("write");

    // plain TLS, then mutual TLS with the client's subject recorded on the message
    let server = Server::start(
        &tmp.path().join("tls"),
        StoreKind::Sqlite,
        &tls_listener(&pki, false),
    );
    let (code, out) = python_tls_client(&python, server.port, &pki, None, "1.2", &file);
    assert_eq!((code, out.trim()), (Some(0), "ACK AA TLS-1"));
    let (code, out) = python_tls_client(&python, server.port, &pki, None, "1.0", &file);
    assert!(
        code == Some(3) && out.starts_with("HANDSHAKE_FAILED"),
        "TLS 1.0 was not refused by the server: {code:?} {out}"
    );
    server.stop();

    let server = Server::start(
        &tmp.path().join("mtls"),
        StoreKind::Sqlite,
        &tls_listener(&pki, true),
    );
    let (code, out) = python_tls_client(
        &python,
        server.port,
        &pki,
        Some((&pki.client_cert, &pki.client_key)),
        "1.3",
        &file,
    );
    assert_eq!((code, out.trim()), (Some(0), "ACK AA TLS-1"));
    let (code, out) = python_tls_client(
        &python,
        server.port,
        &pki,
        Some((&pki.rogue_cert, &pki.rogue_key)),
        "1.3",
        &file,
    );
    assert_eq!(
        code,
        Some(3),
        "a certificate of another CA was accepted: {out}"
    );
    let (code, out) = python_tls_client(&python, server.port, &pki, None, "1.2", &file);
    assert_eq!(
        code,
        Some(3),
        "a client without certificate was accepted: {out}"
    );
    // TLS 1.0 with a good client certificate is refused too
    let (code, _) = python_tls_client(
        &python,
        server.port,
        &pki,
        Some((&pki.client_cert, &pki.client_key)),
        "1.0",
        &file,
    );
    assert_eq!(code, Some(3));
    server.stop();
    let stored = common::stored(&StoreKind::Sqlite.config(&tmp.path().join("mtls"))).await;
    assert_eq!(
        stored.len(),
        1,
        "only the accepted client's message is stored"
    );
    let subject = stored[0].summary.tls_subject.clone().unwrap_or_default();
    assert!(subject.contains("CN=lab-system"), "{subject}");
}

#[test]
fn plexus_send_over_mutual_tls_to_a_python_server() {
    let Some(python) = common::python() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let pki = Pki::new(&tmp.path().join("pki"));
    let file = tmp.path().join("adt.hl7");
    std::fs::write(&file, format!("{}{}", adt("S-1"), adt("S-2"))).expect("write");
    let log = tmp.path().join("peer.log");
    let args = [
        "--cert".as_ref(),
        pki.server_cert.as_os_str(),
        "--key".as_ref(),
        pki.server_key.as_os_str(),
        "--ca".as_ref(),
        pki.ca.as_os_str(),
        "--require-client-cert".as_ref(),
        "--log".as_ref(),
        log.as_os_str(),
    ];
    let peer = Peer::start(&python, "tls_mllp_server.py", &args);
    let port = peer.port.to_string();
    let run = |cert: &std::path::Path, key: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_plexus"))
            .args(["send", "--port", &port, "--ca"])
            .arg(&pki.ca)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg(&file)
            .output()
            .expect("plexus send")
    };
    let ok = run(&pki.client_cert, &pki.client_key);
    let refused = run(&pki.rogue_cert, &pki.rogue_key);
    drop(peer);
    assert!(
        ok.status.success(),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    assert!(
        text(&ok.stdout).contains("sent 2 messages: 2 accepted"),
        "{}",
        text(&ok.stdout)
    );
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stdout));
    let log = text(&std::fs::read(&log).expect("log"));
    assert!(
        log.lines()
            .any(|l| l.starts_with("SUBJECT ") && l.contains("CN=lab-system")),
        "{log}"
    );
    assert_eq!(log.matches("=== END OF MESSAGE ===").count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_answered_and_the_server_keeps_serving() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start(
        &tmp.path().join("srv"),
        StoreKind::Sqlite,
        "max_frame_bytes = 65536\nread_timeout = \"700ms\"\nidle_timeout = \"5s\"\n",
    );
    let port = server.port;
    let healthy = |id: &str| {
        let ack = roundtrip(port, adt(id).as_bytes()).expect("ACK");
        assert_eq!(msa(&ack), ("AA".into(), id.into()));
    };
    healthy("OK-0");

    // an oversized frame: AR from its header, connection closed
    let big = format!("{}OBX|1|TX|NOTE||{}\r", adt("BIG-1"), "x".repeat(100_000));
    let reply = roundtrip(port, big.as_bytes()).expect("an AR before closing");
    assert_eq!(msa(&reply).0, "AR", "{reply}");
    healthy("OK-1");

    // garbage bytes before a frame are skipped
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET / HTTP/1.1\r\n\r\n\x00\xFF")
        .expect("garbage");
    s.write_all(format!("\x0b{}\x1c\r", adt("AFTER-GARBAGE")).as_bytes())
        .expect("frame");
    assert_eq!(msa(&read_frame(&mut s).expect("ACK")).0, "AA");
    drop(s);

    // a payload that is not HL7: AR with an ERR segment, stored as ERROR
    let reply = roundtrip(port, b"this is not HL7").expect("reply");
    assert_eq!(msa(&reply).0, "AR");
    assert!(reply.contains("\rERR|"), "{reply}");

    // an unknown MSH-18 character set: AR naming it, stored as ERROR
    let klingon =
        "MSH|^~\\&|LAB|HOSP|PLEXUS|HOSP|20240101||ADT^A01|KL-1|P|2.5.1||||||KLINGON\rPID|1\r";
    let reply = roundtrip(port, klingon.as_bytes()).expect("reply");
    assert_eq!(msa(&reply), ("AR".into(), "KL-1".into()));
    assert!(reply.contains("KLINGON"), "{reply}");

    // a frame cut by a closed connection
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(format!("\x0b{}", &adt("CUT-1")[..60]).as_bytes())
        .expect("half a frame");
    drop(s);
    healthy("OK-2");

    // a slow-loris client trickling one byte at a time is dropped after read_timeout
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let started = std::time::Instant::now();
    let frame = format!("\x0b{}\x1c\r", adt("SLOW-1"));
    let mut dropped = false;
    for b in frame.bytes() {
        if s.write_all(&[b]).is_err() {
            dropped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let mut rest = [0u8; 16];
    dropped |= matches!(s.read(&mut rest), Ok(0) | Err(_));
    assert!(
        dropped && started.elapsed() < Duration::from_secs(4),
        "the slow client was not dropped"
    );
    healthy("OK-3");

    server.stop();

    let stored = common::stored(&StoreKind::Sqlite.config(&tmp.path().join("srv"))).await;
    let errors: Vec<_> = stored
        .iter()
        .filter(|m| m.summary.status == store::Status::Error)
        .collect();
    assert_eq!(
        errors.len(),
        2,
        "the non-HL7 payload and the KLINGON message are stored as ERROR"
    );
    assert!(
        errors
            .iter()
            .any(|m| m.raw() == Some(&b"this is not HL7"[..]))
    );
    assert!(
        errors
            .iter()
            .all(|m| m.summary.error.as_deref().is_some_and(|e| !e.is_empty()))
    );
    assert_eq!(
        stored.len(),
        4 + 1 + 2,
        "healthy, after-garbage and the two errors"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_concurrent_connections() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start(&tmp.path().join("srv"), StoreKind::Sqlite, "");
    let port = server.port;
    // 1,000 concurrent connections, each sending one message
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        tasks.spawn(async move {
            let mut c =
                mllp::MllpClient::new(mllp::ClientConfig::new("127.0.0.1", port)).expect("client");
            let ack = c
                .send(adt(&format!("C-{i}")).as_bytes())
                .await
                .expect("send");
            c.close().await;
            msa(&text(&ack))
        });
    }
    let mut accepted = 0;
    while let Some(r) = tasks.join_next().await {
        if r.expect("task").0 == "AA" {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1000);
    server.stop();
    let stored = common::stored(&StoreKind::Sqlite.config(&tmp.path().join("srv"))).await;
    assert_eq!(stored.len(), 1000);
}

/// Clients send continuously; the server is SIGKILLed at a random moment and restarted; every
/// control id that was ACKed AA must be in the journal exactly once. Three rounds.
fn crash_test(store: &StoreKind) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("srv");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut acked: Vec<String> = Vec::new();
    let mut server = Server::start(&dir, store.clone(), "");
    let port = server.port;
    for round in 0..3u64 {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients: Vec<_> = (0..8)
            .map(|c| {
                let stop = std::sync::Arc::clone(&stop);
                rt.spawn(async move {
                    let mut config = mllp::ClientConfig::new("127.0.0.1", port);
                    config.retry.max_attempts = 1; // a retry could store a message twice
                    config.ack_timeout = Duration::from_secs(5);
                    let mut client = mllp::MllpClient::new(config).expect("client");
                    let mut ok = Vec::new();
                    let mut n = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let id = format!("R{round}C{c}N{n}");
                        n += 1;
                        match client.send(adt(&id).as_bytes()).await {
                            Ok(ack) if msa(&text(&ack)).0 == "AA" => ok.push(id),
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                    ok
                })
            })
            .collect();
        // a pseudo-random moment between 300 and 1,300 ms
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        std::thread::sleep(Duration::from_millis(300 + u64::from(nanos % 1000)));
        server.kill();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in clients {
            acked.extend(rt.block_on(c).expect("client task"));
        }
        server = Server::start_on(&dir, store.clone(), "", port);
    }
    server.stop();
    assert!(
        acked.len() > 100,
        "too little traffic to test anything: {}",
        acked.len()
    );
    let stored = rt.block_on(common::stored(&store.config(&dir)));
    let mut count: HashMap<String, usize> = HashMap::new();
    for m in &stored {
        *count
            .entry(m.summary.control_id.clone().unwrap_or_default())
            .or_default() += 1;
    }
    for id in &acked {
        assert_eq!(
            count.get(id).copied(),
            Some(1),
            "ACKed message {id} is in the journal {:?} times",
            count.get(id)
        );
    }
}

#[test]
fn crash_test_sqlite() {
    crash_test(&StoreKind::Sqlite);
}

#[test]
fn crash_test_postgres() {
    let schema = common::pg_schema("crash");
    let result = std::panic::catch_unwind(|| crash_test(&StoreKind::Postgres(schema.clone())));
    common::drop_schema(&schema);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let Some(python) = common::python() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let old = Pki::new(&tmp.path().join("old"));
    let new = Pki::new(&tmp.path().join("new"));
    // the listener reads its certificate from these paths; they are replaced before SIGHUP
    let live_cert = tmp.path().join("live.pem");
    let live_key = tmp.path().join("live.key");
    std::fs::copy(&old.server_cert, &live_cert).expect("copy");
    std::fs::copy(&old.server_key, &live_key).expect("copy");
    let tls = format!(
        "[listener.tls]\ncert = {:?}\nkey = {:?}\n",
        live_cert.display().to_string(),
        live_key.display().to_string()
    );
    let server = Server::start(&tmp.path().join("srv"), StoreKind::Sqlite, &tls);

    // a connection opened before the reload, trusting the old CA
    let mut config = mllp::ClientConfig::new("127.0.0.1", server.port);
    config.tls = Some(mllp::TlsClientConfig::new(&old.ca));
    let mut before = mllp::MllpClient::new(config).expect("client");
    assert_eq!(
        msa(&text(
            &before.send(adt("HUP-1").as_bytes()).await.expect("send")
        ))
        .0,
        "AA"
    );

    std::fs::copy(&new.server_cert, &live_cert).expect("copy");
    std::fs::copy(&new.server_key, &live_key).expect("copy");
    let status = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let start = std::time::Instant::now();
    while !server.log_text().contains("TLS certificates reloaded") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no reload: {}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // the open connection keeps working; new ones get the new certificate
    assert_eq!(
        msa(&text(
            &before
                .send(adt("HUP-2").as_bytes())
                .await
                .expect("send on the old connection")
        ))
        .0,
        "AA"
    );
    let file = tmp.path().join("adt.hl7");
    std::fs::write(&file, adt("HUP-3")).expect("write");
    let (code, out) = python_tls_client(&python, server.port, &new, None, "1.2", &file);
    assert_eq!((code, out.trim()), (Some(0), "ACK AA HUP-3"));
    let (code, _) = python_tls_client(&python, server.port, &old, None, "1.2", &file);
    assert_eq!(
        code,
        Some(3),
        "a new connection still got the old certificate"
    );
    before.close().await;
    server.stop();
}

#[test]
fn messages_list_and_show_read_the_journal() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("srv");
    let server = Server::start(&dir, StoreKind::Sqlite, "");
    let oru = "MSH|^~\\&|LAB|HOSP|PLEXUS|HOSP|20240101||ORU^R01^ORU_R01|ORU-1|P|2.5.1\rPID|1||9\rOBR|1\rOBX|1|NM|GLU||95||||||F\r";
    for payload in [adt("LIST-1"), adt("LIST-2"), oru.to_owned()] {
        assert!(roundtrip(server.port, payload.as_bytes()).is_some());
    }
    assert_eq!(
        msa(&roundtrip(server.port, b"not hl7").expect("reply")).0,
        "AR"
    );
    server.stop();
    let config = dir.join("plexus.toml");
    let plexus = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_plexus"))
            .arg("--config")
            .arg(&config)
            .args(["messages"])
            .args(args)
            .output()
            .expect("plexus messages");
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let rows = |out: &str| out.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
    let (code, all, _) = plexus(&["list"]);
    assert_eq!(code, Some(0));
    assert_eq!(rows(&all).len(), 4);
    let (_, adts, _) = plexus(&["list", "--type", "ADT"]);
    assert_eq!(rows(&adts).len(), 2);
    assert!(rows(&adts)[0].contains("LIST-2"), "newest first: {adts}");
    let (_, one, _) = plexus(&["list", "--control-id", "ORU-1"]);
    assert_eq!(rows(&one).len(), 1);
    let (_, errors, _) = plexus(&["list", "--status", "error"]);
    assert_eq!(rows(&errors).len(), 1);
    let (_, none, _) = plexus(&["list", "--from", "2999-01-01T00:00:00Z"]);
    assert!(rows(&none).is_empty());
    let (_, page, _) = plexus(&["list", "--limit", "1"]);
    assert_eq!(rows(&page).len(), 1);

    let id = rows(&one)[0]
        .split_whitespace()
        .next()
        .expect("id")
        .to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .arg("--config")
        .arg(&config)
        .args(["messages", "show", &id, "--raw"])
        .output()
        .expect("show");
    assert_eq!(
        out.stdout,
        oru.as_bytes(),
        "show --raw gives the bytes exactly as received"
    );
    let (code, shown, _) = plexus(&["show", &id]);
    assert_eq!(code, Some(0));
    assert!(
        shown.contains("control id:   ORU-1")
            && shown.contains("status:       RECEIVED")
            && shown.contains("destination 0 RAW"),
        "{shown}"
    );
    let (code, _, err) = plexus(&["show", "not-an-id"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not a valid message id"), "{err}");
    let (code, _, err) = plexus(&["list", "--status", "LOST"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--status"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn plexus_send_does_not_wait_for_acks_a_message_declines() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("srv");
    let server = Server::start(&dir, StoreKind::Sqlite, "");
    let never =
        "MSH|^~\\&|LAB|HOSP|PLEXUS|HOSP|20240101||ADT^A01^ADT_A01|NE-1|P|2.5.1|||NE|NE\rPID|1\r";
    let file = tmp.path().join("mixed.hl7");
    std::fs::write(&file, format!("{never}{}{never}", adt("AL-1"))).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(["send", "--timeout", "5", "--port", &server.port.to_string()])
        .arg(&file)
        .output()
        .expect("plexus send");
    let summary = text(&out.stdout);
    assert!(out.status.success(), "{summary}{}", text(&out.stderr));
    assert!(
        summary.contains("sent 3 messages: 1 accepted")
            && summary.contains("2 sent with MSH-15 NE"),
        "{summary}"
    );
    server.stop();
    let stored = common::stored(&StoreKind::Sqlite.config(&dir)).await;
    assert_eq!(stored.len(), 3, "all three messages arrived");
}
