//! End-to-end tests of the channel engine: `plexus serve` with a channels folder, real MLLP
//! senders (`plexus send`, python-hl7's `mllp_send`) and independent receivers
//! (`tests/peers/mllp_ack_server.py`, hl7apy + python-hl7), the admin API and `plexus channel`.
//!
//! Every scenario runs on SQLite and on PostgreSQL (`<scenario>::sqlite`,
//! `<scenario>::postgres`).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ChannelServer, StoreKind, mllp_peer, peer_messages, wait_for};
use serde_json::Value;

/// Two `#[test]`s per scenario: `<name>::sqlite` and `<name>::postgres`.
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&crate::common::StoreKind::Sqlite);
            }

            #[test]
            fn postgres() {
                crate::common::with_postgres(stringify!($name), |store| super::$name(&store));
            }
        }
    )+};
}

on_both_stores!(
    fan_out_transformed_then_reprocessed,
    destination_down_then_back,
    sigkill_during_delivery,
    javascript_limits,
    admin_operations,
    http_json_through_a_channel_writer_to_files,
);

/// Long enough for anything on a loaded two-core machine; every wait polls.
const LONG: Duration = Duration::from_mins(3);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An ADT message: MSH-10 and PID-3-1 are `id`, PV1-2 (patient class) is `class`.
fn adt(id: &str, event: &str, class: &str) -> String {
    format!(
        "MSH|^~\\&|REG|HOSP|PLEXUS|HOSP|20240101120000||ADT^{event}^ADT_A01|{id}|P|2.5.1\r\
         EVN|{event}|20240101120000\r\
         PID|1||{id}^^^HOSP^MR||TESTPATIENT^ALPHA||19800101|F\r\
         PV1|1|{class}\r"
    )
}

