//! One benchmark measurement in its own process, so that its peak memory is its own:
//! `cargo run --release -p hl7v2 --example hl7bench -- PEER FILE [SECONDS]`.
//!
//! PEER is `plexus`, `plexus-scan` (split the stream into messages only), `hl7-parser` (0.3)
//! or `rust-hl7` (0.5). The work: parse each message, then read PID-3-1, PID-5-1 and MSH-10.
//! A file of one message is parsed again and again for SECONDS (default 2); a file of many
//! (a batch) is streamed message by message, with our `MessageReader` splitting it for
//! every peer (neither peer crate reads streams), again and again for SECONDS, and the best
//! pass is reported. Prints one JSON object: the values read
//! (as a check that every peer reads the same), ns per message, MB/s, messages/s and peak RSS.
//! The peers are benchmark dependencies only, never shipped.

#![allow(clippy::cast_precision_loss, reason = "measurements, not money")]
#![allow(missing_docs)]

use std::fs::File;
use std::hint::black_box;
use std::io::BufReader;
use std::time::{Duration, Instant};

use hl7v2::{Message, MessageReader};

type Reader = fn(&[u8]) -> [String; 3];

fn ours(bytes: &[u8]) -> [String; 3] {
    let msg = Message::parse(bytes).expect("plexus parses");
    let get = |p: &str| {
        msg.value(p)
            .ok()
            .flatten()
            .map(std::borrow::Cow::into_owned)
            .unwrap_or_default()
    };
    [get("PID-3-1"), get("PID-5-1"), get("MSH-10")]
}

fn ours_fast(bytes: &[u8]) -> usize {
    // the same work without building Strings: what an engine does on its hot path
    let msg = Message::parse(bytes).expect("plexus parses");
    let a = msg
        .get("PID-3-1")
        .ok()
        .flatten()
        .map_or(0, |e| e.raw().len());
    let b = msg
        .get("PID-5-1")
        .ok()
        .flatten()
        .map_or(0, |e| e.raw().len());
    let c = msg
        .get("MSH-10")
        .ok()
        .flatten()
        .map_or(0, |e| e.raw().len());
    a + b + c
}

fn hl7_parser_fast(bytes: &[u8]) -> usize {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    let msg =
        hl7_parser::Message::parse_with_lenient_newlines(text, true).expect("hl7-parser parses");
    ["PID.3.1", "PID.5.1", "MSH.10"]
        .iter()
        .map(|q| msg.query(*q).map_or(0, |r| r.raw_value().len()))
        .sum()
}

fn rust_hl7_fast(bytes: &[u8]) -> usize {
    let text = std::str::from_utf8(bytes)
        .expect("utf-8")
        .trim_end_matches(['\r', '\n']);
    let msg = rusthl7::message::Message::try_from(text).expect("rust-hl7 parses");
    ["PID.F3.R1.C1", "PID.F5.R1.C1", "MSH.F9"]
        .iter()
        .map(|q| msg.query(*q).len())
        .sum()
}

fn hl7_parser(bytes: &[u8]) -> [String; 3] {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    let msg =
        hl7_parser::Message::parse_with_lenient_newlines(text, true).expect("hl7-parser parses");
    let get = |q: &str| {
        msg.query(q)
            .map(|r| r.raw_value().to_owned())
            .unwrap_or_default()
    };
    [get("PID.3.1"), get("PID.5.1"), get("MSH.10")]
}

/// rust-hl7 numbers MSH fields from MSH-2 (its `MSH.F1` is the encoding characters), so
/// MSH-10 is its `MSH.F9`.
fn rust_hl7(bytes: &[u8]) -> [String; 3] {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    let text = text.trim_end_matches(['\r', '\n']);
    let msg = rusthl7::message::Message::try_from(text).expect("rust-hl7 parses");
    [
        msg.query("PID.F3.R1.C1").to_owned(),
        msg.query("PID.F5.R1.C1").to_owned(),
        msg.query("MSH.F9").to_owned(),
    ]
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (peer, file) = (args[0].as_str(), &args[1]);
    let seconds: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    // `read` returns the values (to check every peer reads the same); `work` is the timed
    // loop's body: the same reads as borrowed slices, so no peer pays for allocating Strings
    let (read, work): (Reader, fn(&[u8]) -> usize) = match peer {
        "plexus" | "plexus-scan" => (ours, ours_fast),
        "hl7-parser" => (hl7_parser, hl7_parser_fast),
        "rust-hl7" => (rust_hl7, rust_hl7_fast),
        _ => panic!("unknown peer {peer}"),
    };
    let size = std::fs::metadata(file).expect("input").len();
    let single = size < 1 << 20;
    if single {
        let bytes = std::fs::read(file).expect("read");
        let sample = read(&bytes);
        let start = Instant::now();
        let mut ops = 0u64;
        while start.elapsed() < Duration::from_secs_f64(seconds) {
            for _ in 0..1000 {
                black_box(work(black_box(&bytes)));
            }
            ops += 1000;
        }
        let ns = start.elapsed().as_nanos() as f64 / ops as f64;
        println!(
            "{}",
            serde_json::json!({"peer": peer, "file": file, "sample": sample, "ns_per_op": ns, "ops": ops, "peak_rss_kb": peak_rss_kb()})
        );
        return;
    }
    // stream the file again and again for SECONDS (at least once); report the best pass
    let began = Instant::now();
    let mut best = f64::INFINITY;
    let mut messages = 0u64;
    let mut sample = None;
    let mut passes = 0;
    while passes == 0 || began.elapsed() < Duration::from_secs_f64(seconds) {
        let mut reader = MessageReader::new(BufReader::with_capacity(
            1 << 20,
            File::open(file).expect("open"),
        ));
        let start = Instant::now();
        messages = 0;
        while let Some(m) = reader.next_message() {
            let m = m.expect("message");
            if peer == "plexus-scan" {
                black_box(m.bytes);
            } else {
                black_box(work(m.bytes));
            }
            if sample.is_none() {
                sample = Some(read(m.bytes));
            }
            messages += 1;
        }
        best = best.min(start.elapsed().as_secs_f64());
        passes += 1;
    }
    let secs = best;
    println!(
        "{}",
        serde_json::json!({"peer": peer, "file": file, "sample": sample, "bytes": size, "messages": messages, "seconds": secs, "passes": passes,
            "mb_per_s": size as f64 / 1e6 / secs, "msgs_per_s": messages as f64 / secs, "peak_rss_kb": peak_rss_kb()})
    );
}
