//! The client: retries, timeouts and refusals.

use std::sync::Arc;
use std::time::Duration;

use mllp::{ClientConfig, Error, FrameError, MllpClient, MllpServer, RetryConfig};

use crate::common::{Recorder, ack_for, eventually, start, test_config};

fn quick_retry(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        ..RetryConfig::default()
    }
}

/// A port with nothing listening on it (just released by the system).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let mut client = MllpClient::new(ClientConfig {
        retry: quick_retry(3),
        ..ClientConfig::new("127.0.0.1", free_port())
    })
    .unwrap();
    match client.send(b"hello").await {
        Err(Error::RetriesExhausted { attempts: 3, last }) => {
            assert!(matches!(*last, Error::Io { .. }), "{last}");
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert!(!client.is_connected());
}

#[tokio::test]
async fn retries_until_the_server_is_up() {
    let port = free_port();
    let mut client = MllpClient::new(ClientConfig {
        retry: quick_retry(50),
        ..ClientConfig::new("127.0.0.1", port)
    })
    .unwrap();
    let late_server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let config = mllp::ServerConfig {
            bind: format!("127.0.0.1:{port}").parse().unwrap(),
            ..test_config()
        };
        let server = MllpServer::bind(config, Recorder::default()).unwrap();
        server.serve(std::future::pending()).await
    });
    assert_eq!(client.send(b"late").await.unwrap(), ack_for(b"late"));
    late_server.abort();
}

#[tokio::test]
async fn a_response_timeout_is_not_retried() {
    let handler = Arc::new(Recorder {
        delay: Duration::from_millis(500),
        ..Recorder::default()
    });
    let server = start(test_config(), Arc::clone(&handler));
    let mut client = MllpClient::new(ClientConfig {
        ack_timeout: Duration::from_millis(100),
        retry: quick_retry(5),
        ..ClientConfig::new("127.0.0.1", server.addr.port())
    })
    .unwrap();
    let err = client.send(b"slow").await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(!client.is_connected());
    assert_eq!(handler.payloads().len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_broken_connection_is_retried_and_may_deliver_twice() {
    // The handler stores the message, then the connection breaks before the ACK: the client
    // cannot tell, so it sends again (at-least-once).
    let handler = Arc::new(Recorder {
        close_on: Some(b"lost ack"),
        ..Recorder::default()
    });
    let server = start(test_config(), Arc::clone(&handler));
    let mut client = MllpClient::new(ClientConfig {
        retry: quick_retry(2),
        ..ClientConfig::new("127.0.0.1", server.addr.port())
    })
    .unwrap();
    let err = client.send(b"lost ack").await.unwrap_err();
    assert!(
        matches!(err, Error::RetriesExhausted { attempts: 2, ref last } if matches!(**last, Error::ConnectionClosed { .. })),
        "{err}"
    );
    assert_eq!(handler.payloads().len(), 2);
    // The client is usable afterwards.
    assert_eq!(client.send(b"ok").await.unwrap(), ack_for(b"ok"));
    server.shutdown().await;
}

#[tokio::test]
async fn unframeable_payloads_are_refused_before_connecting() {
    let mut client = MllpClient::new(ClientConfig::new("127.0.0.1", free_port())).unwrap();
    let err = client.send(b"MSH|\x0b").await.unwrap_err();
    assert!(matches!(
        err,
        Error::Frame(FrameError::ForbiddenByte {
            byte: 0x0b,
            offset: 4
        })
    ));
}

#[test]
fn bad_configuration_is_refused() {
    let config = ClientConfig {
        retry: RetryConfig {
            max_attempts: 0,
            ..RetryConfig::default()
        },
        ..ClientConfig::new("127.0.0.1", 2575)
    };
    assert!(matches!(MllpClient::new(config), Err(Error::Config(_))));
}

#[tokio::test]
async fn a_connection_closed_by_the_server_is_replaced_without_spending_an_attempt() {
    let config = mllp::ServerConfig {
        idle_timeout: Duration::from_millis(100),
        ..test_config()
    };
    let server = start(config, Recorder::default());
    let mut client = MllpClient::new(ClientConfig {
        retry: quick_retry(1),
        ..ClientConfig::new("127.0.0.1", server.addr.port())
    })
    .unwrap();
    assert_eq!(client.send(b"a").await.unwrap(), ack_for(b"a"));
    let stats = server.stats.clone();
    eventually("the server to close the idle connection", || {
        let s = stats.snapshot();
        s.timeouts == 1 && s.connections_open == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    // One attempt allowed, and it is not wasted on the dead connection.
    assert_eq!(client.send(b"b").await.unwrap(), ack_for(b"b"));
    server.shutdown().await;
}
