//! Alert rules against a real engine: a destination that cannot write its files (errors and
//! retries), a paused destination (queue depth), a stopped and an undeployed channel; each
//! change fires or resolves once. The webhook is a real HTTP server on loopback.

#![allow(clippy::unwrap_used, clippy::too_many_lines)]

use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::Value;
use store::Status;

use super::{AlertConfig, AlertEvent, Checker, spawn};
use crate::admin::tests::{TestEngine, file_channel, files_in, hl7, wait_for};

#[derive(serde::Deserialize)]
struct Rules {
    alert: Vec<AlertConfig>,
}

fn rules(text: &str) -> Vec<AlertConfig> {
    toml::from_str::<Rules>(text).unwrap().alert
}

/// (alert, state, channel, value) of each event.
fn seen(events: &[AlertEvent]) -> Vec<(String, &'static str, String, u64)> {
    events
        .iter()
        .map(|e| (e.alert.clone(), e.state, e.channel.clone(), e.value))
        .collect()
}

fn event(
    alert: &str,
    state: &'static str,
    channel: &str,
    value: u64,
) -> (String, &'static str, String, u64) {
    (alert.into(), state, channel.into(), value)
}

/// A channel whose only destination fails every write (a file stands where its folder
/// should be) and gives up after two attempts.
async fn failing_channel(t: &TestEngine, name: &str) {
    let dir = t.out(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sub"), "a file where a folder should be").unwrap();
    t.deploy(
        name,
        &format!(
            "[[destination]]\nname = \"out\"\n[destination.file]\ndirectory = \"{}\"\n\
             name = \"sub/${{messageId}}.hl7\"\n[destination.queue]\nmax_attempts = 2\n\
             initial_backoff = \"10ms\"\n",
            dir.display()
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_fire_and_resolve_once_per_change() {
    let t = TestEngine::new().await;
    failing_channel(&t, "bad").await;
    t.deploy("slow", &file_channel(&t, &["out"], "")).await;
    let engine = &t.engine;
    let mut c = Checker::new(rules(
        r#"
        [[alert]]
        name = "errors"
        when = "errors"
        above = 0
        within = "1m"

        [[alert]]
        name = "backlog"
        when = "queue-depth"
        above = 2

        [[alert]]
        name = "down"
        when = "stopped"
        "#,
    ));
    assert!(c.check(engine).await.is_empty(), "all is well");

    // a destination error (after a retry)
    let id = engine
        .accept(hl7("bad", "ADT^A01", "B1", "1"))
        .await
        .unwrap();
    assert_eq!(t.wait_status(id, engine::is_final).await, Status::Error);
    let stats = engine.metrics().stats("bad").unwrap();
    assert_eq!(
        (stats.destinations[0].errored, stats.destinations[0].retried),
        (1, 1)
    );
    assert_eq!(
        seen(&c.check(engine).await),
        [event("errors", "firing", "bad", 1)]
    );
    assert!(c.check(engine).await.is_empty(), "fires once");
    // a checker that starts after the errors still sees them
    let mut late = Checker::new(c.rules.clone());
    assert_eq!(
        seen(&late.check(engine).await),
        [event("errors", "firing", "bad", 1)]
    );

    // a backlog: three messages behind a paused destination. A claim the destination's worker
    // sent just before the pause may still deliver one message (under load it can reach the
    // store after the message): each message is waited for until it is queued or delivered,
    // and messages are sent until three wait.
    engine.pause_destination("slow", "out", true).unwrap();
    let mut sent = 0_u64;
    while t.queued("slow", "out").await < 3 {
        assert!(sent < 10, "messages keep leaving a paused destination");
        engine
            .accept(hl7("slow", "ADT^A01", &format!("S{sent}"), "1"))
            .await
            .unwrap();
        sent += 1;
        wait_for("the message to be queued or delivered", || async {
            let delivered = files_in(&t.out("out")) as u64;
            (t.queued("slow", "out").await + delivered == sent).then_some(())
        })
        .await;
    }
    assert_eq!(
        seen(&c.check(engine).await),
        [event("backlog", "firing", "slow", 3)]
    );
    assert!(c.check(engine).await.is_empty());
    engine.pause_destination("slow", "out", false).unwrap();
    wait_for("the queue to drain", || async {
        (t.queued("slow", "out").await == 0).then_some(())
    })
    .await;
    assert_eq!(
        seen(&c.check(engine).await),
        [event("backlog", "resolved", "slow", 0)]
    );
    assert!(c.check(engine).await.is_empty());

    // stopped, started
    engine.stop("slow").await.unwrap();
    assert_eq!(
        seen(&c.check(engine).await),
        [event("down", "firing", "slow", 1)]
    );
    assert!(c.check(engine).await.is_empty());
    engine.start("slow").unwrap();
    assert_eq!(
        seen(&c.check(engine).await),
        [event("down", "resolved", "slow", 0)]
    );

    // a minute without new errors
    let later = Instant::now() + Duration::from_secs(61);
    assert_eq!(
        seen(&c.check_at(engine, later).await),
        [event("errors", "resolved", "bad", 0)]
    );
    assert!(
        c.check_at(engine, later + Duration::from_secs(1))
            .await
            .is_empty()
    );

    // a channel undeployed while its alert fires: resolved, then forgotten (the clock stays
    // a minute ahead: going back would bring the errors into the window again)
    let ahead = || Instant::now() + Duration::from_secs(62);
    engine.stop("slow").await.unwrap();
    assert_eq!(
        seen(&c.check_at(engine, ahead()).await),
        [event("down", "firing", "slow", 1)]
    );
    engine.undeploy("slow").await.unwrap();
    assert_eq!(
        seen(&c.check_at(engine, ahead()).await),
        [event("down", "resolved", "slow", 0)]
    );
    assert!(c.check_at(engine, ahead()).await.is_empty());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_gets_each_change_once() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Option<String>, Bytes)>();
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| async move {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let _ = tx.send((content_type, body));
            "thanks"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move { axum::serve(listener, hook).await });

    let t = TestEngine::new().await;
    t.deploy("slow", &file_channel(&t, &["out"], "")).await;
    let task = spawn(
        &t.engine,
        rules(&format!(
            "[[alert]]\nname = \"down\"\nchannel = \"slow\"\nwhen = \"stopped\"\n\
             webhook = \"http://127.0.0.1:{port}/hook\"\n"
        )),
        Duration::from_millis(50),
    )
    .unwrap();
    let mut next = async || {
        let (content_type, body) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a webhook call")
            .unwrap();
        assert_eq!(content_type.as_deref(), Some("application/json"));
        serde_json::from_slice::<Value>(&body).unwrap()
    };

    t.engine.stop("slow").await.unwrap();
    let fired = next().await;
    assert_eq!(fired["alert"], "down");
    assert_eq!(fired["state"], "firing");
    assert_eq!(fired["channel"], "slow");
    assert_eq!(fired["when"], "stopped");
    assert_eq!(
        (fired["value"].as_u64(), fired["above"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(
        fired["at"]
            .as_str()
            .unwrap()
            .parse::<store::Timestamp>()
            .is_ok(),
        "{fired}"
    );
    assert_eq!(
        fired.as_object().unwrap().len(),
        7,
        "no more than documented: {fired}"
    );

    t.engine.start("slow").unwrap();
    let resolved = next().await;
    assert_eq!(
        (resolved["state"].as_str(), resolved["value"].as_u64()),
        (Some("resolved"), Some(0))
    );
    // checks go on, nothing changes: no more calls
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.try_recv().is_err(), "a change was posted twice");
    task.abort();
    server.abort();
    t.engine.shutdown().await;
}
