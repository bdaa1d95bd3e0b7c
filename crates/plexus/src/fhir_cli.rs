//! `plexus fhir …`: FHIR tools. `plexus fhir synth` makes synthetic patients (see
//! [`fhir_server::synth`]) and loads them into a FHIR server or writes them as NDJSON.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// `plexus fhir` subcommands.
#[derive(Debug, Subcommand)]
pub enum FhirCommand {
    /// Make synthetic patients (Patient, Encounters, Observations, Conditions,
    /// MedicationRequests), one transaction Bundle each; POST them to a server or write
    /// them as NDJSON.
    Synth(SynthArgs),
}

/// Options of `plexus fhir synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// How many patients.
    #[arg(long, default_value_t = 10)]
    pub patients: u64,
    /// Number of the first patient (MRN00000000 + n); lets several runs add distinct
    /// patients.
    #[arg(long, default_value_t = 0)]
    pub first: u64,
    /// Seed: the same seed and numbers give the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// POST each Bundle to this FHIR base URL (`http://127.0.0.1:8081/fhir`).
    #[arg(long)]
    pub server: Option<String>,
    /// Write the Bundles as NDJSON to this file (`-` for standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Concurrent requests with --server.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Bearer token for --server (a Plexus API token with `user/*.cruds`, or a SMART access
    /// token). Default: the PLEXUS_TOKEN environment variable.
    #[arg(long)]
    pub token: Option<String>,
}

/// Runs a `plexus fhir` command.
pub async fn run(command: FhirCommand) -> Result<()> {
    match command {
        FhirCommand::Synth(args) => synth(args).await,
    }
}

async fn synth(args: SynthArgs) -> Result<()> {
    if args.server.is_none() && args.out.is_none() {
        bail!("give --server URL to load the patients, or --out FILE to write them");
    }
    let range = args.first..args.first.saturating_add(args.patients);
    if let Some(out) = &args.out {
        let mut w: Box<dyn std::io::Write> = if out.as_os_str() == "-" {
            Box::new(std::io::stdout().lock())
        } else {
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(out)
                    .with_context(|| format!("cannot create {}", out.display()))?,
            ))
        };
        for n in range.clone() {
            serde_json::to_writer(&mut w, &fhir_server::synth::patient_bundle(args.seed, n))?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    if let Some(server) = &args.server {
        let token = args
            .token
            .clone()
            .or_else(|| std::env::var("PLEXUS_TOKEN").ok());
        let loaded = load(server, token, args.seed, range, args.concurrency).await?;
        let (resources, took) = (loaded.resources, loaded.took);
        eprintln!(
            "loaded {} patients ({resources} resources) into {server} in {:.1} s",
            args.patients,
            took.as_secs_f64()
        );
    }
    Ok(())
}

/// An HTTP/1.1 client with a connection pool.
pub(crate) fn http_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http()
}

/// What [`load`] did.
pub(crate) struct Loaded {
    /// Resources created.
    pub resources: u64,
    /// Time taken.
    pub took: std::time::Duration,
    /// The ids the server gave the patients.
    pub patient_ids: Vec<String>,
    /// Latency of each transaction, in microseconds.
    pub latencies: Vec<u32>,
}

/// POSTs the transaction Bundles of patients `range` to `server`, `concurrency` at a time.
pub(crate) async fn load(
    server: &str,
    token: Option<String>,
    seed: u64,
    range: std::ops::Range<u64>,
    concurrency: usize,
) -> Result<Loaded> {
    let client = http_client();
    let next = Arc::new(AtomicU64::new(range.start));
    let resources = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let client = client.clone();
        let next = Arc::clone(&next);
        let resources = Arc::clone(&resources);
        let url = format!("{}/", server.trim_end_matches('/'));
        let token = token.clone();
        let end = range.end;
        tasks.spawn(async move {
            let mut ids = Vec::new();
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= end {
                    return Ok::<_, anyhow::Error>((ids, latencies));
                }
                let bundle = fhir_server::synth::patient_bundle(seed, n);
                let count = bundle["entry"].as_array().map_or(0, Vec::len) as u64;
                let t = std::time::Instant::now();
                let (status, body) = post(
                    &client,
                    &url,
                    serde_json::to_vec(&bundle)?,
                    token.as_deref(),
                )
                .await?;
                latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                if !status.is_success() {
                    bail!(
                        "POST {url} of patient {n} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                let reply: serde_json::Value = serde_json::from_slice(&body)
                    .with_context(|| format!("the answer to patient {n} is not JSON"))?;
                // The Patient is the first entry: `…/Patient/<id>/_history/1`.
                if let Some(id) = reply["entry"][0]["response"]["location"]
                    .as_str()
                    .and_then(|l| l.split("/Patient/").nth(1))
                    .and_then(|rest| rest.split('/').next())
                {
                    ids.push(id.to_owned());
                }
                resources.fetch_add(count, Ordering::Relaxed);
            }
        });
    }
    let mut patient_ids = Vec::new();
    let mut latencies = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (ids, lat) = r??;
        patient_ids.extend(ids);
        latencies.extend(lat);
    }
    Ok(Loaded {
        resources: resources.load(Ordering::Relaxed),
        took: started.elapsed(),
        patient_ids,
        latencies,
    })
}

/// POSTs a FHIR JSON body; returns the status and the body.
pub(crate) async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    body: Vec<u8>,
    token: Option<&str>,
) -> Result<(hyper::StatusCode, Bytes)> {
    let mut req = hyper::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/fhir+json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .with_context(|| format!("bad URL {url}"))?;
    let resp = client
        .request(req)
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}
