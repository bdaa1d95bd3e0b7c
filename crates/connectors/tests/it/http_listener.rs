//! The HTTP listener over real sockets, driven by Python's `http.client`, curl and raw TCP.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use connectors::http::{HttpListener, HttpListenerConfig};
use mllp::TlsServerConfig;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::common::{PATIENCE, Pki, Recorder, curl, eventually, python, python_client};

struct Running {
    port: u16,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<connectors::Result<()>>,
}

impl Running {
    fn start(config: HttpListenerConfig, recorder: &Arc<Recorder>) -> Self {
        let listener = HttpListener::bind(config, Arc::clone(recorder) as _).unwrap();
        let port = listener.local_addr().port();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(listener.run(async {
            stopped.await.ok();
        }));
        Self {
            port,
            stop: Some(stop),
            task,
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("the listener did not stop")
            .unwrap()
            .unwrap();
    }
}

fn config() -> HttpListenerConfig {
    HttpListenerConfig {
        path: "/hl7".into(),
        max_body_bytes: 1024,
        content_types: vec!["application/hl7-v2".into(), "text/plain".into()],
        ..HttpListenerConfig::new("127.0.0.1:0".parse().unwrap())
    }
}

const MSG: &str = "MSH|^~\\&|LAB|H|EHR|H|20260101||ORU^R01|C1|P|2.5\rPID|1||12345\r";

#[tokio::test]
async fn plain_http_statuses_from_an_independent_client() {
    let Some(python) = python() else { return };
    let recorder = Recorder::new();
    let server = Running::start(config(), &recorder);
    let hl7 = json!({"Content-Type": "application/hl7-v2; charset=utf-8"});
    let results = python_client(
        &python,
        vec!["--port".into(), server.port.to_string()],
        json!([
            {"path": "/hl7?from=lab", "headers": hl7, "body": MSG},
            {"path": "/hl7", "headers": hl7, "body": "MSH|REJECT"},
            {"method": "GET", "path": "/hl7"},
            {"path": "/other", "headers": hl7, "body": MSG},
            {"path": "/hl7", "headers": {"Content-Type": "application/json"}, "body": "{}"},
            {"path": "/hl7", "headers": hl7, "body": "x".repeat(2000)},
            {"path": "/hl7", "headers": hl7, "body": ""},
            {"path": "/hl7", "headers": hl7, "body": "MSH|STOREFAIL"},
        ]),
    )
    .await;
    let status = |i: usize| {
        results[i]["status"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}", results[i]))
    };
    let header = |i: usize, name: &str| {
        results[i]["headers"][name]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let body = |i: usize| results[i]["body"].as_str().unwrap().to_owned();

    assert_eq!(status(0), 200);
    assert_eq!(body(0), "ACK:1");
    assert_eq!(header(0, "content-type"), "application/hl7-v2");
    assert_eq!(header(0, "x-message-id"), "msg-1");

    assert_eq!(status(1), 422);
    assert_eq!(header(1, "content-type"), "application/json");
    let error: serde_json::Value = serde_json::from_str(&body(1)).unwrap();
    assert_eq!(error["error"], "the test engine refuses REJECT");
    assert_eq!(error["message_id"], "msg-2", "stored, then refused");

    assert_eq!(status(2), 405);
    assert_eq!(header(2, "allow"), "POST");
    assert_eq!(status(3), 404);
    assert_eq!(status(4), 415);
    assert!(body(4).contains("application/hl7-v2"), "{}", body(4));
    assert_eq!(status(5), 413);
    assert_eq!(status(6), 400);
    // Not stored: the client should send it again.
    assert_eq!(status(7), 503);
    assert!(body(7).contains("the test store is down"), "{}", body(7));

    // Only the three well-formed POSTs reached the engine, with their connection details.
    assert_eq!(recorder.count(), 3);
    let first = recorder.seen.lock().unwrap()[0].clone();
    assert_eq!(first.bytes, MSG.as_bytes());
    assert_eq!(first.origin.as_deref(), Some("/hl7?from=lab"));
    assert_eq!(
        first.content_type.as_deref(),
        Some("application/hl7-v2; charset=utf-8")
    );
    assert!(
        first
            .peer_addr
            .as_deref()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(first.tls_subject, None);
    assert!(
        !format!("{first:?}").contains("PID"),
        "Debug shows no message bytes"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn accepted_without_response_is_json_with_the_id() {
    struct Plain;
    impl connectors::Submit for Plain {
        fn submit(
            &self,
            _inbound: connectors::Inbound,
        ) -> futures_util::future::BoxFuture<'_, connectors::Receipt> {
            Box::pin(async { connectors::Receipt::accepted("01J0ABC") })
        }
    }
    let listener = HttpListener::bind(
        HttpListenerConfig::new("127.0.0.1:0".parse().unwrap()),
        Arc::new(Plain),
    )
    .unwrap();
    let port = listener.local_addr().port();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(listener.run(async {
        stopped.await.ok();
    }));
    let answer = raw_exchange(
        port,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with(r#"{"accepted":true,"message_id":"01J0ABC"}"#),
        "{answer}"
    );
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// Sends raw bytes, returns everything the server sends until it closes.
async fn raw_exchange(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out))
        .await
        .expect("no close")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn chunked_body_over_the_limit_and_slow_body() {
    let recorder = Recorder::new();
    let server = Running::start(
        HttpListenerConfig {
            read_timeout: Duration::from_secs(1),
            ..config()
        },
        &recorder,
    );
    // No Content-Length: the limit is found while reading.
    let chunk = "y".repeat(800);
    let request = format!(
        "POST /hl7 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"
    );
    let answer = raw_exchange(server.port, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Announces 10 bytes, sends 3, then stalls.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    stream
        .write_all(b"POST /hl7 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let mut out = vec![0; 1024];
    let n = tokio::time::timeout(PATIENCE, stream.read(&mut out))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&out[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(recorder.count(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_a_request_in_progress_finish() {
    let recorder = Recorder::gated();
    let mut server = Running::start(config(), &recorder);
    let port = server.port;
    let request = tokio::spawn(async move {
        raw_exchange(
            port,
            format!(
                "POST /hl7 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{MSG}",
                MSG.len()
            )
            .as_bytes(),
        )
        .await
    });
    eventually("the message to be submitted", || recorder.count() == 1).await;
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !server.task.is_finished(),
        "waits for the request in progress"
    );
    recorder.gate.as_ref().unwrap().add_permits(1);
    let answer = request.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ACK:1"), "{answer}");
    tokio::time::timeout(PATIENCE, &mut server.task)
        .await
        .expect("stopped")
        .unwrap()
        .unwrap();
}

fn tls_args(
    port: u16,
    ca: &Path,
    client: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Vec<String> {
    let mut args = vec![
        "--port".to_owned(),
        port.to_string(),
        "--ca".to_owned(),
        ca.display().to_string(),
    ];
    if let Some((cert, key)) = client {
        args.extend([
            "--cert".to_owned(),
            cert.display().to_string(),
            "--key".to_owned(),
            key.display().to_string(),
        ]);
    }
    args
}

#[tokio::test]
async fn https_and_mutual_tls_pass_the_client_subject() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let servers = Pki::new(dir.path(), "servers");
    let clients = Pki::new(dir.path(), "clients");
    let (cert, key) = servers.server("server");
    let lab = clients.client("lab", "lab-client", "Hospital");
    let stranger = Pki::new(dir.path(), "strangers").client("stranger", "stranger", "Elsewhere");
    let recorder = Recorder::new();

    // One-way TLS.
    let tls_only = Running::start(
        HttpListenerConfig {
            tls: Some(TlsServerConfig::new(&cert, &key)),
            ..config()
        },
        &recorder,
    );
    let post = json!([{"path": "/hl7", "headers": {"Content-Type": "text/plain"}, "body": MSG}]);
    let results = python_client(
        &python,
        tls_args(tls_only.port, &servers.ca_cert, None),
        post.clone(),
    )
    .await;
    assert_eq!(results[0]["status"], 200, "{results:?}");
    assert_eq!(recorder.last().tls_subject, None);
    // A client that does not trust the server's CA gives up.
    let results = python_client(
        &python,
        tls_args(tls_only.port, &clients.ca_cert, None),
        post.clone(),
    )
    .await;
    assert!(
        results[0]["error"]
            .as_str()
            .unwrap()
            .contains("CERTIFICATE_VERIFY_FAILED"),
        "{results:?}"
    );
    tls_only.shutdown().await;

    // Mutual TLS.
    let mutual = Running::start(
        HttpListenerConfig {
            tls: Some(TlsServerConfig {
                client_ca: Some(clients.ca_cert.clone()),
                ..TlsServerConfig::new(&cert, &key)
            }),
            ..config()
        },
        &recorder,
    );
    let results = python_client(
        &python,
        tls_args(mutual.port, &servers.ca_cert, Some(&lab)),
        post.clone(),
    )
    .await;
    assert_eq!(results[0]["status"], 200, "{results:?}");
    assert_eq!(
        recorder.last().tls_subject.as_deref(),
        Some("CN=lab-client,O=Hospital")
    );
    let before = recorder.count();
    for client in [None, Some(&stranger)] {
        let results = python_client(
            &python,
            tls_args(mutual.port, &servers.ca_cert, client),
            post.clone(),
        )
        .await;
        assert!(results[0].get("error").is_some(), "{results:?}");
    }
    assert_eq!(
        recorder.count(),
        before,
        "no message without a trusted client certificate"
    );

    mutual.shutdown().await;
}

#[tokio::test]
async fn curl_posts_with_a_client_certificate() {
    let Some(curl) = curl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let servers = Pki::new(dir.path(), "servers");
    let clients = Pki::new(dir.path(), "clients");
    let (cert, key) = servers.server("server");
    let lab = clients.client("lab", "lab-client", "Hospital");
    let recorder = Recorder::new();
    let mutual = Running::start(
        HttpListenerConfig {
            tls: Some(TlsServerConfig {
                client_ca: Some(clients.ca_cert.clone()),
                ..TlsServerConfig::new(&cert, &key)
            }),
            ..config()
        },
        &recorder,
    );
    let out = run_curl(
        &curl,
        &[
            "--silent".into(),
            "--show-error".into(),
            "--cacert".into(),
            servers.ca_cert.display().to_string(),
            "--cert".into(),
            lab.0.display().to_string(),
            "--key".into(),
            lab.1.display().to_string(),
            "-H".into(),
            "Content-Type: application/hl7-v2".into(),
            "--data-binary".into(),
            MSG.into(),
            "--write-out".into(),
            " %{http_code}".into(),
            format!("https://localhost:{}/hl7", mutual.port),
        ],
    )
    .await;
    assert_eq!(out, "ACK:1 200");
    let inbound = recorder.last();
    assert_eq!(
        inbound.bytes,
        MSG.as_bytes(),
        "curl --data-binary keeps the CRs"
    );
    assert_eq!(
        inbound.tls_subject.as_deref(),
        Some("CN=lab-client,O=Hospital")
    );
    mutual.shutdown().await;
}

/// Runs curl (on the blocking pool) and returns its standard output.
async fn run_curl(curl: &Path, args: &[String]) -> String {
    let (curl, args) = (curl.to_owned(), args.to_vec());
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(curl)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}
