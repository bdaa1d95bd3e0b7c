//! TLS and mutual TLS: round trips, client subjects, rejections, reload.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mllp::{ClientConfig, MllpClient, RetryConfig, ServerConfig, TlsClientConfig, TlsServerConfig};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::common::{
    Pki, Recorder, Running, ack_for, eventually, expect_closed, round_trip, start, test_config,
};

fn tls_server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    optional: bool,
) -> ServerConfig {
    ServerConfig {
        tls: Some(TlsServerConfig {
            client_ca: client_ca.map(Path::to_owned),
            client_cert_optional: optional,
            handshake_timeout: Duration::from_secs(2),
            ..TlsServerConfig::new(cert, key)
        }),
        ..test_config()
    }
}

fn client(
    server: &Running,
    ca: &Path,
    identity: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> MllpClient {
    MllpClient::new(ClientConfig {
        tls: Some(TlsClientConfig {
            cert: identity.map(|(c, _)| c.clone()),
            key: identity.map(|(_, k)| k.clone()),
            server_name: Some("localhost".into()),
            ..TlsClientConfig::new(ca)
        }),
        retry: RetryConfig {
            max_attempts: 1,
            ..RetryConfig::default()
        },
        ..ClientConfig::new("127.0.0.1", server.addr.port())
    })
    .unwrap()
}

#[tokio::test]
async fn tls_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let (cert, key) = pki.server("server");
    let handler = Arc::new(Recorder::default());
    let server = start(
        tls_server_config(&cert, &key, None, false),
        Arc::clone(&handler),
    );
    let mut client = client(&server, &pki.ca_cert, None);
    assert_eq!(
        client.send(b"over tls").await.unwrap(),
        ack_for(b"over tls")
    );
    assert_eq!(client.send(b"again").await.unwrap(), ack_for(b"again"));
    assert_eq!(handler.messages.lock().unwrap()[0].1.tls_subject, None);
    // The server name defaults to the host: the certificate also names 127.0.0.1.
    let mut by_ip = MllpClient::new(ClientConfig {
        tls: Some(TlsClientConfig::new(&pki.ca_cert)),
        ..ClientConfig::new("127.0.0.1", server.addr.port())
    })
    .unwrap();
    assert_eq!(by_ip.send(b"by ip").await.unwrap(), ack_for(b"by ip"));
    server.shutdown().await;
}

