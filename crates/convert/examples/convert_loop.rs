//! Converts the file given N times (for instruction counts and peak RSS):
//! `cargo run --release -p convert --example convert_loop -- FILE N [json|value|parse]`
//! — `json` (default) writes the Bundle as JSON bytes (`convert_bytes_to_json`), `value`
//! builds the `serde_json::Value` (`convert_bytes`), `parse` only parses the message (the
//! same-run baseline); `dump` writes one conversion's JSON (plain, then with unmapped
//! extensions) and its unmapped report to stdout, to compare the output of two builds.

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_default();
    let n: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let form = args.next().unwrap_or_else(|| "json".into());
    let raw = std::fs::read(&path).unwrap_or_default();
    let opts = convert::Options::default();
    if form == "dump" {
        let ext = convert::Options {
            unmapped_extensions: true,
            ..convert::Options::default()
        };
        for o in [&opts, &ext] {
            match convert::convert_bytes_to_json(&raw, o) {
                Ok(out) => {
                    println!("{}", String::from_utf8_lossy(&out.json));
                    for u in &out.unmapped {
                        println!("unmapped: {u}");
                    }
                }
                Err(e) => println!("error: {e}"),
            }
        }
        return;
    }
    let mut size = 0;
    let start = std::time::Instant::now();
    for _ in 0..n {
        let raw = std::hint::black_box(&raw);
        size += match form.as_str() {
            "value" => convert::convert_bytes(raw, &opts)
                .map_or(0, |out| out.bundle["entry"].as_array().map_or(0, Vec::len)),
            "parse" => hl7v2::Message::parse(raw).map_or(0, |m| m.segment_count()),
            _ => convert::convert_bytes_to_json(raw, &opts).map_or(0, |out| out.json.len()),
        };
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} runs ({form}), total output {size}, {:.0} runs/s",
        f64::from(n) / secs
    );
}
