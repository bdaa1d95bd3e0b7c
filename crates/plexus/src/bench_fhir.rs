//! `plexus bench fhir`: the FHIR API in this process over loopback HTTP, on SQLite or
//! PostgreSQL. Phases: (1) an HTTP floor — the same server and clients on a route that
//! answers a fixed small JSON without touching the store, the peer the other figures are
//! divided by; (2) transaction-Bundle import of synthetic patients; (3) a CRUD mix with
//! concurrent clients (create, read, update, search by identifier, by name, by date range
//! with `_include`); with `--secured`, (4) the same mix again on a second mount of the API on
//! the same store with authorization (an API token verified on every request) and the audit
//! trail (one durable record per request), so the cost of security is a same-run ratio.
//! Reports requests/s, p50/p95/p99 per kind and peak memory. A benchmark, not a test: it
//! asserts nothing about speed.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    reason = "rates and percentiles of measurements"
)]

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use store::{AnyStore, Store as _};

use crate::bench::{BenchStore, WriteCost, drop_schema, peak_rss_kb, store_config};
use crate::fhir_cli::{http_client, load};

/// Options of `plexus bench fhir`.
#[derive(Debug, Args)]
pub struct FhirBenchArgs {
    /// Store to write to.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub store: BenchStore,
    /// PostgreSQL URL for --store postgres.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub pg_url: String,
    /// Synthetic patients to import first (about 12 resources each).
    #[arg(long, default_value_t = 2000)]
    pub patients: u64,
    /// Concurrent clients of the import.
    #[arg(long, default_value_t = 8)]
    pub import_clients: usize,
    /// Patients per transaction Bundle of the import (each patient's resources are about 11
    /// entries; the default 1 is one patient per Bundle).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub bundle_patients: u64,
    /// Concurrent clients of the CRUD mix and the floor.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Seconds of the CRUD mix (the floor runs a third of it).
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Directory for the SQLite store (default: a new temporary directory).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Also run the mix with authorization and the audit trail on (phase 4).
    #[arg(long)]
    pub secured: bool,
    /// Megabytes of the SQLite store's resource cache (`resource_cache_mb`; 0: off), to
    /// compare a mix with and without it.
    #[arg(long, default_value_t = store::config::SqliteConfig::default().resource_cache_mb)]
    pub resource_cache_mb: usize,
    /// Skip the import: run the mix on the store in --dir as an earlier run with
    /// `--patients` N left it (so a mix on a million resources needs one long import only).
    #[arg(long, requires = "dir")]
    pub skip_import: bool,
}

/// The kinds of request of the CRUD mix, with their share (out of 100).
const MIX: &[(Op, u64)] = &[
    (Op::Create, 15),
    (Op::Read, 35),
    (Op::Update, 10),
    (Op::SearchIdentifier, 15),
    (Op::SearchName, 15),
    (Op::SearchDateInclude, 10),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Read,
    Update,
    SearchIdentifier,
    SearchName,
    SearchDateInclude,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Self::Create => "create Patient",
            Self::Read => "read Patient/id",
            Self::Update => "update Patient/id",
            Self::SearchIdentifier => "search Patient?identifier",
            Self::SearchName => "search Patient?name (prefix)",
            Self::SearchDateInclude => "search Observation?date range&_include",
        }
    }
}

