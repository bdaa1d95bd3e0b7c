//! Converts a C-CDA document to a FHIR Bundle (JSON on stdout), or, with `--ccd`, a FHIR
//! Bundle back to a CCD: `cargo run -p ccda --example convert -- FILE [--transaction|--ccd]`.
//! `--repeat N` converts N times (for profiling) and prints the rate on stderr; with
//! `--baseline` it only parses the document N times with roxmltree (the benchmark's peer).

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let file = args
        .first()
        .ok_or("usage: convert FILE [--transaction|--ccd] [--repeat N]")?;
    let bytes = std::fs::read(file)?;
    let repeat: usize = args
        .iter()
        .position(|a| a == "--repeat")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(1), |n| n.parse())?;
    if args.iter().any(|a| a == "--ccd") {
        let bundle: serde_json::Value = serde_json::from_slice(&bytes)?;
        let resources: Vec<serde_json::Value> = bundle["entry"]
            .as_array()
            .map(|a| a.iter().map(|e| e["resource"].clone()).collect())
            .unwrap_or_default();
        let patient = resources
            .iter()
            .find(|r| r["resourceType"] == "Patient")
            .ok_or("the Bundle has no Patient")?;
        println!(
            "{}",
            ccda::to_ccd(patient, &resources, &ccda::CcdOptions::default())?
        );
        return Ok(());
    }
    if args.iter().any(|a| a == "--baseline") {
        let text = std::str::from_utf8(&bytes)?;
        let start = Instant::now();
        let mut nodes = 0;
        for _ in 0..repeat {
            nodes = roxmltree::Document::parse(text)?.descendants().count();
        }
        let rate =
            f64::from(u32::try_from(repeat).unwrap_or(u32::MAX)) / start.elapsed().as_secs_f64();
        eprintln!("{repeat} roxmltree parses ({nodes} nodes), {rate:.0}/s");
        return Ok(());
    }
    let bundle_type = if args.iter().any(|a| a == "--transaction") {
        ccda::BundleType::Transaction
    } else {
        ccda::BundleType::Document
    };
    let opts = ccda::Options {
        bundle_type,
        ..ccda::Options::default()
    };
    let start = Instant::now();
    let mut conversion = ccda::to_fhir(&bytes, &opts)?;
    for _ in 1..repeat {
        conversion = ccda::to_fhir(&bytes, &opts)?;
    }
    if repeat > 1 {
        let rate =
            f64::from(u32::try_from(repeat).unwrap_or(u32::MAX)) / start.elapsed().as_secs_f64();
        eprintln!("{repeat} conversions, {rate:.0}/s");
    }
    println!("{}", serde_json::to_string_pretty(&conversion.bundle)?);
    for u in &conversion.unmapped {
        eprintln!(
            "unmapped: line {} {}: {} ({})",
            u.line, u.path, u.what, u.reason
        );
    }
    Ok(())
}
