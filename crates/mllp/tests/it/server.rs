//! The server over plain TCP: round trips, limits, timeouts, framing errors, shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use mllp::{ClientConfig, FrameError, MllpClient, RetryConfig, ServerConfig};
use tokio::io::AsyncWriteExt;

use crate::common::{
    Recorder, ack_for, eventually, expect_closed, read_frame, round_trip, start, test_config,
    write_frame,
};

#[tokio::test]
async fn round_trip_on_a_raw_socket() {
    let handler = Arc::new(Recorder::default());
    let server = start(test_config(), Arc::clone(&handler));
    let mut conn = server.connect().await;
    let msg = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101||ORU^R01|C1|P|2.5\rPID|1||42\r";
    assert_eq!(round_trip(&mut conn, msg).await, ack_for(msg));
    assert_eq!(round_trip(&mut conn, b"second").await, ack_for(b"second"));
    let seen = handler.messages.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].1.addr, conn.local_addr().unwrap());
    assert_eq!(seen[0].1.tls_subject, None);
    assert_eq!(seen[0].1.connection_id, seen[1].1.connection_id);
    drop(conn);
    let stats = server.stats.clone();
    eventually("the connection to close", || {
        stats.snapshot().connections_open == 0
    })
    .await;
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.messages, 2);
    assert_eq!(snapshot.replies, 2);
    assert_eq!(snapshot.connections_accepted, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn pipelined_frames_are_answered_in_order_one_at_a_time() {
    let handler = Arc::new(Recorder {
        delay: Duration::from_millis(5),
        ..Recorder::default()
    });
    let server = start(test_config(), Arc::clone(&handler));
    let mut conn = server.connect().await;
    let mut batch = Vec::new();
    for i in 0..5 {
        batch.extend_from_slice(&mllp::encode(format!("m{i}").as_bytes()).unwrap());
    }
    conn.write_all(&batch).await.unwrap();
    for i in 0..5 {
        let expected = ack_for(format!("m{i}").as_bytes());
        assert_eq!(read_frame(&mut conn).await, Some(expected));
    }
    assert_eq!(handler.max_running.load(Ordering::SeqCst), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_connections_are_all_answered() {
    const CLIENTS: usize = 1000;
    const MESSAGES: usize = 3;
    let handler = Arc::new(Recorder::default());
    let server = start(test_config(), Arc::clone(&handler));
    let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let port = server.addr.port();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let barrier = Arc::clone(&barrier);
        clients.spawn(async move {
            let mut client = MllpClient::new(ClientConfig::new("127.0.0.1", port)).unwrap();
            client.connect().await.unwrap();
            // Every connection is open before any message is sent.
            barrier.wait().await;
            for m in 0..MESSAGES {
                let payload = format!("client {c} message {m}");
                let ack = client.send(payload.as_bytes()).await.unwrap();
                assert_eq!(ack, ack_for(payload.as_bytes()));
            }
            client.close().await;
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    // a reply is counted once its write returned, which can be after the client read it
    eventually("every reply counted", || {
        server.stats.snapshot().replies == (CLIENTS * MESSAGES) as u64
    })
    .await;
    let snapshot = server.stats.snapshot();
    assert_eq!(snapshot.messages, (CLIENTS * MESSAGES) as u64);
    assert_eq!(snapshot.replies, (CLIENTS * MESSAGES) as u64);
    assert_eq!(snapshot.connections_accepted, CLIENTS as u64);
    assert_eq!(snapshot.connections_rejected, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn in_flight_limit_bounds_concurrent_handler_calls() {
    let handler = Arc::new(Recorder {
        delay: Duration::from_millis(20),
        ..Recorder::default()
    });
    let config = ServerConfig {
        max_in_flight: 2,
        ..test_config()
    };
    let server = start(config, Arc::clone(&handler));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..8 {
        let mut conn = server.connect().await;
        tasks.spawn(async move {
            for m in 0..3 {
                let payload = format!("{c}/{m}");
                assert_eq!(
                    round_trip(&mut conn, payload.as_bytes()).await,
                    ack_for(payload.as_bytes())
                );
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(handler.payloads().len(), 24);
    assert!(handler.max_running.load(Ordering::SeqCst) <= 2);
    server.shutdown().await;
}

#[tokio::test]
async fn receive_buffers_share_one_budget() {
    // room for two connections with a partial frame each (frame bytes + one 16 KiB read),
    // not three: the third waits until a stalled one is dropped by its read timeout
    let config = ServerConfig {
        read_timeout: Duration::from_millis(600),
        max_frame_bytes: 40 << 10,
        max_buffered_bytes: 104 << 10,
        ..test_config()
    };
    let handler = Arc::new(Recorder::default());
    let server = start(config, Arc::clone(&handler));
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut c = server.connect().await;
        let mut partial = vec![0x0B];
        partial.extend(std::iter::repeat_n(b'x', 30 << 10));
        c.write_all(&partial).await.unwrap();
        stalled.push(c);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let mut third = server.connect().await;
    let reply = tokio::time::timeout(
        crate::common::PATIENCE,
        round_trip(&mut third, b"after the budget frees"),
    )
    .await
    .unwrap();
    assert_eq!(reply, ack_for(b"after the budget frees"));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the third connection was read while two others held the whole budget"
    );
    // the stalled ones were dropped by their read timeout, which freed the budget
    assert!(server.stats.snapshot().timeouts >= 1);
    drop(stalled);
    server.shutdown().await;
}

#[test]
fn the_buffer_budget_must_hold_a_frame() {
    let config = ServerConfig {
        max_frame_bytes: 1 << 20,
        max_buffered_bytes: 1 << 20,
        ..test_config()
    };
    assert!(config.validate().is_err());
}

#[tokio::test]
async fn slow_loris_is_dropped_after_the_read_timeout() {
    let config = ServerConfig {
        read_timeout: Duration::from_millis(200),
        ..test_config()
    };
    let handler = Arc::new(Recorder::default());
    let server = start(config, Arc::clone(&handler));
    let mut conn = server.connect().await;
    // One byte every 20 ms: the connection is never silent, but the frame never completes
    // within 200 ms.
    let trickle = async {
        conn.write_all(b"\x0b").await.unwrap();
        for b in b"MSH|^~\\&|SLOW|".iter().cycle().take(1000) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if conn.write_all(&[*b]).await.is_err() {
                return;
            }
        }
        panic!("the server kept reading a trickled frame");
    };
    tokio::time::timeout(Duration::from_secs(5), trickle)
        .await
        .unwrap();
    assert_eq!(server.stats.snapshot().timeouts, 1);
    assert!(handler.payloads().is_empty());
    // Others are still served.
    let mut other = server.connect().await;
    assert_eq!(round_trip(&mut other, b"fine").await, ack_for(b"fine"));
    server.shutdown().await;
}

#[tokio::test]
async fn repeated_start_bytes_do_not_restart_the_read_timeout() {
    let config = ServerConfig {
        read_timeout: Duration::from_millis(200),
        ..test_config()
    };
    let server = start(config, Recorder::default());
    let mut conn = server.connect().await;
    let restarts = async {
        for _ in 0..500 {
            if conn.write_all(b"\x0bMSH").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("start bytes kept the connection open");
    };
    tokio::time::timeout(Duration::from_secs(5), restarts)
        .await
        .unwrap();
    assert_eq!(server.stats.snapshot().timeouts, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let config = ServerConfig {
        idle_timeout: Duration::from_millis(150),
        ..test_config()
    };
    let server = start(config, Recorder::default());
    // Silent from the start.
    let mut silent = server.connect().await;
    expect_closed(&mut silent).await;
    // Silent after a message.
    let mut after = server.connect().await;
    assert_eq!(round_trip(&mut after, b"one").await, ack_for(b"one"));
    expect_closed(&mut after).await;
    // Bytes that never start a frame do not keep a connection alive.
    let mut noisy = server.connect().await;
    let noise = async {
        for _ in 0..500 {
            if noisy.write_all(b"\n").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("noise kept the connection open");
    };
    tokio::time::timeout(Duration::from_secs(5), noise)
        .await
        .unwrap();
    let stats = server.stats.clone();
    eventually("three timeouts", || stats.snapshot().timeouts == 3).await;
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_frame_closes_the_connection_and_others_are_served() {
    let config = ServerConfig {
        max_frame_bytes: 1024,
        ..test_config()
    };
    let handler = Arc::new(Recorder::default());
    let server = start(config, Arc::clone(&handler));
    let mut other = server.connect().await;
    assert_eq!(round_trip(&mut other, b"before").await, ack_for(b"before"));

    let mut big = server.connect().await;
    // A frame that never ends: the server must not wait for (or buffer) the rest.
    big.write_all(b"\x0b").await.unwrap();
    let _ = big.write_all(&[b'A'; 4096]).await;
    expect_closed(&mut big).await;

    assert_eq!(round_trip(&mut other, b"after").await, ack_for(b"after"));
    assert!(matches!(
        handler.frame_errors.lock().unwrap()[..],
        [FrameError::TooLarge { limit: 1024, .. }]
    ));
    assert_eq!(
        handler.payloads(),
        vec![Bytes::from("before"), Bytes::from("after")]
    );
    assert_eq!(server.stats.snapshot().frame_errors, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn frame_error_hook_reply_is_sent_before_closing() {
    let config = ServerConfig {
        max_frame_bytes: 16,
        ..test_config()
    };
    let handler = Recorder {
        reject_frame_errors: true,
        ..Recorder::default()
    };
    let server = start(config, handler);
    let mut conn = server.connect().await;
    write_frame(&mut conn, &[b'x'; 17]).await;
    assert_eq!(
        read_frame(&mut conn).await,
        Some(Bytes::from_static(b"MSA|AR"))
    );
    expect_closed(&mut conn).await;
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_before_a_frame_is_skipped_and_counted() {
    let handler = Arc::new(Recorder::default());
    let server = start(test_config(), Arc::clone(&handler));
    let mut conn = server.connect().await;
    conn.write_all(b"\r\n\r\nGARBAGE").await.unwrap();
    assert_eq!(round_trip(&mut conn, b"msg").await, ack_for(b"msg"));
    // Some senders put a newline after each frame.
    conn.write_all(b"\n").await.unwrap();
    assert_eq!(round_trip(&mut conn, b"msg2").await, ack_for(b"msg2"));
    assert_eq!(server.stats.snapshot().skipped_bytes, 12);
    assert_eq!(server.stats.snapshot().frame_errors, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_frame_cut_by_a_closed_connection_is_reported() {
    let handler = Arc::new(Recorder::default());
    let server = start(test_config(), Arc::clone(&handler));
    let mut conn = server.connect().await;
    conn.write_all(b"\x0bMSH|^~\\&|CUT").await.unwrap();
    conn.shutdown().await.unwrap();
    drop(conn);
    let recorded = Arc::clone(&handler);
    eventually("the truncation to be reported", || {
        !recorded.frame_errors.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        handler.frame_errors.lock().unwrap()[0],
        FrameError::Truncated { offset: 0, len: 12 }
    );
    assert!(handler.payloads().is_empty());
    let mut next = server.connect().await;
    assert_eq!(round_trip(&mut next, b"next").await, ack_for(b"next"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_frame_cut_by_a_new_start_byte_is_dropped_and_the_new_one_answered() {
    let handler = Arc::new(Recorder::default());
    let server = start(test_config(), Arc::clone(&handler));
    let mut conn = server.connect().await;
    conn.write_all(b"\x0bpartial").await.unwrap();
    assert_eq!(round_trip(&mut conn, b"whole").await, ack_for(b"whole"));
    assert_eq!(handler.payloads(), vec![Bytes::from("whole")]);
    assert_eq!(
        handler.frame_errors.lock().unwrap()[..],
        [FrameError::Cut { offset: 0, len: 7 }]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn peers_outside_the_allowlist_are_closed_at_once() {
    let outside = ServerConfig {
        allow: serde_json::from_str(r#"["10.9.9.9", "192.168.0.0/16"]"#).unwrap(),
        ..test_config()
    };
    let handler = Arc::new(Recorder::default());
    let server = start(outside, Arc::clone(&handler));
    let mut conn = server.connect().await;
    conn.write_all(b"\x0bMSH|x\x1c\x0d").await.ok();
    expect_closed(&mut conn).await;
    assert_eq!(server.stats.snapshot().connections_rejected, 1);
    assert!(handler.payloads().is_empty(), "nothing was read");
    server.shutdown().await;

    let inside = ServerConfig {
        allow: serde_json::from_str(r#"["10.9.9.9", "127.0.0.0/8"]"#).unwrap(),
        ..test_config()
    };
    let server = start(inside, Recorder::default());
    let mut conn = server.connect().await;
    assert_eq!(round_trip(&mut conn, b"1").await, ack_for(b"1"));
    server.shutdown().await;
}

#[tokio::test]
async fn max_connections_is_enforced() {
    let config = ServerConfig {
        max_connections: 2,
        ..test_config()
    };
    let server = start(config, Recorder::default());
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    assert_eq!(round_trip(&mut first, b"1").await, ack_for(b"1"));
    assert_eq!(round_trip(&mut second, b"2").await, ack_for(b"2"));

    let mut third = server.connect().await;
    expect_closed(&mut third).await;
    assert_eq!(server.stats.snapshot().connections_rejected, 1);

    // A freed slot can be used again.
    drop(first);
    let stats = server.stats.clone();
    eventually("a slot to free up", || {
        stats.snapshot().connections_open == 1
    })
    .await;
    let mut fourth = server.connect().await;
    assert_eq!(round_trip(&mut fourth, b"4").await, ack_for(b"4"));
    assert_eq!(round_trip(&mut second, b"2b").await, ack_for(b"2b"));
    server.shutdown().await;
}

#[tokio::test]
async fn handler_can_skip_the_reply_or_close_the_connection() {
    let handler = Recorder {
        close_on: Some(b"bye"),
        close_after: Some(b"last"),
        silent_on: Some(b"no ack wanted"),
        ..Recorder::default()
    };
    let server = start(test_config(), handler);
    let mut conn = server.connect().await;
    // No reply to the first message; the connection goes on.
    write_frame(&mut conn, b"no ack wanted").await;
    assert_eq!(round_trip(&mut conn, b"hi").await, ack_for(b"hi"));
    write_frame(&mut conn, b"bye").await;
    assert_eq!(read_frame(&mut conn).await, None);
    let mut conn = server.connect().await;
    assert_eq!(round_trip(&mut conn, b"last").await, ack_for(b"last"));
    expect_closed(&mut conn).await;
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_messages_in_progress() {
    let handler = Arc::new(Recorder {
        gate: Some(tokio::sync::Semaphore::new(0)),
        ..Recorder::default()
    });
    let mut server = start(test_config(), Arc::clone(&handler));
    let mut idle = server.connect().await;
    let mut busy = server.connect().await;
    write_frame(&mut busy, b"in flight").await;
    let recorded = Arc::clone(&handler);
    eventually("the handler to start", || {
        recorded.running.load(Ordering::SeqCst) == 1
    })
    .await;

    server.begin_shutdown();
    // The idle connection closes at once; the busy one is still being handled.
    expect_closed(&mut idle).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !server.is_finished(),
        "serve returned before the handler finished"
    );
    // Once the handler finishes, its reply is written, then the connection closes.
    handler.gate.as_ref().unwrap().add_permits(1);
    assert_eq!(read_frame(&mut busy).await, Some(ack_for(b"in flight")));
    expect_closed(&mut busy).await;
    let addr = server.addr;
    server.shutdown().await;
    // No longer accepting.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn client_reconnects_after_the_server_closed_an_idle_connection() {
    let config = ServerConfig {
        idle_timeout: Duration::from_millis(100),
        ..test_config()
    };
    let server = start(config, Recorder::default());
    let mut client = MllpClient::new(ClientConfig {
        retry: RetryConfig {
            initial_delay: Duration::from_millis(10),
            ..RetryConfig::default()
        },
        ..ClientConfig::new("127.0.0.1", server.addr.port())
    })
    .unwrap();
    assert_eq!(client.send(b"a").await.unwrap(), ack_for(b"a"));
    let stats = server.stats.clone();
    eventually("the idle timeout", || stats.snapshot().timeouts == 1).await;
    assert_eq!(client.send(b"b").await.unwrap(), ack_for(b"b"));
    assert_eq!(server.stats.snapshot().connections_accepted, 2);
    server.shutdown().await;
}