/// Runs the benchmark and prints a report (Markdown).
pub async fn run(args: FhirBenchArgs) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    let (mut config, schema) = store_config(args.store, &dir, &args.pg_url, "fhir");
    if let store::StoreConfig::Sqlite(sqlite) = &mut config {
        sqlite.resource_cache_mb = args.resource_cache_mb;
    }
    let store = Arc::new(AnyStore::open(&config).await.context("opening the store")?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}/fhir");
    let secured_base = format!("http://{addr}/sfhir");
    let (secured_app, token) = if args.secured {
        let (app, token) = secured(&store, &secured_base, &dir).await?;
        (app, Some(token))
    } else {
        (axum::Router::new(), None)
    };
    let app = floor_route()
        .merge(fhir_server::mount(
            "/fhir",
            Arc::clone(&store),
            fhir_server::FhirConfig::new(&base),
        ))
        .merge(secured_app);
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            })
            .await
    });

    // 1. The HTTP floor.
    let floor_url = format!("http://{addr}/floor");
    let floor = drive(
        args.clients,
        Duration::from_secs(args.seconds.div_ceil(3)),
        {
            move |_rng: &mut fhir_server::synth::Rng, _ids: &Ids| {
                (Op::Read, "GET", floor_url.clone(), None)
            }
        },
    )
    .await?;

    // 2. Import.
    let before = WriteCost::now(store.stats());
    let loaded = if args.skip_import {
        stored_patients(&store).await?
    } else if args.bundle_patients > 1 {
        load_grouped(
            &base,
            args.patients,
            args.bundle_patients,
            args.import_clients,
        )
        .await?
    } else {
        load(&base, None, 1, 0..args.patients, args.import_clients).await?
    };
    let import_cost = WriteCost::now(store.stats()).since(&before);
    let ids: Ids = Arc::new(Mutex::new(loaded.patient_ids.clone()));
    if loaded.patient_ids.is_empty() {
        bail!("the import created no patients");
    }

    // 3. The CRUD mix.
    let patients = args.patients.max(1);
    let mix_base = base.clone();
    let before_mix = WriteCost::now(store.stats());
    let mix = drive_with_ids(
        args.clients,
        Duration::from_secs(args.seconds),
        Arc::clone(&ids),
        None,
        move |rng, ids| request(&mix_base, rng, ids, patients),
    )
    .await?;
    let mix_cost = WriteCost::now(store.stats()).since(&before_mix);

    // 4. The same mix, secured and audited.
    let secured_mix = match &token {
        Some(token) => Some(
            drive_with_ids(
                args.clients,
                Duration::from_secs(args.seconds),
                ids,
                Some(Arc::from(token.as_str())),
                move |rng, ids| request(&secured_base, rng, ids, patients),
            )
            .await?,
        ),
        None => None,
    };

    let _ = stop_tx.send(true);
    server.await??;
    store.close().await?;
    if let Some(schema) = schema {
        drop_schema(&args.pg_url, &schema).await?;
    }

    report(&args, &floor, &mix, &mix_cost, &loaded, &import_cost)?;
    if let Some(secured) = &secured_mix {
        report_secured(&mix, secured)?;
    }
    Ok(())
}

/// The ids of up to 10,000 Patients already in the store, as an import that took no time
/// (`--skip-import`).
async fn stored_patients(store: &AnyStore) -> Result<crate::fhir_cli::Loaded> {
    use store::Resources as _;
    let request = fhir::search::SearchRequest {
        resource_type: Some("Patient".to_owned()),
        count: 10_000,
        total: fhir::search::TotalMode::None,
        ..fhir::search::SearchRequest::default()
    };
    let page = store.search(&request).await?;
    Ok(crate::fhir_cli::Loaded {
        resources: 0,
        took: Duration::from_secs(1),
        patient_ids: page.matches.into_iter().map(|r| r.id).collect(),
        latencies: Vec::new(),
    })
}

/// `/floor`: a fixed small FHIR JSON without the store, the HTTP peer of every figure.
fn floor_route() -> axum::Router {
    axum::Router::new().route(
        "/floor",
        axum::routing::get(|| async {
            (
                [("content-type", "application/fhir+json")],
                r#"{"resourceType":"Patient","id":"floor","active":true}"#,
            )
        }),
    )
}

/// The secured mix as a ratio of the open one.
fn report_secured(mix: &Measured, secured: &Measured) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\n| secured (API token + audit record per request) | requests | req/s | ÷ open mix | p50 | p95 | p99 |\n|---|---:|---:|---:|---:|---:|---:|"
    )?;
    row(
        &mut out,
        "CRUD mix, all kinds, secured",
        secured.all().len(),
        secured.rate(),
        mix.rate(),
        secured.all(),
    )
}

