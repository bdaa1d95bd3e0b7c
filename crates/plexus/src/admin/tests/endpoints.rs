//! Every endpoint against a real engine on a SQLite store, through the router: channels,
//! destinations, message search and display, reprocessing, health, metrics and queues.

#![allow(clippy::too_many_lines, clippy::many_single_char_names)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use store::{Journal as _, MessageId, NewMessage, Status, Store as _, Timestamp};

use super::openapi::{Api, doc, ids};
use super::{TestEngine, file_channel, files_in, hl7, wait_for};
use crate::admin::{AdminState, router, routes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_operations() {
    let t = TestEngine::new().await;
    let adt = file_channel(&t, &["lab", "archive"], "");
    t.deploy("adt", &adt).await;
    let keep = t.out("kept-archive");
    t.deploy(
        "kept",
        &file_channel(
            &t,
            &["out"],
            &format!(
                "[retention]\nmax_messages = 1\narchive_dir = \"{}\"\n",
                keep.display()
            ),
        ),
    )
    .await;
    let api = Api::new(t.router());

    // list and show
    let list = api.get("/api/channels").await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["adt", "kept"]);
    let c = api.get("/api/channels/adt").await;
    assert_eq!(c["state"], "STARTED");
    assert_eq!(c["description"], "test channel");
    assert_eq!(c["source"], Value::Null);
    assert!(c["file"].as_str().unwrap().ends_with("adt.toml"));
    assert_eq!(c["destinations"][0]["name"], "lab");
    assert_eq!(c["destinations"][1]["number"], 2);
    assert_eq!(
        c["destinations"][0]["queue"],
        json!({"ready": 0, "leased": 0, "dead": 0})
    );
    assert_eq!(c["stats"]["received"], 0);
    let e = api.fails("GET", "/api/channels/nosuch", None, 404).await;
    assert!(e.contains("nosuch"), "{e}");

    // pause, stop, start: each answers the new state
    let r = api.post("/api/channels/adt/pause", None).await;
    assert_eq!(r, json!({"channel": "adt", "state": "PAUSED"}));
    let r = api.post("/api/channels/adt/stop", None).await;
    assert_eq!(r["state"], "STOPPED");
    let e = api
        .fails("POST", "/api/channels/adt/pause", None, 409)
        .await;
    assert!(e.contains("stopped"), "{e}");
    let r = api.post("/api/channels/adt/start", None).await;
    assert_eq!(r["state"], "STARTED");
    for action in ["start", "stop", "pause", "undeploy", "prune"] {
        api.fails("POST", &format!("/api/channels/nosuch/{action}"), None, 404)
            .await;
    }

    // one destination paused: its messages wait, the other destination delivers
    let r = api
        .post("/api/channels/adt/destinations/lab/pause", None)
        .await;
    assert_eq!(
        r,
        json!({"channel": "adt", "destination": "lab", "paused": true})
    );
    assert_eq!(
        api.get("/api/channels/adt").await["destinations"][0]["paused"],
        true
    );
    let id = t
        .engine
        .accept(hl7("adt", "ADT^A01", "P1", "1"))
        .await
        .unwrap();
    let store = Arc::clone(&t.store);
    wait_for(
        "the archive destination to send while lab is paused",
        || {
            let store = Arc::clone(&store);
            async move {
                let m = store.get(id).await.unwrap()?;
                let archive = m.destination(2)?;
                (archive.status == Status::Sent && m.destination(1)?.status == Status::Queued)
                    .then_some(())
            }
        },
    )
    .await;
    let queues = api.get("/api/queues").await["queues"].clone();
    let lab = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["destination"] == "lab")
        .unwrap()
        .clone();
    assert_eq!(lab["queue"], "adt/1");
    assert_eq!(lab["paused"], true);
    assert_eq!(
        lab["depth"]["ready"].as_u64().unwrap() + lab["depth"]["leased"].as_u64().unwrap(),
        1
    );
    assert_eq!(files_in(&t.out("lab")), 0);
    // resumed by number
    let r = api
        .post("/api/channels/adt/destinations/1/resume", None)
        .await;
    assert_eq!(r["paused"], false);
    assert_eq!(t.wait_status(id, engine::is_final).await, Status::Sent);
    assert_eq!(files_in(&t.out("lab")), 1);
    assert_eq!(
        api.get("/api/channels/adt").await["destinations"][0]["queue"]["ready"],
        0
    );
    api.fails(
        "POST",
        "/api/channels/adt/destinations/nosuch/pause",
        None,
        404,
    )
    .await;
    api.fails("POST", "/api/channels/adt/destinations/3/resume", None, 404)
        .await;
    api.fails(
        "POST",
        "/api/channels/nosuch/destinations/lab/pause",
        None,
        404,
    )
    .await;

    // undeploy, then deploy again from the file
    let r = api.post("/api/channels/adt/undeploy", None).await;
    assert_eq!(r, json!({"channel": "adt", "state": null}));
    api.fails("GET", "/api/channels/adt", None, 404).await;
    assert_eq!(
        api.get("/api/channels").await.as_array().unwrap().len(),
        1,
        "only kept"
    );
    let r = api.post("/api/channels/adt/deploy", None).await;
    assert_eq!(r["state"], "STARTED");
    assert_eq!(
        api.get("/api/channels/adt").await["destinations"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // deploy re-reads the file: a change shows; an invalid file is located and changes nothing
    t.write_channel("adt", &adt.replace("test channel", "edited"));
    api.post("/api/channels/adt/deploy", None).await;
    assert_eq!(api.get("/api/channels/adt").await["description"], "edited");
    t.write_channel("adt", &adt.replacen('\n', "\nbogus = 1\n", 1));
    let e = api
        .fails("POST", "/api/channels/adt/deploy", None, 422)
        .await;
    assert!(e.contains("adt.toml:2:1"), "no file:line:column in {e:?}");
    assert!(e.contains("bogus"), "{e}");
    let c = api.get("/api/channels/adt").await;
    assert_eq!(
        (c["state"].as_str(), c["description"].as_str()),
        (Some("STARTED"), Some("edited"))
    );
    let e = api
        .fails("POST", "/api/channels/ghost/deploy", None, 404)
        .await;
    assert!(e.contains("ghost") && e.contains("adt.toml:2:1"), "{e}");
    // a file named otherwise, found by its `name` key, although adt.toml is broken
    std::fs::write(
        t.channels_dir().join("some-file.toml"),
        format!("name = \"alias\"\n{}", file_channel(&t, &["alias-out"], "")),
    )
    .unwrap();
    let r = api.post("/api/channels/alias/deploy", None).await;
    assert_eq!(r, json!({"channel": "alias", "state": "STARTED"}));
    api.fails("POST", "/api/channels/a%20b/deploy", None, 400)
        .await;
    api.fails("POST", "/api/channels/..%2Fx/deploy", None, 400)
        .await;
    let without_folder = Api::new(router(AdminState {
        engine: Arc::clone(&t.engine),
        channels_dir: None,
        auth: None,
        audit: None,
        oidc: None,
    }));
    let e = without_folder
        .fails("POST", "/api/channels/adt/deploy", None, 409)
        .await;
    assert!(e.contains("channels folder"), "{e}");

    // prune: retention keeps the newest message, archives the others once
    let mut last = None;
    for n in 0..3 {
        last = Some(
            t.accept_processed(hl7("kept", "ADT^A01", &format!("K{n}"), "9"))
                .await,
        );
    }
    let r = api.post("/api/channels/kept/prune", None).await;
    assert_eq!(
        (r["deleted"].as_u64(), r["archived"].as_u64()),
        (Some(2), Some(2)),
        "{r}"
    );
    let archive = PathBuf::from(r["archive"].as_str().unwrap());
    assert!(archive.starts_with(&keep) && archive.is_file(), "{r}");
    assert_eq!(
        api.search("channel=kept").await,
        [last.unwrap().to_string()]
    );
    let r = api.post("/api/channels/adt/prune", None).await;
    assert_eq!(
        r,
        json!({"deleted": 0, "archived": 0, "archive": null}),
        "no retention"
    );
    let r = api.post("/api/channels/kept/prune", None).await;
    assert_eq!(r, json!({"deleted": 0, "archived": 0, "archive": null}));
    assert_eq!(
        files_in(&keep),
        1,
        "a prune that deletes nothing writes no archive"
    );
    t.engine.shutdown().await;
}

/// Two channels and five messages at known times (`T0`, +1 h, +1 h 30, +2 h, +3 h).
struct Journal {
    t: TestEngine,
    api: Api,
    a1: String,
    a2: String,
    a3: String,
    a4: String,
    o1: String,
    raw_a1: String,
    raw_a4: Vec<u8>,
}

/// A message id no test stores.
const UNKNOWN_ID: &str = "01JH8Z6XKQ3V5S0Y7T2M4N9B1C";

const T0: &str = "2025-03-01T10:00:00Z";

fn at(offset_minutes: i64) -> Timestamp {
    let t0: Timestamp = T0.parse().unwrap();
    Timestamp::from_micros(t0.as_micros() + offset_minutes * 60_000_000)
}

async fn journal() -> Journal {
    let t = TestEngine::new().await;
    t.deploy("adt", &file_channel(&t, &["lab", "archive"], ""))
        .await;
    t.deploy("other", &file_channel(&t, &["other-out"], ""))
        .await;
    let add = async |mut m: NewMessage, minutes: i64| {
        m.received_at = at(minutes);
        t.accept_processed(m).await.to_string()
    };
    let m1 = hl7("adt", "ADT^A01", "C1", "111");
    let raw_a1 = String::from_utf8(m1.raw.clone()).unwrap();
    let a1 = add(m1, 0).await;
    let a2 = add(hl7("adt", "ADT^A08", "C2", "222"), 60).await;
    let a3 = add(hl7("adt", "ORU^R01", "C3", "111"), 120).await;
    // stored in error by its source (it does not parse): not processed
    let raw_a4 = b"MSH|^~\\&|\xff\xfe|\r".to_vec();
    let mut m4 = NewMessage::new("adt", raw_a4.clone());
    m4.status = Status::Error;
    m4.error = Some("not HL7".into());
    let a4 = add(m4, 180).await;
    let o1 = add(hl7("other", "ADT^A01", "C1", "111"), 90).await;
    let api = Api::new(t.router());
    Journal {
        t,
        api,
        a1,
        a2,
        a3,
        a4,
        o1,
        raw_a1,
        raw_a4,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_search_and_show() {
    let j = journal().await;
    let (api, a1, a2, a3, a4, o1) = (&j.api, &*j.a1, &*j.a2, &*j.a3, &*j.a4, &*j.o1);
    // every filter, alone and together; newest first
    assert_eq!(api.search("").await, [o1, a4, a3, a2, a1]);
    assert_eq!(api.search("channel=adt").await, [a4, a3, a2, a1]);
    assert_eq!(api.search("channel=other").await, [o1]);
    assert_eq!(api.search("status=error").await, [a4]);
    assert_eq!(api.search("status=SENT&channel=adt").await, [a3, a2, a1]);
    assert_eq!(api.search("type=ORU").await, [a3]);
    assert_eq!(api.search("type=ADT&event=A08").await, [a2]);
    assert_eq!(api.search("event=A01").await, [o1, a1]);
    assert_eq!(api.search("control_id=C1").await, [o1, a1]);
    assert_eq!(api.search("control_id=C1&channel=other").await, [o1]);
    assert_eq!(
        api.search("from=2025-03-01T11:00:00Z&to=2025-03-01T12:00:00Z")
            .await,
        [o1, a2],
        "from is inclusive, to exclusive"
    );
    assert_eq!(
        api.search("from=2025-03-01T13:00:00%2B01:00").await,
        [a4, a3],
        "an offset, percent-encoded: 13:00+01:00 is 12:00Z"
    );
    assert_eq!(api.search("to=2025-03-01T10:00:00.000001Z").await, [a1]);
    assert_eq!(api.search("meta.MRN=111").await, [o1, a3, a1]);
    assert_eq!(api.search("meta.MRN=111&channel=adt&type=ADT").await, [a1]);
    assert!(api.search("meta.MRN=999").await.is_empty());
    assert!(api.search("meta.PATIENT=111").await.is_empty());
    assert!(api.search(&format!("original={a1}")).await.is_empty());

    // paging: `next_before` until it is null
    let page = api.get("/api/messages?limit=2").await;
    assert_eq!(ids(&page["messages"]), [o1, a4]);
    assert_eq!(page["next_before"], a4);
    let page = api.get(&format!("/api/messages?limit=2&before={a4}")).await;
    assert_eq!(ids(&page["messages"]), [a3, a2]);
    assert_eq!(page["next_before"], a2);
    let page = api.get(&format!("/api/messages?limit=2&before={a2}")).await;
    assert_eq!(ids(&page["messages"]), [a1]);
    assert_eq!(page["next_before"], Value::Null, "the last page");
    let page = api.get("/api/messages?channel=adt").await;
    assert_eq!(
        page["next_before"],
        Value::Null,
        "fewer than the default limit"
    );

    // what is refused
    for (query, says) in [
        ("status=bogus", "status"),
        ("colour=red", "unknown search parameter"),
        ("destinations=lab", "unknown search parameter"),
        ("from=yesterday", "RFC 3339"),
        ("to=2025-03-01", "RFC 3339"),
        ("limit=many", "limit"),
        ("before=nope", "message id"),
        ("original=42", "message id"),
        ("channel=a&channel=b", "twice"),
        ("meta.MRN=1&meta.MRN=2", "twice"),
        ("meta.=1", "unknown search parameter"),
        ("from=%ZZ", ""),
    ] {
        let e = api
            .fails("GET", &format!("/api/messages?{query}"), None, 400)
            .await;
        assert!(e.contains(says), "{query}: {e}");
    }

    // a message: summary, metadata, destination rows, every content stage
    let m = api.get(&format!("/api/messages/{a1}")).await;
    let s = &m["summary"];
    assert_eq!(s["id"], a1);
    assert_eq!(s["channel"], "adt");
    assert_eq!(s["received_at"], "2025-03-01T10:00:00.000000Z");
    assert_eq!(
        (
            s["message_type"].as_str(),
            s["trigger_event"].as_str(),
            s["control_id"].as_str()
        ),
        (Some("ADT"), Some("A01"), Some("C1"))
    );
    assert_eq!(s["status"], "SENT");
    assert_eq!(s["original_id"], Value::Null);
    assert_eq!(m["metadata"], json!([["MRN", "111"]]));
    let dests: Vec<(&str, &str)> = m["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap(), d["status"].as_str().unwrap()))
        .collect();
    assert_eq!(dests, [("lab", "SENT"), ("archive", "SENT")]);
    let stages: Vec<(u64, &str)> = m["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["destination"].as_u64().unwrap(),
                c["stage"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(stages.contains(&(0, "RAW")), "{stages:?}");
    for d in [1, 2] {
        assert!(
            stages.contains(&(d, "ENCODED")) && stages.contains(&(d, "SENT")),
            "{stages:?}"
        );
    }
    let raw = &m["content"][0];
    assert_eq!(
        (raw["stage"].as_str(), raw["encoding"].as_str()),
        (Some("RAW"), Some("text"))
    );
    assert_eq!(raw["data"], j.raw_a1.as_str());
    // content that is not UTF-8 comes as hex
    let m = api.get(&format!("/api/messages/{a4}")).await;
    assert_eq!(m["summary"]["status"], "ERROR");
    assert_eq!(m["summary"]["error"], "not HL7");
    assert_eq!(m["content"][0]["encoding"], "hex");
    assert_eq!(m["content"][0]["data"], engine::ops::hex(&j.raw_a4));
    assert!(m["content"][0]["data"].as_str().unwrap().contains("fffe"));
    let unknown = UNKNOWN_ID;
    let e = api
        .fails("GET", &format!("/api/messages/{unknown}"), None, 404)
        .await;
    assert!(e.contains(unknown), "{e}");
    api.fails("GET", "/api/messages/not-an-id", None, 400).await;
    j.t.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprocessing() {
    let j = journal().await;
    let (t, api, a1, a2, o1) = (&j.t, &j.api, &*j.a1, &*j.a2, &*j.o1);
    assert_eq!(
        (files_in(&t.out("lab")), files_in(&t.out("archive"))),
        (3, 3)
    );
    let done = async |copy: &str| {
        let id: MessageId = copy.parse().unwrap();
        t.wait_status(id, engine::is_final).await;
        api.get(&format!("/api/messages/{copy}")).await
    };
    let destinations = |m: &Value| -> Vec<String> {
        m["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                format!(
                    "{}={}",
                    d["name"].as_str().unwrap(),
                    d["status"].as_str().unwrap()
                )
            })
            .collect()
    };

    // one message, to one destination (body): a new message linked to the original
    let r = api
        .post(
            &format!("/api/messages/{a1}/reprocess"),
            Some(r#"{"destinations": ["archive"]}"#),
        )
        .await;
    assert_eq!(r["original"], a1);
    let copy = r["copy"].as_str().unwrap().to_owned();
    assert_ne!(&copy, a1);
    let m = done(&copy).await;
    assert_eq!(m["summary"]["original_id"], a1);
    assert_eq!(m["summary"]["route_only"], json!([2]));
    assert_eq!(m["summary"]["status"], "SENT");
    assert_eq!(m["metadata"], json!([["MRN", "111"]]));
    assert_eq!(destinations(&m), ["archive=SENT"]);
    assert_eq!(
        m["content"][0]["data"],
        j.raw_a1.as_str(),
        "the received bytes again"
    );
    assert_eq!(
        (files_in(&t.out("lab")), files_in(&t.out("archive"))),
        (3, 4)
    );
    assert_eq!(api.search(&format!("original={a1}")).await, [copy.as_str()]);
    let original = api.get(&format!("/api/messages/{a1}")).await;
    assert_eq!(
        original["summary"]["status"], "SENT",
        "the original is left as it was"
    );

    // by number, in the query; without a body or content type
    let r = api
        .post(
            &format!("/api/messages/{a2}/reprocess?destinations=1"),
            None,
        )
        .await;
    let m = done(r["copy"].as_str().unwrap()).await;
    assert_eq!(destinations(&m), ["lab=SENT"]);
    // to every destination
    let r = api
        .post(&format!("/api/messages/{a2}/reprocess"), Some("{}"))
        .await;
    let m = done(r["copy"].as_str().unwrap()).await;
    assert_eq!(destinations(&m), ["lab=SENT", "archive=SENT"]);
    assert_eq!(
        (files_in(&t.out("lab")), files_in(&t.out("archive"))),
        (5, 5)
    );

    // what is refused
    let one = format!("/api/messages/{a1}/reprocess");
    for (uri, body, status, says) in [
        (
            one.clone(),
            Some(r#"{"destinations": []}"#),
            400,
            "at least one",
        ),
        (
            one.clone(),
            Some(r#"{"destination": ["lab"]}"#),
            400,
            "unknown field",
        ),
        (one.clone(), Some("lab"), 400, "request body"),
        (
            format!("{one}?destinations=lab"),
            Some(r#"{"destinations": ["lab"]}"#),
            400,
            "not both",
        ),
        (format!("{one}?destinations="), None, 400, "no empty name"),
        (format!("{one}?limit=1"), None, 400, "unknown parameter"),
        (
            one.clone(),
            Some(r#"{"destinations": ["nosuch"]}"#),
            404,
            "nosuch",
        ),
        (
            format!("/api/messages/{UNKNOWN_ID}/reprocess"),
            None,
            404,
            "no message",
        ),
        (
            "/api/messages/42/reprocess".to_owned(),
            None,
            400,
            "message id",
        ),
    ] {
        let e = api.fails("POST", &uri, body, status).await;
        assert!(e.contains(says), "{uri} {body:?}: {e}");
    }

    // a search: refused without a choosing parameter
    for query in [
        "",
        "?limit=5",
        "?before=01JH8Z6XKQ3V5S0Y7T2M4N9B1C",
        "?destinations=lab",
    ] {
        let e = api
            .fails(
                "POST",
                &format!("/api/messages/reprocess{query}"),
                None,
                400,
            )
            .await;
        assert!(
            e.contains("refusing to reprocess everything"),
            "{query}: {e}"
        );
    }
    api.fails("POST", "/api/messages/reprocess?colour=red", None, 400)
        .await;
    // a time range to one destination: oldest first
    let r = api
        .post(
            "/api/messages/reprocess?channel=adt&from=2025-03-01T10:00:00Z&to=2025-03-01T11:30:00Z&destinations=archive",
            None,
        )
        .await;
    assert_eq!(r["count"], 2, "{r}");
    assert_eq!(r["failed"], json!([]));
    assert_eq!(r["reprocessed"][0]["original"], a1);
    assert_eq!(r["reprocessed"][1]["original"], a2);
    for copy in r["reprocessed"].as_array().unwrap() {
        let m = done(copy["copy"].as_str().unwrap()).await;
        assert_eq!(destinations(&m), ["archive=SENT"]);
    }
    // with a limit: the newest matches, as the search lists them
    let query = "type=ADT&from=2025-03-01T09:00:00Z&to=2025-03-01T12:00:00Z&limit=2";
    let listed = api.search(query).await;
    assert_eq!(listed, [o1, a2]);
    let r = api
        .post(
            &format!("/api/messages/reprocess?{query}"),
            Some(r#"{"destinations": ["1"]}"#),
        )
        .await;
    let originals: Vec<&str> = r["reprocessed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["original"].as_str().unwrap())
        .collect();
    assert_eq!(originals, [a2, o1], "{r}");
    for copy in r["reprocessed"].as_array().unwrap() {
        done(copy["copy"].as_str().unwrap()).await;
    }

    // a message whose channel is gone is reported, the others are still reprocessed
    t.deploy("gone", &file_channel(t, &["gone-out"], "")).await;
    let g = t
        .accept_processed(hl7("gone", "ADT^A01", "G1", "111"))
        .await;
    api.post("/api/channels/gone/undeploy", None).await;
    let r = api
        .post("/api/messages/reprocess?meta.MRN=111&control_id=G1", None)
        .await;
    assert_eq!(r["count"], 0);
    assert_eq!(r["failed"][0]["id"], g.to_string());
    assert!(
        r["failed"][0]["error"].as_str().unwrap().contains("gone"),
        "{r}"
    );
    let matching = api.search("meta.MRN=111&event=A01").await.len();
    assert!(matching > 2);
    let r = api
        .post("/api/messages/reprocess?meta.MRN=111&event=A01", None)
        .await;
    assert_eq!(r["failed"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(r["count"].as_u64(), Some(matching as u64 - 1), "{r}");
    t.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_queues_and_errors() {
    let t = TestEngine::new().await;
    t.deploy("adt", &file_channel(&t, &["lab", "archive"], ""))
        .await;
    let api = Api::new(t.router());
    for n in 0..2 {
        t.accept_processed(hl7("adt", "ADT^A01", &format!("M{n}"), "1"))
            .await;
    }

    let a = api.call("GET", "/healthz", None).await;
    assert_eq!((a.status, a.text().as_str()), (200, "ok\n"));
    let a = api.call("GET", "/readyz", None).await;
    assert_eq!((a.status, a.text().as_str()), (200, "ready\n"));
    let a = api.call("GET", "/openapi.json", None).await;
    assert_eq!(a.content_type, "application/json");
    assert_eq!(a.json(), doc());

    let a = api.call("GET", "/metrics", None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type, "text/plain; version=0.0.4");
    let text = a.text();
    for line in [
        "# TYPE plexus_messages_received_total counter",
        "plexus_messages_received_total{channel=\"adt\"} 2",
        "plexus_messages_filtered_total{channel=\"adt\"} 0",
        "plexus_messages_errored_total{channel=\"adt\"} 0",
        "plexus_destination_sent_total{channel=\"adt\",destination=\"lab\"} 2",
        "plexus_destination_sent_total{channel=\"adt\",destination=\"archive\"} 2",
        "plexus_destination_errored_total{channel=\"adt\",destination=\"lab\"} 0",
        "plexus_destination_retries_total{channel=\"adt\",destination=\"lab\"} 0",
        "# TYPE plexus_queue_depth gauge",
        "plexus_queue_depth{channel=\"adt\",destination=\"lab\"} 0",
        "# TYPE plexus_delivery_seconds histogram",
        "plexus_delivery_seconds_count{channel=\"adt\",destination=\"lab\"} 2",
        "plexus_processing_seconds_count{channel=\"adt\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }

    let q = api.get("/api/queues").await;
    assert_eq!(
        q["queues"][1],
        json!({"channel": "adt", "destination": "archive", "queue": "adt/2", "paused": false,
               "depth": {"ready": 0, "leased": 0, "dead": 0}})
    );
    let c = api.get("/api/channels").await;
    assert_eq!(
        c[0]["stats"]["destinations"][0],
        json!({"name": "lab", "sent": 2, "filtered": 0, "errored": 0, "retried": 0})
    );

    // no such endpoint, or not with this method: the error shape too
    let e = api.fails("GET", "/api/nosuch", None, 404).await;
    assert!(e.contains("/api/nosuch"), "{e}");
    api.fails("GET", "/api/channels/adt/start", None, 405).await;
    api.fails("DELETE", "/api/messages", None, 405).await;
    api.fails("GET", "/api/messages/reprocess", None, 405).await;

    // the store is gone: not ready, and the API says so
    t.engine.shutdown().await;
    t.store.close().await.unwrap();
    let a = api.call("GET", "/readyz", None).await;
    assert_eq!(a.status, 503);
    assert!(a.text().starts_with("store: "), "{}", a.text());
    let e = api
        .fails("GET", "/api/messages?channel=adt", None, 503)
        .await;
    assert!(!e.is_empty());
    api.fails("GET", "/api/queues", None, 503).await;
    let id = UNKNOWN_ID;
    api.fails("GET", &format!("/api/messages/{id}"), None, 503)
        .await;
    api.fails("POST", &format!("/api/messages/{id}/reprocess"), None, 503)
        .await;
    api.fails("POST", "/api/messages/reprocess?channel=adt", None, 503)
        .await;
}

#[test]
fn routes_and_fallbacks_answer_in_the_error_shape() {
    // a route the router serves answers with something other than the fallbacks
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = TestEngine::new().await;
        let api = Api::new(t.router());
        let mut by_path: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in routes() {
            by_path
                .entry(r.path)
                .or_default()
                .push(r.verb.openapi_key());
        }
        for (path, methods) in by_path {
            let uri = path
                .replace("{name}", "nosuch")
                .replace("{destination}", "lab")
                .replace("{id}", "01JH8Z6XKQ3V5S0Y7T2M4N9B1C");
            for m in methods {
                let a = api.call(&m.to_uppercase(), &uri, None).await;
                assert_ne!(a.status, 405, "{m} {uri}");
                if a.status == 404 {
                    assert!(
                        !a.error().starts_with("no endpoint"),
                        "{m} {uri} is not routed"
                    );
                }
            }
        }
    });
}