/// The segments of a message (CR-separated; a final empty piece is dropped).
fn segments(m: &[u8]) -> Vec<String> {
    text(m)
        .split('\r')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// HL7 field `n` of the first segment `seg`, split by '|' (MSH-n counts MSH-1 as the '|').
fn field(m: &[u8], seg: &str, n: usize) -> Option<String> {
    let s = segments(m)
        .into_iter()
        .find(|s| s.split('|').next() == Some(seg))?;
    let index = if seg == "MSH" { n - 1 } else { n };
    s.split('|').nth(index).map(str::to_owned)
}

/// The message with field `n` of segment `seg` replaced by `value`.
fn with_field(m: &str, seg: &str, n: usize, value: &str) -> String {
    let index = if seg == "MSH" { n - 1 } else { n };
    m.split('\r')
        .map(|s| {
            if s.split('|').next() == Some(seg) {
                let mut fields: Vec<&str> = s.split('|').collect();
                fields[index] = value;
                fields.join("|")
            } else {
                s.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r")
}

/// `plexus send` of `messages` (written to `file`) to `port`.
fn plexus_send(port: u16, file: &Path, messages: &[String]) -> Output {
    std::fs::write(file, messages.concat()).expect("write messages");
    Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(["send", "--timeout", "60", "--port", &port.to_string()])
        .arg(file)
        .output()
        .expect("plexus send")
}

/// Sends with `plexus send` and asserts every message was acknowledged AA.
fn send_all_accepted(port: u16, file: &Path, messages: &[String]) {
    let out = plexus_send(port, file, messages);
    let summary = text(&out.stdout);
    assert!(
        out.status.success() && summary.contains(&format!("{} accepted", messages.len())),
        "not all accepted: {summary}{}",
        text(&out.stderr)
    );
}

/// `plexus channel --admin URL <args>`.
fn plexus_channel(server: &ChannelServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args([
            "channel",
            "--admin",
            &server.admin_url(),
            "--token",
            &server.token,
        ])
        .args(args)
        .output()
        .expect("plexus channel")
}

fn channel_ok(server: &ChannelServer, args: &[&str]) -> String {
    let out = plexus_channel(server, args);
    assert!(
        out.status.success(),
        "plexus channel {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Waits until the peer logged at least `n` messages; returns them.
fn wait_peer(log: &Path, n: usize) -> Vec<Vec<u8>> {
    wait_for(
        &format!("{n} messages at the peer ({})", log.display()),
        LONG,
        || {
            let got = peer_messages(log);
            (got.len() >= n).then_some(got)
        },
        || format!("it has {}", peer_messages(log).len()),
    )
}

/// Waits until a message's status is final (not RECEIVED or QUEUED); returns its record.
fn wait_final(server: &ChannelServer, channel: &str, control_id: &str) -> Value {
    let search = format!("/api/messages?channel={channel}&control_id={control_id}&limit=1");
    wait_for(
        &format!("a final status for {control_id}"),
        LONG,
        || {
            let v = server.get(&search);
            let id = v["messages"][0]["id"].as_str()?;
            let m = server.get(&format!("/api/messages/{id}"));
            let s = m["summary"]["status"].as_str().unwrap_or("");
            (s != "RECEIVED" && s != "QUEUED").then_some(m)
        },
        || format!("{}", server.get(&search)),
    )
}

/// The stages stored for destination `n`: `["ENCODED", "SENT", ...]`.
fn stages(m: &Value, n: u64) -> Vec<String> {
    m["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["destination"] == n)
        .map(|c| c["stage"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// The text of destination `n`'s content at `stage`.
fn content(m: &Value, n: u64, stage: &str) -> String {
    m["content"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["destination"] == n && c["stage"] == stage)
        .and_then(|c| c["data"].as_str())
        .unwrap_or_else(|| panic!("no {stage} content for destination {n}: {m}"))
        .to_owned()
}

/// The per-destination statuses of a message record: name → status.
fn destination_statuses(m: &Value) -> BTreeMap<String, String> {
    m["destinations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or("?").to_owned(),
                d["status"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

/// Field values as python-hl7 reads them (`tests/peers/python_hl7_dump.py`): per message,
/// `(segment, field)` → the field's first component's text.
fn python_hl7_fields(
    python: &Path,
    messages: &[Vec<u8>],
    dir: &Path,
) -> Vec<HashMap<String, String>> {
    let file = dir.join("dump-input.hl7");
    // one message after the other, each ending its last segment
    let joined: Vec<u8> = messages
        .iter()
        .flat_map(|m| {
            m.iter()
                .copied()
                .chain((!m.ends_with(b"\r")).then_some(b'\r'))
        })
        .collect();
    std::fs::write(&file, joined).expect("write dump input");
    let out = Command::new(python)
        .arg(common::root().join("tests/peers/python_hl7_dump.py"))
        .arg(&file)
        .output()
        .expect("python_hl7_dump.py");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("dump JSON");
    v["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let mut fields = HashMap::new();
            for seg in m["segments"].as_array().into_iter().flatten() {
                let id = seg["id"].as_str().unwrap_or("?");
                for (n, f) in seg["fields"].as_object().into_iter().flatten() {
                    let value = match f {
                        Value::String(s) => s.clone(),
                        other => other[0][0][0].as_str().unwrap_or("").to_owned(),
                    };
                    fields.entry(format!("{id}-{n}")).or_insert(value);
                }
            }
            fields
        })
        .collect()
}

/// The value of `name{labels}` in a Prometheus text exposition.
fn metric(text: &str, name_and_labels: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

// ---------------------------------------------------------------------------------------
// 1 and 5: fan-out to two independent peers with a transformer each, then a reprocessing
// ---------------------------------------------------------------------------------------

fn fan_out_channel(lab_port: u16, billing_port: u16) -> String {
    format!(
        r#"
description = "ADT to the lab and to billing"
metadata = {{ MRN = "PID-3-1" }}

[source.mllp]
bind = "127.0.0.1:0"

[[filter]]
type = "message-type"
accept = ["ADT^A01", "ADT^A04"]

[[destination]]
name = "lab"
[destination.mllp]
host = "127.0.0.1"
port = {lab_port}
[[destination.transformer]]
type = "set"
path = "MSH-5"
value = "LAB"
[[destination.transformer]]
type = "set"
path = "MSH-6"
value = "LABFAC"

[[destination]]
name = "billing"
[destination.mllp]
host = "127.0.0.1"
port = {billing_port}
[[destination.transformer]]
type = "map"
path = "PV1-2"
table = "patient_class.csv"
"#
    )
}

fn fan_out_transformed_then_reprocessed(store: &StoreKind) {
    let Some(python) = common::python() else {
        return;
    };
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("srv");
    let lab_log = tmp.path().join("lab.log");
    let billing_log = tmp.path().join("billing.log");
    let lab = mllp_peer(&python, &lab_log, 0);
    let billing = mllp_peer(&python, &billing_log, 0);
    std::fs::create_dir_all(dir.join("channels")).expect("dir");
    std::fs::write(
        dir.join("channels/patient_class.csv"),
        "from,to\nI,INPATIENT\nO,OUTPATIENT\nE,EMERGENCY\n",
    )
    .expect("code table");
    let server = ChannelServer::start(
        &dir,
        store.clone(),
        &[("adt", &fan_out_channel(lab.port, billing.port))],
    );

    // python-hl7's mllp_send, an independent sender; the ORU is filtered out by the source
    let oru = "MSH|^~\\&|LAB|HOSP|PLEXUS|HOSP|20240101||ORU^R01^ORU_R01|FAN-ORU|P|2.5.1\rPID|1||9\rOBR|1\rOBX|1|NM|GLU||95||||||F\r";
    let sent = [
        adt("FAN-1", "A01", "I"),
        oru.to_owned(),
        adt("FAN-2", "A04", "O"),
    ];
    let file = tmp.path().join("fan.hl7");
    std::fs::write(&file, sent.concat()).expect("write");
    let out = Command::new(python.with_file_name("mllp_send"))
        .args(["--loose", "-f"])
        .arg(&file)
        .args(["-p", &server.source_port("adt").to_string(), "127.0.0.1"])
        .output()
        .expect("mllp_send");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let acks = text(&out.stdout);
    for id in ["FAN-1", "FAN-ORU", "FAN-2"] {
        assert!(
            acks.contains(&format!("MSA|AA|{id}")),
            "{id} not ACKed AA: {acks:?}"
        );
    }

    let one = wait_final(&server, "adt", "FAN-1");
    let two = wait_final(&server, "adt", "FAN-2");
    let filtered = wait_final(&server, "adt", "FAN-ORU");
    assert_eq!(filtered["summary"]["status"], "FILTERED", "{filtered}");
    assert!(
        filtered["destinations"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{filtered}"
    );

    let lab_got = wait_peer(&lab_log, 2);
    let billing_got = wait_peer(&billing_log, 2);
    // what was received, as stored (mllp_send --loose strips the final CR)
    let raw1 = content(&one, 0, "RAW");
    let raw2 = content(&two, 0, "RAW");
    assert_eq!(raw1.trim_end_matches('\r'), sent[0].trim_end_matches('\r'));
    let lab_expected: Vec<String> = [&raw1, &raw2]
        .iter()
        .map(|r| with_field(&with_field(r, "MSH", 5, "LAB"), "MSH", 6, "LABFAC"))
        .collect();
    let billing_expected = [
        with_field(&raw1, "PV1", 2, "INPATIENT"),
        with_field(&raw2, "PV1", 2, "OUTPATIENT"),
    ];
    // byte for byte: the fields changed, nothing else (not even the missing final CR)
    assert_eq!(
        lab_got.iter().map(|m| text(m)).collect::<Vec<_>>(),
        lab_expected,
        "the lab peer did not get the messages with MSH-5/MSH-6 rewritten and nothing else"
    );
    assert_eq!(
        billing_got.iter().map(|m| text(m)).collect::<Vec<_>>(),
        billing_expected,
        "the billing peer did not get the messages with PV1-2 mapped and nothing else"
    );
    check_with_python_hl7(&python, &lab_got, &billing_got, tmp.path());
    check_fan_out_record(&server, &one, "FAN-1", [&lab_got[0], &billing_got[0]]);
    check_fan_out_record(&server, &two, "FAN-2", [&lab_got[1], &billing_got[1]]);
    let metrics = server.metrics();
    assert_eq!(
        metric(
            &metrics,
            "plexus_destination_sent_total{channel=\"adt\",destination=\"lab\"}"
        ),
        Some(2),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "plexus_messages_filtered_total{channel=\"adt\"}"),
        Some(1),
        "{metrics}"
    );

    reprocess_to_billing_only(&server, &one, &billing_expected[0], &lab_log, &billing_log);
    server.stop();
    drop((lab, billing));
    eprintln!("fan-out and reprocess: {:?}", started.elapsed());
}

/// The fields the peers logged, as python-hl7 reads them.
fn check_with_python_hl7(python: &Path, lab_got: &[Vec<u8>], billing_got: &[Vec<u8>], dir: &Path) {
    let lab_fields = python_hl7_fields(python, lab_got, dir);
    let billing_fields = python_hl7_fields(python, billing_got, dir);
    for (i, id) in ["FAN-1", "FAN-2"].iter().enumerate() {
        assert_eq!(lab_fields[i]["MSH-5"], "LAB");
        assert_eq!(lab_fields[i]["MSH-6"], "LABFAC");
        assert_eq!(lab_fields[i]["MSH-10"], *id);
        assert_eq!(lab_fields[i]["PV1-2"], ["I", "O"][i]);
        assert_eq!(billing_fields[i]["MSH-5"], "PLEXUS");
        assert_eq!(billing_fields[i]["MSH-10"], *id);
        assert_eq!(billing_fields[i]["PV1-2"], ["INPATIENT", "OUTPATIENT"][i]);
    }
}

/// A fanned-out message's record: SENT, both destinations SENT, metadata searchable, and
/// the stages RAW (source), ENCODED, SENT (what the peer logged) and RESPONSE (its AA).
fn check_fan_out_record(server: &ChannelServer, m: &Value, id: &str, peers_got: [&[u8]; 2]) {
    assert_eq!(m["summary"]["status"], "SENT", "{m}");
    assert_eq!(m["summary"]["control_id"], id);
    assert_eq!(m["metadata"], serde_json::json!([["MRN", id]]), "{m}");
    let by_mrn = server.get(&format!("/api/messages?meta.MRN={id}"));
    assert_eq!(by_mrn["messages"][0]["id"], m["summary"]["id"], "{by_mrn}");
    assert_eq!(
        destination_statuses(m),
        BTreeMap::from([
            ("billing".into(), "SENT".into()),
            ("lab".into(), "SENT".into())
        ]),
        "{m}"
    );
    assert_eq!(stages(m, 0), ["RAW"], "{m}");
    for (n, got) in [1, 2].into_iter().zip(peers_got) {
        let s = stages(m, n);
        for stage in ["ENCODED", "SENT", "RESPONSE"] {
            assert!(
                s.iter().any(|x| x == stage),
                "destination {n} has no {stage}: {s:?}"
            );
        }
        assert_eq!(content(m, n, "SENT"), text(got));
        assert_eq!(content(m, n, "ENCODED"), text(got));
        let response = content(m, n, "RESPONSE");
        assert!(response.contains(&format!("\rMSA|AA|{id}")), "{response:?}");
    }
}

/// 5: reprocessing `original` to billing only gives a new message linked to it, delivered
/// there and nowhere else.
fn reprocess_to_billing_only(
    server: &ChannelServer,
    original: &Value,
    billing_expected: &str,
    lab_log: &Path,
    billing_log: &Path,
) {
    let id = original["summary"]["id"].as_str().expect("id");
    let (status, r) = server.api(
        "POST",
        &format!("/api/messages/{id}/reprocess"),
        Some(r#"{"destinations": ["billing"]}"#),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["original"], id);
    let copy = r["copy"].as_str().expect("copy id").to_owned();
    assert_ne!(copy, id);
    let copied = wait_for(
        "the reprocessed message to finish",
        LONG,
        || {
            let m = server.get(&format!("/api/messages/{copy}"));
            let s = m["summary"]["status"].as_str().unwrap_or("");
            (s != "RECEIVED" && s != "QUEUED").then_some(m)
        },
        || format!("{}", server.get(&format!("/api/messages/{copy}"))),
    );
    assert_eq!(copied["summary"]["status"], "SENT", "{copied}");
    assert_eq!(copied["summary"]["original_id"], id, "{copied}");
    assert_eq!(
        destination_statuses(&copied),
        BTreeMap::from([("billing".into(), "SENT".into())]),
        "{copied}"
    );
    assert!(
        stages(&copied, 1).is_empty(),
        "nothing for the lab: {copied}"
    );
    let billing_now = wait_peer(billing_log, 3);
    assert_eq!(text(&billing_now[2]), billing_expected);
    // the lab queue is empty and its peer got nothing more
    assert_eq!(server.queued("adt", "lab"), 0);
    assert_eq!(
        peer_messages(lab_log).len(),
        2,
        "the lab got the reprocessed message"
    );
    let by_original = server.get(&format!("/api/messages?original={id}"));
    assert_eq!(
        by_original["messages"].as_array().map(Vec::len),
        Some(1),
        "{by_original}"
    );
}

// ---------------------------------------------------------------------------------------
// 2: the destination is down, then comes back: everything arrives once, in order
// ---------------------------------------------------------------------------------------

/// Messages sent while the destination is down.
const DOWN_N: usize = 50;

fn destination_down_then_back(store: &StoreKind) {
    let Some(python) = common::python() else {
        return;
    };
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tmp");
    let peer_port = common::fixed_port();
    let channel = format!(
        r#"
[source.mllp]
bind = "127.0.0.1:0"

[[destination]]
name = "later"
[destination.mllp]
host = "127.0.0.1"
port = {peer_port}
connect_timeout = "2s"
# one connection attempt per delivery attempt: the queue's backoff is what is tested
retry = {{ max_attempts = 1 }}
[destination.queue]
initial_backoff = "50ms"
max_backoff = "200ms"
max_attempts = 1000
"#
    );
    let server = ChannelServer::start(
        &tmp.path().join("srv"),
        store.clone(),
        &[("down", &channel)],
    );
    let port = server.source_port("down");
    let ids: Vec<String> = (0..DOWN_N).map(|i| format!("DOWN-{i:03}")).collect();
    let messages: Vec<String> = ids.iter().map(|id| adt(id, "A01", "I")).collect();
    // all ACKed AA although nothing can be delivered: the ACK follows the commit
    send_all_accepted(port, &tmp.path().join("down.hl7"), &messages);

    // processed and queued, waiting for the destination
    wait_for(
        "all 50 queued for the destination",
        LONG,
        || (server.queued("down", "later") == DOWN_N as u64).then_some(()),
        || format!("{}", server.get("/api/channels/down")),
    );
    let listed = channel_ok(&server, &["list"]);
    assert!(listed.contains("later(50"), "{listed}");
    let retries = "plexus_destination_retries_total{channel=\"down\",destination=\"later\"}";
    wait_for(
        "a failed attempt counted as a retry",
        LONG,
        || metric(&server.metrics(), retries).filter(|r| *r >= 1),
        || server.metrics(),
    );

    let log = tmp.path().join("peer.log");
    let peer = mllp_peer(&python, &log, peer_port);
    wait_for(
        "the queue to drain",
        LONG,
        || {
            (server.queued("down", "later") == 0 && server.count("down", "SENT") == DOWN_N)
                .then_some(())
        },
        || format!("{}", server.get("/api/channels/down")),
    );
    let got = peer_messages(&log);
    let control_ids: Vec<String> = got
        .iter()
        .map(|m| field(m, "MSH", 10).unwrap_or_default())
        .collect();
    assert_eq!(
        control_ids, ids,
        "not exactly the 50 messages, once each, in order"
    );
    for (m, sent) in got.iter().zip(&messages) {
        assert_eq!(m.as_slice(), sent.as_bytes(), "changed on the way");
    }
    server.stop();
    drop(peer);
    eprintln!("destination down then back: {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------
// 3: SIGKILL while delivering under load, restart on the same store
// ---------------------------------------------------------------------------------------

/// Messages claimed per round trip by the destination worker, and workers: a kill can lose
/// the record of at most this many sends (see the bound below).
const KILL_BATCH: u64 = 32;
const KILL_WORKERS: u64 = 1;
const SENDERS: usize = 4;
const PER_SENDER: usize = 500;

/// The channel of the SIGKILL test: one ordered worker, batches of [`KILL_BATCH`].
fn load_channel(source_port: u16, peer_port: u16) -> String {
    format!(
        r#"
[source.mllp]
bind = "127.0.0.1:{source_port}"

[[destination]]
name = "peer"
[destination.mllp]
host = "127.0.0.1"
port = {peer_port}
[destination.queue]
batch = {KILL_BATCH}
workers = {KILL_WORKERS}
initial_backoff = "50ms"
max_backoff = "500ms"
max_attempts = 1000
# the stored message's id, so that the peer can tell a redelivery of one stored message
# from a sender's resend (a new stored message with the same control id)
[[destination.transformer]]
type = "add-segment"
text = "ZID|${{messageId}}"
"#
    )
}

fn sigkill_during_delivery(store: &StoreKind) {
    let Some(python) = common::python() else {
        return;
    };
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("srv");
    let log = tmp.path().join("peer.log");
    let peer = mllp_peer(&python, &log, 0);
    // a fixed source port: the senders' retries reach the restarted server there
    let source_port = common::fixed_port();
    let server = ChannelServer::start(
        &dir,
        store.clone(),
        &[("load", &load_channel(source_port, peer.port))],
    );
    let admin_port = server.admin_port;

    // concurrent `plexus send` processes, each with its own file of distinct control ids
    let mut files = Vec::new();
    for s in 0..SENDERS {
        let ids: Vec<String> = (0..PER_SENDER).map(|i| format!("K{s}-{i:04}")).collect();
        let file = tmp.path().join(format!("sender-{s}.hl7"));
        let text: String = ids.iter().map(|id| adt(id, "A01", "I")).collect();
        std::fs::write(&file, text).expect("write");
        files.push((file, ids));
    }
    let senders: Vec<Sender> = files
        .iter()
        .map(|(file, _)| Sender::start(source_port, file))
        .collect();

    // kill once the peer has some, well before all
    let total = SENDERS * PER_SENDER;
    wait_peer(&log, 150);
    server.kill();
    let at_kill = peer_messages(&log).len();
    let server = ChannelServer::restart(&dir, store.clone(), admin_port);

    // every sender finishes (retrying against the restarted server)
    let mut acked: Vec<String> = Vec::new();
    for (sender, (_, ids)) in senders.into_iter().zip(&files) {
        acked.extend(sender.acked(ids));
    }
    let failed_sends = total - acked.len();
    assert!(
        acked.len() > total / 2,
        "too few messages ACKed to test anything: {}",
        acked.len()
    );

    // the queue drains after the restart
    let acked_set: HashSet<&str> = acked.iter().map(String::as_str).collect();
    wait_for(
        "every ACKed message at the peer and nothing left queued",
        LONG,
        || {
            let got = peer_messages(&log);
            let seen: HashSet<String> = got.iter().filter_map(|m| field(m, "MSH", 10)).collect();
            let all = acked_set.iter().all(|id| seen.contains(*id));
            (all && server.queued("load", "peer") == 0
                && server.count("load", "RECEIVED") == 0
                && server.count("load", "QUEUED") == 0)
                .then_some(())
        },
        || {
            format!(
                "the peer has {} messages; {}",
                peer_messages(&log).len(),
                server.get("/api/channels/load")
            )
        },
    );
    assert!(
        at_kill < total,
        "the kill came after every delivery; nothing was tested ({at_kill} of {total})"
    );
    server.stop();
    drop(peer);

    let got = peer_messages(&log);
    let per_control = count_by(&got, |m| field(m, "MSH", 10).unwrap_or_default());
    for id in &acked {
        assert!(
            per_control.contains_key(id),
            "ACKed message {id} never reached the peer"
        );
    }
    assert_sender_order(&got);
    // redeliveries of one stored message: the engine's at-least-once duplicates
    let per_stored = count_by(&got, |m| {
        field(m, "ZID", 1).expect("ZID with the message id")
    });
    let redelivered: usize = per_stored.values().map(|n| n - 1).sum();
    // the same control id stored more than once: a sender resent after losing its ACK
    let resent: usize = per_control.values().map(|n| n - 1).sum::<usize>() - redelivered;
    eprintln!(
        "SIGKILL test ({}): {} ACKed of {total}, {failed_sends} sends failed, {at_kill} at the peer at the kill, \
         {} deliveries, {redelivered} redelivered (duplicates), {resent} resent by senders, {:?}",
        match store {
            StoreKind::Sqlite => "SQLite",
            StoreKind::Postgres(_) => "PostgreSQL",
        },
        acked.len(),
        got.len(),
        started.elapsed()
    );
    // The destination worker claims up to `batch` items, sends them one by one and records
    // the sends in one transaction after the batch, which commits while the next batch is
    // sent (at most one record in flight: the worker waits for it before recording the
    // next). A SIGKILL loses at most, per worker, the record in flight and the sends of the
    // batch after it; after the restart those are sent again. Everything recorded before the
    // kill is never sent again. So at most 2 × batch × workers duplicates.
    assert!(
        redelivered as u64 <= 2 * KILL_BATCH * KILL_WORKERS,
        "{redelivered} redeliveries after one SIGKILL, more than 2 × batch × workers = {}",
        2 * KILL_BATCH * KILL_WORKERS
    );
}

/// How many of `items` have each key.
fn count_by<T>(items: &[T], key: impl Fn(&T) -> String) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for i in items {
        *out.entry(key(i)).or_default() += 1;
    }
    out
}

/// One ordered worker: each sender's messages first reach the peer in the order sent, the
/// crash notwithstanding (a redelivery or a resend comes after the first delivery).
fn assert_sender_order(got: &[Vec<u8>]) {
    let mut first_seen: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for m in got {
        let id = field(m, "MSH", 10).unwrap_or_default();
        if seen.insert(id.clone()) {
            first_seen.push(id);
        }
    }
    for s in 0..SENDERS {
        let prefix = format!("K{s}-");
        let order: Vec<&String> = first_seen
            .iter()
            .filter(|id| id.starts_with(&prefix))
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert!(
            order == sorted,
            "sender {s}'s messages reached the peer out of order"
        );
    }
}

/// A `plexus send` process, killed if the test ends (or fails) before it does.
struct Sender(Child);

impl Sender {
    fn start(port: u16, file: &Path) -> Self {
        Self(
            Command::new(env!("CARGO_BIN_EXE_plexus"))
                .args(["send", "--timeout", "30", "--port", &port.to_string()])
                .arg(file)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("plexus send"),
        )
    }

    /// Waits for the end; the control ids (of `ids`, the file's) that were ACKed AA: those
    /// `plexus send` did not name in an error (checked against its summary line).
    fn acked(self, ids: &[String]) -> Vec<String> {
        let out = wait_child(self, LONG);
        let stderr = text(&out.stderr);
        let failed: HashSet<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| stderr.contains(&format!("(control id \"{id}\")")))
            .collect();
        let summary = text(&out.stdout);
        let accepted = ids.len() - failed.len();
        assert!(
            summary.contains(&format!("sent {} messages: {accepted} accepted", ids.len())),
            "the summary does not match the errors: {summary}{stderr}"
        );
        ids.iter()
            .filter(|id| !failed.contains(id.as_str()))
            .cloned()
            .collect()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits for a sender to exit (failing after `timeout`); its output.
fn wait_child(mut sender: Sender, timeout: Duration) -> Output {
    use std::io::Read as _;
    let child = &mut sender.0;
    // drain the pipes on threads so a full pipe cannot block the child
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err_thread = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        assert!(
            start.elapsed() < timeout,
            "a sender did not finish within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------
// 4: JavaScript time and memory limits; the channel keeps running
// ---------------------------------------------------------------------------------------

fn javascript_limits(store: &StoreKind) {
    let Some(python) = common::python() else {
        return;
    };
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tmp");
    let log = tmp.path().join("peer.log");
    let peer = mllp_peer(&python, &log, 0);
    let channel = format!(
        r#"
[source.mllp]
bind = "127.0.0.1:0"

[script]
time_limit = "200ms"
memory_mb = 16

[[transformer]]
type = "javascript"
script = '''
var id = msg.get("MSH-10");
if (/LOOP$/.test(id)) {{ while (true) {{}} }}
if (/OOM$/.test(id)) {{ var a = []; while (true) a.push(new Array(100000).fill(1)); }}
msg.set("PID-5-1", "JS");
'''

[[destination]]
name = "peer"
[destination.mllp]
host = "127.0.0.1"
port = {}
"#,
        peer.port
    );
    let server = ChannelServer::start(&tmp.path().join("srv"), store.clone(), &[("js", &channel)]);
    let port = server.source_port("js");
    let messages = [
        adt("JS-LOOP", "A01", "I"),
        adt("JS-OOM", "A01", "I"),
        adt("JS-OK", "A01", "I"),
    ];
    send_all_accepted(port, &tmp.path().join("js.hl7"), &messages);

    let looped = wait_final(&server, "js", "JS-LOOP");
    let oom = wait_final(&server, "js", "JS-OOM");
    let ok = wait_final(&server, "js", "JS-OK");
    for (m, needle) in [(&looped, "timed out"), (&oom, "out of memory")] {
        assert_eq!(m["summary"]["status"], "ERROR", "{m}");
        let error = m["summary"]["error"].as_str().unwrap_or("");
        assert!(
            error.contains(needle),
            "the error does not say {needle:?}: {error}"
        );
        eprintln!("javascript limits: {error}");
        assert!(
            m["destinations"].as_array().is_none_or(Vec::is_empty),
            "{m}"
        );
    }
    assert_eq!(ok["summary"]["status"], "SENT", "{ok}");
    let got = wait_peer(&log, 1);
    assert_eq!(got.len(), 1, "only the normal message is delivered");
    assert_eq!(field(&got[0], "MSH", 10).as_deref(), Some("JS-OK"));
    assert_eq!(field(&got[0], "PID", 5).as_deref(), Some("JS^ALPHA"));
    let errored = metric(
        &server.metrics(),
        "plexus_messages_errored_total{channel=\"js\"}",
    );
    assert_eq!(errored, Some(2));

    // still running: one more after the failures
    send_all_accepted(
        port,
        &tmp.path().join("js2.hl7"),
        &[adt("JS-AFTER", "A01", "I")],
    );
    let got = wait_peer(&log, 2);
    assert_eq!(field(&got[1], "PID", 5).as_deref(), Some("JS^ALPHA"));
    server.stop();
    drop(peer);
    eprintln!("javascript limits: {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------
// 6: stop, start, pause and deploy through `plexus channel`; /metrics
// ---------------------------------------------------------------------------------------

fn ops_channel(source_port: u16, peer_port: u16, value: &str) -> String {
    format!(
        r#"
[source.mllp]
bind = "127.0.0.1:{source_port}"

[[destination]]
name = "peer"
[destination.mllp]
host = "127.0.0.1"
port = {peer_port}
[[destination.transformer]]
type = "set"
path = "MSH-5"
value = "{value}"
"#
    )
}

fn refused(port: u16) -> bool {
    matches!(
        std::net::TcpStream::connect(("127.0.0.1", port)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

fn admin_operations(store: &StoreKind) {
    let Some(python) = common::python() else {
        return;
    };
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tmp");
    let log = tmp.path().join("peer.log");
    let peer = mllp_peer(&python, &log, 0);
    let port = common::fixed_port();
    let mut server = ChannelServer::start(
        &tmp.path().join("srv"),
        store.clone(),
        &[("ops", &ops_channel(port, peer.port, "V1"))],
    );
    let pid = server.pid();
    let state = |s: &ChannelServer| {
        s.get("/api/channels/ops")["state"]
            .as_str()
            .unwrap_or("?")
            .to_owned()
    };
    let mut n = 0;
    let mut send = |tag: &str| {
        n += 1;
        let id = format!("OPS-{n}-{tag}");
        send_all_accepted(
            port,
            &tmp.path().join(format!("{id}.hl7")),
            &[adt(&id, "A01", "I")],
        );
        let got = wait_peer(&log, n);
        assert_eq!(field(&got[n - 1], "MSH", 10).as_deref(), Some(id.as_str()));
        field(&got[n - 1], "MSH", 5).unwrap_or_default()
    };

    let listed = channel_ok(&server, &["list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("ops ") && l.contains("STARTED") && l.contains("peer(0)")),
        "{listed}"
    );
    assert_eq!(send("first"), "V1");

    // pause: the source stops listening; start: it listens again
    let out = channel_ok(&server, &["pause", "ops"]);
    assert!(out.contains("PAUSED"), "{out}");
    assert_eq!(state(&server), "PAUSED");
    assert!(
        refused(port),
        "the source still accepts connections while paused"
    );
    let shown = server.get("/api/channels/ops");
    assert!(
        shown["source"].is_null(),
        "a paused source shows an address: {shown}"
    );
    channel_ok(&server, &["start", "ops"]);
    assert_eq!(state(&server), "STARTED");
    assert_eq!(send("resumed"), "V1");

    // stop: neither receiving nor delivering; start again
    let out = channel_ok(&server, &["stop", "ops"]);
    assert!(out.contains("STOPPED"), "{out}");
    assert!(
        refused(port),
        "the source still accepts connections while stopped"
    );
    let status = channel_ok(&server, &["status", "ops"]);
    assert!(status.contains("\"STOPPED\""), "{status}");
    channel_ok(&server, &["start", "ops"]);
    assert_eq!(send("restarted"), "V1");

    // edit the file, deploy: new messages use the new transformer, same process
    server.write_channel("ops", &ops_channel(port, peer.port, "V2"));
    channel_ok(&server, &["deploy", "ops"]);
    assert_eq!(state(&server), "STARTED");
    assert_eq!(send("redeployed"), "V2");
    assert!(
        server.running() && server.pid() == pid,
        "the server was restarted"
    );

    // an unknown channel is an error with exit status 1
    let out = plexus_channel(&server, &["start", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nosuch"),
        "{}",
        text(&out.stderr)
    );

    // the counter survives the redeployment
    let sent = wait_for(
        "plexus_destination_sent_total to reach 4",
        LONG,
        || {
            metric(
                &server.metrics(),
                "plexus_destination_sent_total{channel=\"ops\",destination=\"peer\"}",
            )
            .filter(|v| *v == 4)
        },
        || server.metrics(),
    );
    assert_eq!(sent, 4);
    server.stop();
    drop(peer);
    eprintln!("admin operations: {:?}", started.elapsed());
}

/// JSON orders over HTTP become HL7 through a template, go to a second channel (a channel
/// writer into a channel without a source) and from there to files. The HTTP source answers
/// with its configured body; a body that is not JSON is refused (422) and stored in ERROR.
fn http_json_through_a_channel_writer_to_files(store: &StoreKind) {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let out = tmp.path().join("out");
    let http_port = common::fixed_port();
    let orders = format!(
        r#"
data_type = "JSON"
metadata = {{ MRN = "patient.mrn" }}
[source]
response = {{ body = "thank you", content_type = "text/plain" }}
[source.http]
bind = "127.0.0.1:{http_port}"
path = "/orders"
[[transformer]]
type = "template"
template = """
MSH|^~\\&|WEB|CLINIC|LAB|HOSP|||ORM^O01|${{orderId}}|P|2.5.1
PID|1||${{patient.mrn}}^^^HOSP^MR||${{patient.family}}
"""
[[destination]]
name = "to-filing"
[destination.channel]
name = "filing"
"#
    );
    let filing = format!(
        r#"
[[destination]]
name = "folder"
[destination.file]
directory = "{}"
name = "${{MSH-10}}.hl7"
"#,
        out.display()
    );
    let server = ChannelServer::start(
        tmp.path(),
        store.clone(),
        &[("orders", &orders), ("filing", &filing)],
    );
    let body = r#"{"orderId": "WEB-1", "patient": {"mrn": "M42", "family": "O'NEIL|SMITH"}}"#;
    let (status, answer) =
        common::http(http_port, "POST", "/orders", Some(body)).expect("HTTP source answers");
    assert_eq!((status, answer.as_str()), (200, "thank you"));
    let file = out.join("WEB-1.hl7");
    wait_for(
        "the order filed by the second channel",
        LONG,
        || std::fs::read(&file).ok(),
        || server.log_text(),
    );
    let filed = text(&std::fs::read(&file).expect("filed order"));
    assert!(
        filed.starts_with("MSH|^~\\&|WEB|CLINIC|LAB|HOSP|||ORM^O01|WEB-1|"),
        "{filed:?}"
    );
    // the delimiter in the name is escaped, not a new field
    assert!(
        filed.contains("\rPID|1||M42^^^HOSP^MR||O'NEIL\\F\\SMITH\r"),
        "{filed:?}"
    );
    let found = server.get("/api/messages?channel=orders&meta.MRN=M42");
    assert_eq!(
        found["messages"].as_array().map(Vec::len),
        Some(1),
        "{found}"
    );
    messages_list_by_metadata(&server);
    wait_for(
        "both channels SENT",
        LONG,
        || {
            (server.count("orders", "SENT") == 1 && server.count("filing", "SENT") == 1)
                .then_some(())
        },
        || server.log_text(),
    );

    let (status, answer) =
        common::http(http_port, "POST", "/orders", Some("{not json")).expect("HTTP source answers");
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("not valid JSON"), "{answer}");
    assert_eq!(server.count("orders", "ERROR"), 1);
    server.stop();
}

/// `plexus messages list --meta KEY=VALUE` finds the message the channel recorded with it.
fn messages_list_by_metadata(server: &ChannelServer) {
    let list = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_plexus"))
            .arg("--config")
            .arg(server.dir.join("plexus.toml"))
            .args(["messages", "list"])
            .args(args)
            .output()
            .expect("plexus messages list")
    };
    let out = list(&["--meta", "MRN=M42"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = text(&out.stdout);
    assert_eq!(rows.lines().count(), 2, "a header and one message: {rows}");
    assert!(rows.contains(" orders "), "{rows}");
    assert_eq!(
        text(&list(&["--meta", "MRN=nobody"]).stdout)
            .lines()
            .count(),
        1
    );
    let bad = list(&["--meta", "MRN"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("expected KEY=VALUE"),
        "{}",
        text(&bad.stderr)
    );
}