/// The FHIR API at `/sfhir` with authorization and the audit trail, and an API token of an
/// admin with `user/*.cruds`.
async fn secured(
    store: &Arc<AnyStore>,
    base: &str,
    dir: &std::path::Path,
) -> Result<(axum::Router, String)> {
    let auth = auth::AuthServer::new(
        auth::AuthConfig::new(base, base.replace("/sfhir", "/auth"), dir.join("keys")),
        Arc::clone(store),
        Arc::new(auth::NoEvents),
    )?;
    auth.add_user("bench", None, &[auth::principal::Role::Admin], None)
        .await?;
    let token = auth
        .create_api_token("bench", "bench", "user/*.cruds", Duration::from_hours(1))
        .await?;
    let audit = crate::security::AuditTrail::start(Arc::clone(store), "bench".into());
    let security = fhir_server::Security {
        authenticator: Some(Arc::new(crate::security::Verifier(auth))),
        access_log: Some(audit),
        public_routes: None,
    };
    let app = fhir_server::mount_with(
        "/sfhir",
        Arc::clone(store),
        fhir_server::FhirConfig::new(base),
        security,
    );
    Ok((app, token))
}

/// Prints the Markdown report.
fn report(
    args: &FhirBenchArgs,
    floor: &Measured,
    mix: &Measured,
    mix_cost: &WriteCost,
    loaded: &crate::fhir_cli::Loaded,
    cost: &WriteCost,
) -> Result<()> {
    let import_rate = loaded.resources as f64 / loaded.took.as_secs_f64();
    let mut import_lat = loaded.latencies.clone();
    let mut out = std::io::stdout().lock();
    let floor_rate = floor.rate();
    let cache = match args.store {
        BenchStore::Sqlite => format!(" (resource cache {} MB)", args.resource_cache_mb),
        BenchStore::Postgres => String::new(),
    };
    writeln!(
        out,
        "| {:?} store{cache}, {} clients, {} patients imported | requests | req/s | ÷ HTTP floor | p50 | p95 | p99 |",
        args.store, args.clients, args.patients
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
    let all = floor.all();
    row(
        &mut out,
        "HTTP floor (fixed JSON, no store)",
        all.len(),
        floor_rate,
        floor_rate,
        all,
    )?;
    let mix_rate = mix.rate();
    row(
        &mut out,
        "CRUD mix, all kinds",
        mix.all().len(),
        mix_rate,
        floor_rate,
        mix.all(),
    )?;
    for (op, _) in MIX {
        let lat: Vec<u32> = mix
            .samples
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, l)| *l)
            .collect();
        let share = lat.len() as f64 / mix.samples.len().max(1) as f64;
        row(
            &mut out,
            &format!("  {}", op.label()),
            lat.len(),
            mix_rate * share,
            floor_rate,
            lat,
        )?;
    }
    // CPU per request is steadier than requests per second on a shared machine: it does not
    // count the time the process waited for a core (this process's client threads included)
    writeln!(
        out,
        "\nmix cost: {}",
        mix_cost.describe(mix.samples.len() as u64, "request")
    )?;
    writeln!(
        out,
        "\ntransaction import: {} resources in {} Bundles in {:.1} s = **{import_rate:.0} resources/s** ({} clients), Bundle p50 {:.1} ms, p99 {:.1} ms",
        loaded.resources,
        args.patients.div_ceil(args.bundle_patients),
        loaded.took.as_secs_f64(),
        args.import_clients,
        pct(&mut import_lat, 0.50),
        pct(&mut import_lat, 0.99),
    )?;
    if loaded.resources > 0 {
        writeln!(
            out,
            "import cost: {}",
            cost.describe(loaded.resources, "resource")
        )?;
    }
    writeln!(
        out,
        "peak RSS of the whole run: {:.1} MB",
        peak_rss_kb() as f64 / 1024.0
    )?;
    Ok(())
}

type Ids = Arc<Mutex<Vec<String>>>;

