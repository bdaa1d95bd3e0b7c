//! Converts the file given N times (for instruction counts and peak RSS):
//! `cargo run --release -p convert --example convert_loop -- FILE N`

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_default();
    let n: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let raw = std::fs::read(&path).unwrap_or_default();
    let mut entries = 0;
    let start = std::time::Instant::now();
    for _ in 0..n {
        if let Ok(out) =
            convert::convert_bytes(std::hint::black_box(&raw), &convert::Options::default())
        {
            entries += out.bundle["entry"].as_array().map_or(0, Vec::len);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} conversions, {entries} entries, {:.0} conversions/s",
        f64::from(n) / secs
    );
}
