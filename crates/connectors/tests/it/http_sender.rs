//! The HTTP sender against Python's `http.server`: statuses, timeouts, templated headers, TLS.

use std::collections::BTreeMap;
use std::time::Duration;

use connectors::http::{HttpClientTls, HttpSender, HttpSenderConfig, StatusMatch};
use connectors::{Destination, SendError, Template};

use crate::common::{Pki, PythonServer, fields, python};

fn sender(url: String) -> HttpSender {
    HttpSenderConfig {
        timeout: Duration::from_secs(5),
        ..HttpSenderConfig::new(url)
    }
    .build()
    .unwrap()
}

#[tokio::test]
async fn delivers_with_templated_headers() {
    let Some(python) = python() else { return };
    let peer = PythonServer::start(&python, &[]);
    let sender = HttpSenderConfig {
        method: "put".into(),
        headers: BTreeMap::from([
            (
                "X-Patient-Id".to_owned(),
                Template::parse("${PID-3-1}").unwrap(),
            ),
            (
                "X-Trace".to_owned(),
                Template::parse("plexus/${messageId}/${utcdate:%Y}").unwrap(),
            ),
            (
                "Authorization".to_owned(),
                Template::parse("Bearer t0ken").unwrap(),
            ),
        ]),
        ..HttpSenderConfig::new(peer.url("http", "/echo/in"))
    }
    .build()
    .unwrap();
    let f = fields(&[("PID-3-1", "12345"), ("messageId", "01J0")]);
    let delivered = sender.send(b"MSH|^~\\&|A\rPID|1\r", &f).await.unwrap();
    assert_eq!(delivered.detail, "HTTP 200 OK");
    assert_eq!(delivered.content_type.as_deref(), Some("application/json"));
    let echo: serde_json::Value = serde_json::from_slice(&delivered.response.unwrap()).unwrap();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/echo/in");
    assert_eq!(echo["body"], "MSH|^~\\&|A\rPID|1\r");
    assert_eq!(echo["headers"]["content-type"], "application/hl7-v2");
    assert_eq!(echo["headers"]["x-patient-id"], "12345");
    assert_eq!(echo["headers"]["authorization"], "Bearer t0ken");
    let trace = echo["headers"]["x-trace"].as_str().unwrap();
    assert!(trace.starts_with("plexus/01J0/20"), "{trace}");

    // Through the trait object the engine holds, the same; a second request reuses the pool.
    let dest: &dyn Destination = &sender;
    assert!(dest.send(b"again", &f).await.is_ok());
}

#[tokio::test]
async fn statuses_map_to_retryable_or_permanent() {
    let Some(python) = python() else { return };
    let peer = PythonServer::start(&python, &[]);
    let f = fields(&[]);
    for (code, retryable) in [
        (500, true),
        (503, true),
        (408, true),
        (429, true),
        (404, false),
        (400, false),
        (301, false),
    ] {
        let err = sender(peer.url("http", &format!("/status/{code}")))
            .send(b"m", &f)
            .await
            .unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{code}: {err}");
        assert!(err.message().contains(&format!("HTTP {code}")), "{err}");
        assert!(
            err.message().contains(&format!("peer answered {code}")),
            "{err}"
        );
    }
    // A custom list replaces the default.
    let custom = HttpSenderConfig {
        retry_on: vec![StatusMatch::Code(404)],
        ..HttpSenderConfig::new(peer.url("http", "/status/404"))
    }
    .build()
    .unwrap();
    assert!(custom.send(b"m", &f).await.unwrap_err().is_retryable());
    let custom = HttpSenderConfig {
        retry_on: vec![StatusMatch::Code(404)],
        ..HttpSenderConfig::new(peer.url("http", "/status/500"))
    }
    .build()
    .unwrap();
    assert!(!custom.send(b"m", &f).await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_retryable() {
    let Some(python) = python() else { return };
    let peer = PythonServer::start(&python, &[]);
    let slow = HttpSenderConfig {
        timeout: Duration::from_millis(300),
        ..HttpSenderConfig::new(peer.url("http", "/slow?s=3"))
    }
    .build()
    .unwrap();
    let started = std::time::Instant::now();
    let err = slow.send(b"m", &fields(&[])).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(&err, SendError::Retryable(m) if m.contains("no complete response")),
        "{err}"
    );

    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = sender(format!("http://127.0.0.1:{free_port}/"))
        .send(b"m", &fields(&[]))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.message().to_lowercase().contains("refused"), "{err}");
}

#[tokio::test]
async fn a_header_rendering_a_line_break_is_permanent() {
    let sender = HttpSenderConfig {
        headers: BTreeMap::from([("X-Id".to_owned(), Template::parse("${PID-3-1}").unwrap())]),
        ..HttpSenderConfig::new("http://127.0.0.1:9/")
    }
    .build()
    .unwrap();
    let err = sender
        .send(b"m", &fields(&[("PID-3-1", "1\r\nX-Injected: yes")]))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.message().contains("X-Id") || err.message().contains("x-id"),
        "{err}"
    );
}

#[tokio::test]
async fn https_with_a_private_ca_and_a_client_certificate() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let servers = Pki::new(dir.path(), "servers");
    let clients = Pki::new(dir.path(), "clients");
    let (cert, key) = servers.server("server");
    let (client_cert, client_key) = clients.client("plexus", "plexus-sender", "Hospital");
    let f = fields(&[]);

    let one_way = PythonServer::start(&python, &[&cert, &key]);
    let trusting = |url: String, client: bool| {
        HttpSenderConfig {
            tls: Some(HttpClientTls {
                ca: Some(servers.ca_cert.clone()),
                cert: client.then(|| client_cert.clone()),
                key: client.then(|| client_key.clone()),
            }),
            timeout: Duration::from_secs(5),
            ..HttpSenderConfig::new(url)
        }
        .build()
        .unwrap()
    };
    let delivered = trusting(one_way.url("https", "/echo"), false)
        .send(b"over tls", &f)
        .await
        .unwrap();
    assert_eq!(delivered.detail, "HTTP 200 OK");
    // By name too: the certificate is for localhost and 127.0.0.1.
    let by_name = format!("https://localhost:{}/echo", one_way.port);
    assert!(trusting(by_name, false).send(b"x", &f).await.is_ok());

    // A CA that did not sign the server's certificate: the handshake fails, retryable.
    let wrong_ca = HttpSenderConfig {
        tls: Some(HttpClientTls {
            ca: Some(clients.ca_cert.clone()),
            ..HttpClientTls::default()
        }),
        ..HttpSenderConfig::new(one_way.url("https", "/echo"))
    }
    .build()
    .unwrap();
    let err = wrong_ca.send(b"x", &f).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.message().contains("certificate"), "{err}");

    // Mutual TLS: the peer sees our subject; without a certificate it refuses us.
    let mutual = PythonServer::start(&python, &[&cert, &key, &clients.ca_cert]);
    let delivered = trusting(mutual.url("https", "/echo"), true)
        .send(b"mutual", &f)
        .await
        .unwrap();
    let echo: serde_json::Value = serde_json::from_slice(&delivered.response.unwrap()).unwrap();
    let subject = echo["client_subject"].to_string();
    assert!(subject.contains("plexus-sender"), "{subject}");
    let err = trusting(mutual.url("https", "/echo"), false)
        .send(b"x", &f)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