/// `json` (one patient's synthetic Bundle) with the first 8 hex digits of every `urn:uuid:`
/// set to the patient's number: the generator's ids repeat between neighbouring patients
/// (each one's random stream is its neighbour's shifted by a step), which is harmless in a
/// Bundle of one patient but not when several patients share one.
fn distinct_uuids(json: &str, patient: u64) -> String {
    const URN: &str = "urn:uuid:";
    let prefix = format!("{:08x}", patient & 0xffff_ffff);
    let mut out = String::with_capacity(json.len());
    let mut rest = json;
    while let Some(at) = rest.find(URN) {
        let (before, after) = rest.split_at(at + URN.len());
        out.push_str(before);
        if after.len() >= 8 && after.is_char_boundary(8) {
            out.push_str(&prefix);
            rest = &after[8..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The import with `per_bundle` patients in each transaction Bundle (`--bundle-patients`):
/// the entries of their synthetic Bundles together (their `urn:uuid:` references stay
/// distinct), `concurrency` Bundles at a time.
async fn load_grouped(
    server: &str,
    patients: u64,
    per_bundle: u64,
    concurrency: usize,
) -> Result<crate::fhir_cli::Loaded> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let client = crate::fhir_cli::http_client();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let client = client.clone();
        let next = Arc::clone(&next);
        let url = format!("{}/", server.trim_end_matches('/'));
        tasks.spawn(async move {
            let (mut ids, mut latencies, mut resources) = (Vec::new(), Vec::new(), 0u64);
            loop {
                let first = next.fetch_add(per_bundle, Ordering::Relaxed);
                if first >= patients {
                    return Ok::<_, anyhow::Error>((ids, latencies, resources));
                }
                // the body is written as text: each patient's entries serialized once, their
                // `urn:uuid:` ids made distinct, joined into one transaction Bundle
                let mut body =
                    String::from(r#"{"resourceType":"Bundle","type":"transaction","entry":["#);
                let mut count = 0u64;
                for n in first..(first + per_bundle).min(patients) {
                    let bundle = fhir_server::synth::patient_bundle(1, n);
                    let Some(entries) = bundle["entry"].as_array().filter(|e| !e.is_empty()) else {
                        continue;
                    };
                    count += entries.len() as u64;
                    let text = distinct_uuids(&serde_json::to_string(entries)?, n);
                    if !body.ends_with('[') {
                        body.push(',');
                    }
                    // the array's items, without its brackets
                    body.push_str(&text[1..text.len() - 1]);
                }
                body.push_str("]}");
                let t = Instant::now();
                let (status, body) =
                    crate::fhir_cli::post(&client, &url, body.into_bytes(), None).await?;
                latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                if !status.is_success() {
                    bail!(
                        "POST {url} of patients from {first} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                // only the locations are read: the entries' resources are skipped, not built
                let reply: TransactionReply = serde_json::from_slice(&body)
                    .with_context(|| format!("the answer to patients from {first} is not JSON"))?;
                for entry in reply.entry {
                    if let Some(id) = entry.response.location.as_deref().and_then(location_id) {
                        ids.push(id.to_owned());
                    }
                }
                resources += count;
            }
        });
    }
    let mut loaded = crate::fhir_cli::Loaded {
        resources: 0,
        took: Duration::ZERO,
        patient_ids: Vec::new(),
        latencies: Vec::new(),
    };
    while let Some(r) = tasks.join_next().await {
        let (ids, lat, resources) = r??;
        loaded.patient_ids.extend(ids);
        loaded.latencies.extend(lat);
        loaded.resources += resources;
    }
    loaded.took = started.elapsed();
    Ok(loaded)
}

fn row(
    out: &mut impl std::io::Write,
    what: &str,
    n: usize,
    rate: f64,
    floor: f64,
    mut lat: Vec<u32>,
) -> Result<()> {
    writeln!(
        out,
        "| {what} | {n} | {rate:.0} | {:.2} | {:.2} ms | {:.2} ms | {:.2} ms |",
        rate / floor.max(1.0),
        pct(&mut lat, 0.50),
        pct(&mut lat, 0.95),
        pct(&mut lat, 0.99)
    )?;
    Ok(())
}

/// The `q` quantile of microsecond latencies, in milliseconds.
fn pct(lat: &mut [u32], q: f64) -> f64 {
    if lat.is_empty() {
        return 0.0;
    }
    lat.sort_unstable();
    let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
    f64::from(lat[i]) / 1000.0
}

/// What the clients of one phase measured.
struct Measured {
    samples: Vec<(Op, u32)>,
    took: Duration,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.samples.len() as f64 / self.took.as_secs_f64()
    }

    fn all(&self) -> Vec<u32> {
        self.samples.iter().map(|(_, l)| *l).collect()
    }
}

/// One request: kind, method, URL, body.
type Request = (Op, &'static str, String, Option<Vec<u8>>);

async fn drive<F>(clients: usize, time: Duration, make: F) -> Result<Measured>
where
    F: Fn(&mut fhir_server::synth::Rng, &Ids) -> Request + Send + Sync + 'static,
{
    drive_with_ids(clients, time, Arc::new(Mutex::new(Vec::new())), None, make).await
}

async fn drive_with_ids<F>(
    clients: usize,
    time: Duration,
    ids: Ids,
    token: Option<Arc<str>>,
    make: F,
) -> Result<Measured>
where
    F: Fn(&mut fhir_server::synth::Rng, &Ids) -> Request + Send + Sync + 'static,
{
    let client = http_client();
    let make = Arc::new(make);
    let started = Instant::now();
    let deadline = started + time;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients.max(1) {
        let client = client.clone();
        let make = Arc::clone(&make);
        let ids = Arc::clone(&ids);
        let token = token.clone();
        tasks.spawn(async move {
            let mut rng = fhir_server::synth::Rng::new(c as u64 + 1);
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let (op, method, url, body) = make(&mut rng, &ids);
                let mut req = hyper::Request::builder()
                    .method(method)
                    .uri(&url)
                    .header("content-type", "application/fhir+json");
                if let Some(t) = &token {
                    req = req.header("authorization", format!("Bearer {t}"));
                }
                let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
                let t = Instant::now();
                let resp = client
                    .request(req)
                    .await
                    .with_context(|| format!("{method} {url}"))?;
                let status = resp.status();
                // A create's id from its Location (`…/Patient/<id>/_history/1`): reading it
                // from the body would parse the whole answer in this process, whose CPU the
                // server's figures include.
                let created = (op == Op::Create)
                    .then(|| resp.headers().get(hyper::header::LOCATION))
                    .flatten()
                    .and_then(|l| l.to_str().ok())
                    .and_then(location_id)
                    .map(str::to_owned);
                let bytes = resp.into_body().collect().await?.to_bytes();
                let took = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
                if !status.is_success() {
                    bail!(
                        "{method} {url} answered {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
                if op == Op::Create {
                    let Some(id) = created else {
                        bail!("{method} {url} answered {status} without a Patient Location");
                    };
                    if let Ok(mut ids) = ids.lock() {
                        ids.push(id);
                    }
                }
                samples.push((op, took));
            }
            Ok::<_, anyhow::Error>(samples)
        });
    }
    let mut samples = Vec::new();
    while let Some(r) = tasks.join_next().await {
        samples.extend(r??);
    }
    Ok(Measured {
        samples,
        took: started.elapsed(),
    })
}

/// The next request of the CRUD mix.
fn request(base: &str, rng: &mut fhir_server::synth::Rng, ids: &Ids, patients: u64) -> Request {
    let mut pick = rng.below(100);
    let mut op = Op::Read;
    for (o, share) in MIX {
        if pick < *share {
            op = *o;
            break;
        }
        pick -= share;
    }
    let some_id = || {
        ids.lock()
            .ok()
            .and_then(|ids| ids.get((pick as usize * 7919) % ids.len().max(1)).cloned())
            .unwrap_or_default()
    };
    match op {
        Op::Create | Op::Update => {
            let n = patients + rng.below(1_000_000);
            // the Patient of `patient_bundle(7, n)`, without generating the rest of its Bundle
            // (client work in this process that the server's figures would pay for)
            let mut patient = fhir_server::synth::patient(7, n);
            if op == Op::Create {
                (
                    op,
                    "POST",
                    format!("{base}/Patient"),
                    serde_json::to_vec(&patient).ok(),
                )
            } else {
                let id = some_id();
                patient["id"] = serde_json::Value::String(id.clone());
                (
                    op,
                    "PUT",
                    format!("{base}/Patient/{id}"),
                    serde_json::to_vec(&patient).ok(),
                )
            }
        }
        Op::Read => (op, "GET", format!("{base}/Patient/{}", some_id()), None),
        Op::SearchIdentifier => {
            let mrn = fhir_server::synth::mrn(rng.below(patients));
            (
                op,
                "GET",
                format!(
                    "{base}/Patient?identifier={}|{mrn}",
                    fhir_server::synth::MRN_SYSTEM
                ),
                None,
            )
        }
        Op::SearchName => {
            let family = rng.pick(fhir_server::synth::FAMILY);
            let prefix: String = family.chars().take(3).collect();
            (
                op,
                "GET",
                format!("{base}/Patient?name={}&_count=10", urlencode(&prefix)),
                None,
            )
        }
        Op::SearchDateInclude => {
            let year = 2015 + rng.below(11);
            let month = 1 + rng.below(12);
            (
                op,
                "GET",
                format!(
                    "{base}/Observation?date=ge{year}-{month:02}-01&date=le{year}-{month:02}-03&_include=Observation:subject&_count=10"
                ),
                None,
            )
        }
    }
}

/// What the import reads of a transaction-response Bundle.
#[derive(serde::Deserialize)]
struct TransactionReply {
    #[serde(default)]
    entry: Vec<ReplyEntry>,
}

/// An entry of a transaction-response Bundle: its `response.location`.
#[derive(serde::Deserialize)]
struct ReplyEntry {
    #[serde(default)]
    response: ReplyResponse,
}

#[derive(serde::Deserialize, Default)]
struct ReplyResponse {
    location: Option<String>,
}

/// The Patient id of a `Location` or `response.location` (`…/Patient/<id>/_history/1`).
fn location_id(location: &str) -> Option<&str> {
    location
        .strip_prefix("Patient/")
        .or_else(|| location.split("/Patient/").nth(1))
        .and_then(|rest| rest.split('/').next())
        .filter(|id| !id.is_empty())
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::{TransactionReply, distinct_uuids, location_id};

    /// The import reads each entry's `response.location` and skips the rest, resources too.
    #[test]
    fn transaction_replies_give_their_locations() {
        let reply: TransactionReply = serde_json::from_str(
            r#"{"resourceType": "Bundle", "type": "transaction-response", "entry": [
                {"resource": {"resourceType": "Patient", "id": "p1", "name": [{"family": "X"}]},
                 "response": {"status": "201 Created", "location": "Patient/p1/_history/1"}},
                {"response": {"status": "200 OK"}},
                {"fullUrl": "urn:uuid:1"}
            ]}"#,
        )
        .unwrap();
        let locations: Vec<Option<String>> = reply
            .entry
            .into_iter()
            .map(|e| e.response.location)
            .collect();
        assert_eq!(
            locations,
            [Some("Patient/p1/_history/1".to_owned()), None, None]
        );
        let empty: TransactionReply =
            serde_json::from_str(r#"{"resourceType": "Bundle"}"#).unwrap();
        assert!(empty.entry.is_empty());
        assert!(serde_json::from_str::<TransactionReply>("[1]").is_err());
    }

    #[test]
    fn location_gives_the_patient_id() {
        assert_eq!(
            location_id("http://127.0.0.1:1/fhir/Patient/01abc/_history/1"),
            Some("01abc")
        );
        assert_eq!(location_id("Patient/x.1/_history/2"), Some("x.1"));
        assert_eq!(location_id("http://h/fhir/Observation/1/_history/1"), None);
        assert_eq!(location_id("http://h/fhir/Patient/"), None);
    }

    /// Neighbouring patients' Bundles share `urn:uuid:` ids; once rewritten, the entries of
    /// several patients have distinct fullUrls and each patient's references still point at
    /// its own entries.
    #[test]
    fn grouped_patients_get_distinct_full_urls() {
        let mut all = std::collections::HashSet::new();
        let mut repeated = 0;
        for n in 0..6 {
            let original = fhir_server::synth::patient_bundle(1, n);
            let bundle: serde_json::Value =
                serde_json::from_str(&distinct_uuids(&original.to_string(), n)).unwrap();
            let entries = bundle["entry"].as_array().unwrap();
            let own: std::collections::HashSet<&str> = entries
                .iter()
                .map(|e| e["fullUrl"].as_str().unwrap())
                .collect();
            assert_eq!(own.len(), entries.len());
            for e in entries {
                for field in ["subject", "encounter"] {
                    if let Some(r) = e["resource"][field]["reference"].as_str() {
                        assert!(own.contains(r), "{r} is not an entry of patient {n}");
                    }
                }
            }
            for url in own {
                assert!(url.starts_with(&format!("urn:uuid:{n:08x}-")), "{url}");
                repeated += usize::from(!all.insert(url.to_owned()));
            }
            let before: std::collections::HashSet<&str> = original["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["fullUrl"].as_str().unwrap())
                .collect();
            assert_eq!(before.len(), entries.len());
        }
        assert_eq!(repeated, 0);
    }
}