#[tokio::test]
async fn tls_1_2_clients_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let (cert, key) = pki.server("server");
    let server = start(
        tls_server_config(&cert, &key, None, false),
        Recorder::default(),
    );

    let mut roots = rustls::RootCertStore::empty();
    for ca in mllp::tls::load_certs(&pki.ca_cert).unwrap() {
        roots.add(ca).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(round_trip(&mut stream, b"tls12").await, ack_for(b"tls12"));
    server.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_passes_the_client_subject_to_the_handler() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let (cert, key) = pki.server("server");
    let lab = pki.client("lab", "lab-system", "Hospital");
    let handler = Arc::new(Recorder::default());
    let server = start(
        tls_server_config(&cert, &key, Some(&pki.ca_cert), false),
        Arc::clone(&handler),
    );
    let mut client = client(&server, &pki.ca_cert, Some(&lab));
    assert_eq!(client.send(b"signed").await.unwrap(), ack_for(b"signed"));
    assert_eq!(
        handler.messages.lock().unwrap()[0].1.tls_subject.as_deref(),
        Some("CN=lab-system,O=Hospital")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let other = Pki::new(dir.path(), "other");
    let (cert, key) = pki.server("server");
    let intruder = other.client("intruder", "lab-system", "Hospital");
    let handler = Arc::new(Recorder::default());
    let server = start(
        tls_server_config(&cert, &key, Some(&pki.ca_cert), false),
        Arc::clone(&handler),
    );
    let mut client = client(&server, &pki.ca_cert, Some(&intruder));
    assert!(client.send(b"forged").await.is_err());
    let stats = server.stats.clone();
    eventually("the handshake failure", || {
        stats.snapshot().tls_failures == 1
    })
    .await;
    assert!(handler.payloads().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn client_without_certificate_is_rejected_when_required() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let (cert, key) = pki.server("server");
    let handler = Arc::new(Recorder::default());
    let server = start(
        tls_server_config(&cert, &key, Some(&pki.ca_cert), false),
        Arc::clone(&handler),
    );
    let mut anonymous = client(&server, &pki.ca_cert, None);
    assert!(anonymous.send(b"who am i").await.is_err());
    let stats = server.stats.clone();
    eventually("the handshake failure", || {
        stats.snapshot().tls_failures == 1
    })
    .await;
    assert!(handler.payloads().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn optional_client_certificate_admits_anonymous_clients() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let (cert, key) = pki.server("server");
    let lab = pki.client("lab", "lab-system", "Hospital");
    let handler = Arc::new(Recorder::default());
    let server = start(
        tls_server_config(&cert, &key, Some(&pki.ca_cert), true),
        Arc::clone(&handler),
    );
    let mut anonymous = client(&server, &pki.ca_cert, None);
    assert_eq!(anonymous.send(b"anon").await.unwrap(), ack_for(b"anon"));
    let mut known = client(&server, &pki.ca_cert, Some(&lab));
    assert_eq!(known.send(b"known").await.unwrap(), ack_for(b"known"));
    let subjects: Vec<_> = handler
        .messages
        .lock()
        .unwrap()
        .iter()
        .map(|(_, peer)| peer.tls_subject.clone())
        .collect();
    assert_eq!(
        subjects,
        vec![None, Some("CN=lab-system,O=Hospital".to_owned())]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn reload_swaps_the_certificate_for_new_connections_only() {
    let dir = tempfile::tempdir().unwrap();
    let old_pki = Pki::new(dir.path(), "old");
    let new_pki = Pki::new(dir.path(), "new");
    let (cert, key) = old_pki.server("server");
    let server = start(
        tls_server_config(&cert, &key, None, false),
        Recorder::default(),
    );
    let reloader = server.tls.clone().unwrap();

    let mut existing = client(&server, &old_pki.ca_cert, None);
    assert_eq!(existing.send(b"before").await.unwrap(), ack_for(b"before"));

    // Replace the files with a certificate from another CA, then reload.
    let (new_cert, new_key) = new_pki.server("replacement");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    reloader.reload().unwrap();

    let mut fresh = client(&server, &new_pki.ca_cert, None);
    assert_eq!(fresh.send(b"new cert").await.unwrap(), ack_for(b"new cert"));
    let mut stale = client(&server, &old_pki.ca_cert, None);
    assert!(stale.send(b"old trust").await.is_err());
    // The connection made before the reload keeps working.
    assert!(existing.is_connected());
    assert_eq!(
        existing.send(b"still here").await.unwrap(),
        ack_for(b"still here")
    );
    assert_eq!(server.stats.snapshot().connections_accepted, 3);

    // A reload from broken files fails and keeps the working configuration.
    std::fs::write(&cert, "not a certificate").unwrap();
    let err = reloader.reload().unwrap_err();
    assert!(err.to_string().contains("server.pem"), "{err}");
    let mut after_failure = client(&server, &new_pki.ca_cert, None);
    assert_eq!(after_failure.send(b"kept").await.unwrap(), ack_for(b"kept"));
    server.shutdown().await;
}

#[tokio::test]
async fn mismatched_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let (cert, _) = pki.server("server");
    let (_, other_key) = pki.server("other");
    let err = mllp::MllpServer::bind(
        tls_server_config(&cert, &other_key, None, false),
        Recorder::default(),
    )
    .unwrap_err();
    assert!(matches!(err, mllp::Error::TlsFile { .. }), "{err}");
    // The error names the files, never the key's content.
    assert!(!err.to_string().contains("PRIVATE KEY"));
}

#[tokio::test]
async fn a_client_that_never_shakes_hands_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let (cert, key) = pki.server("server");
    let mut config = tls_server_config(&cert, &key, None, false);
    if let Some(tls) = config.tls.as_mut() {
        tls.handshake_timeout = Duration::from_millis(150);
    }
    let server = start(config, Recorder::default());
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    expect_closed(&mut silent).await;
    assert_eq!(server.stats.snapshot().tls_failures, 1);
    server.shutdown().await;
}
