//! `plexus bench mllp`: clients send ADT messages to a Plexus MLLP server in the same process
//! over loopback; reports durable messages per second, ACK latency percentiles, messages per
//! commit (fsync), this machine's raw fsync rate measured in the same run, and peak memory.
//! A benchmark, not a test: it asserts nothing about speed.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    reason = "rates and percentiles of measurements"
)]

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use mllp::{ClientConfig, MllpClient, MllpServer, ServerConfig};
use store::{AnyStore, PostgresConfig, SqliteConfig, Store as _, StoreConfig};

use crate::serve::Intake;

/// Which store to measure.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BenchStore {
    /// SQLite in a temporary directory.
    Sqlite,
    /// PostgreSQL (a fresh schema, dropped afterwards).
    Postgres,
}

/// Options of `plexus bench mllp`.
#[derive(Debug, Args)]
pub struct MllpBenchArgs {
    /// Store to write to.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub store: BenchStore,
    /// PostgreSQL URL for --store postgres.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub pg_url: String,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Total messages per second to offer (spread over the connections); 0 = as fast as ACKs
    /// come back.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Directory for the SQLite store and the fsync probe (default: a new temporary directory).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

pub(crate) const ADT: &str = "MSH|^~\\&|BENCH|PLEXUS|PLEXUS|PLEXUS|20260101120000||ADT^A01^ADT_A01|{ID}|P|2.5.1\rEVN|A01|20260101120000\rPID|1||{ID}^^^PLEXUS^MR||BENCHPATIENT^ALPHA^Q||19800101|F|||1 TEST ST^^TESTVILLE^TS^99999||555-555-0100\rPV1|1|I|4W^401^A^PLEXUS||||1234^DOCTOR^TEST\r";

/// Runs the benchmark and prints a report (Markdown).
pub async fn run(args: MllpBenchArgs) -> Result<()> {
    let temp = tempfile::tempdir().context("temporary directory")?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let fsyncs = fsync_rate(&dir.join("fsync-probe"), Duration::from_secs(2))?;
    let (config, schema) = store_config(args.store, &dir, &args.pg_url, "mllp");
    let store = Arc::new(AnyStore::open(&config).await.context("opening the store")?);
    let server = MllpServer::bind(
        ServerConfig::new("127.0.0.1:0".parse()?),
        Intake::new(
            Arc::clone(&store),
            "bench".into(),
            crate::config::AcceptAck::Always,
        ),
    )?;
    let addr = server.local_addr();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server_task = tokio::spawn(server.serve(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));

    let before = store.stats();
    let started = Instant::now();
    let (total, mut latencies) = drive(addr, args.connections, args.seconds, args.rate).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let after = store.stats();
    let _ = stop_tx.send(true);
    server_task.await??;
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    let commits = after.commits.saturating_sub(before.commits).max(1);
    let rate = total as f64 / elapsed;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "| store | connections | offered rate | messages | durable msgs/s | p50 ACK | p99 ACK | msgs per commit | raw fsync/s | msgs/s ÷ fsync/s | peak RSS |"
    )?;
    writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    writeln!(
        out,
        "| {:?} | {} | {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.1} | {:.0} | {:.1}× | {:.1} MB |",
        args.store,
        args.connections,
        if args.rate == 0 {
            "max".to_owned()
        } else {
            format!("{}/s", args.rate)
        },
        total,
        rate,
        f64::from(pct(0.50)) / 1000.0,
        f64::from(pct(0.99)) / 1000.0,
        total as f64 / commits as f64,
        fsyncs,
        rate / fsyncs.max(1.0),
        peak_rss_kb() as f64 / 1024.0
    )?;
    drop(out);
    store.close().await?;
    if let Some(schema) = schema {
        drop_schema(&args.pg_url, &schema).await?;
    }
    Ok(())
}

/// Runs the clients until the time is up; returns the messages accepted and each ACK latency
/// in microseconds.
pub(crate) async fn drive(
    addr: std::net::SocketAddr,
    connections: usize,
    seconds: u64,
    rate: u64,
) -> Result<(u64, Vec<u32>)> {
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let per_conn_interval =
        (rate > 0).then(|| Duration::from_secs_f64(connections as f64 / rate as f64));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        let sent = Arc::clone(&sent);
        tasks.spawn(async move {
            let mut client =
                MllpClient::new(ClientConfig::new(addr.ip().to_string(), addr.port()))?;
            let mut latencies = Vec::new();
            let mut next = Instant::now();
            let mut n = 0u64;
            while Instant::now() < deadline {
                if let Some(iv) = per_conn_interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += iv;
                }
                let id = format!("B{c}-{n}");
                let msg = ADT.replace("{ID}", &id);
                let t = Instant::now();
                let ack = client.send(msg.as_bytes()).await?;
                latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                if !ack.windows(7).any(|w| w == b"\rMSA|AA") {
                    bail!("message {id} was not accepted");
                }
                sent.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            client.close().await;
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(r) = tasks.join_next().await {
        latencies.extend(r??);
    }
    Ok((sent.load(Ordering::Relaxed), latencies))
}

/// Writes 4 KiB and calls fdatasync, again and again: the physical limit of one-by-one commits.
pub(crate) fn fsync_rate(path: &std::path::Path, for_: Duration) -> Result<f64> {
    let mut f = std::fs::File::create(path)?;
    let block = [0x5Au8; 4096];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < for_ {
        f.write_all(&block)?;
        f.sync_data()?;
        n += 1;
    }
    let _ = std::fs::remove_file(path);
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// CPU time this process's threads spent, from `/proc/self/task/*/schedstat` (Linux; threads
/// that ended meanwhile are missed): the SQLite store's writer and checkpoint threads and all
/// threads together, in nanoseconds.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ThreadCpu {
    pub(crate) writer: u64,
    pub(crate) checkpoint: u64,
    pub(crate) all: u64,
}

impl ThreadCpu {
    pub(crate) fn now() -> Self {
        let mut cpu = Self::default();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return cpu;
        };
        for task in tasks.flatten() {
            let path = task.path();
            let ns: u64 = std::fs::read_to_string(path.join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            // thread names are cut to 15 bytes: plexus-store-writer, plexus-store-checkpoint
            match name.trim_end() {
                "plexus-store-wr" => cpu.writer += ns,
                "plexus-store-ch" => cpu.checkpoint += ns,
                _ => {}
            }
            cpu.all += ns;
        }
        cpu
    }

    pub(crate) fn since(self, before: Self) -> Self {
        Self {
            writer: self.writer.saturating_sub(before.writer),
            checkpoint: self.checkpoint.saturating_sub(before.checkpoint),
            all: self.all.saturating_sub(before.all),
        }
    }
}

pub(crate) fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) async fn drop_schema(url: &str, schema: &str) -> Result<()> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await?;
    drop(client);
    let _ = task.await;
    Ok(())
}

/// The store a benchmark writes to: SQLite in `dir`, or a fresh PostgreSQL schema named after
/// `tag` and this process (returned, to drop afterwards).
pub(crate) fn store_config(
    kind: BenchStore,
    dir: &std::path::Path,
    pg_url: &str,
    tag: &str,
) -> (StoreConfig, Option<String>) {
    match kind {
        BenchStore::Sqlite => (
            StoreConfig::Sqlite(SqliteConfig::new(dir.join("store"))),
            None,
        ),
        BenchStore::Postgres => {
            let schema = format!("plexus_bench_{tag}_{}", std::process::id());
            let mut pg = PostgresConfig::new(pg_url.to_owned());
            pg.schema.clone_from(&schema);
            (StoreConfig::Postgres(pg), Some(schema))
        }
    }
}

/// What a phase cost this process, from its counters: the store's commits and write
/// requests, the CPU time of the SQLite writer and checkpoint threads and of all threads
/// (`/proc/self/task/*/schedstat`, Linux; threads that ended meanwhile are missed), and the
/// bytes written to storage (`/proc/self/io`: for SQLite the WAL and the checkpoint's copies;
/// PostgreSQL writes in its own processes).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WriteCost {
    commits: u64,
    requests: u64,
    cpu: ThreadCpu,
    written: u64,
}

impl WriteCost {
    pub(crate) fn now(stats: store::StoreStats) -> Self {
        Self {
            commits: stats.commits,
            requests: stats.items,
            cpu: ThreadCpu::now(),
            written: std::fs::read_to_string("/proc/self/io")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("write_bytes:"))
                        .and_then(|v| v.trim().parse().ok())
                })
                .unwrap_or(0),
        }
    }

    pub(crate) fn since(self, before: &Self) -> Self {
        Self {
            commits: self.commits.saturating_sub(before.commits),
            requests: self.requests.saturating_sub(before.requests),
            cpu: self.cpu.since(before.cpu),
            written: self.written.saturating_sub(before.written),
        }
    }

    /// The cost per unit (`unit`: "resource", "message") of `units` units.
    pub(crate) fn describe(&self, units: u64, unit: &str) -> String {
        let per = |ns: u64| ns as f64 / 1000.0 / units.max(1) as f64;
        format!(
            "{} commits of {:.1} write requests each; CPU per {unit}: writer thread {:.1} µs, checkpoint thread {:.1} µs, all threads {:.1} µs; {:.1} KB written per {unit}",
            self.commits,
            self.requests as f64 / self.commits.max(1) as f64,
            per(self.cpu.writer),
            per(self.cpu.checkpoint),
            per(self.cpu.all),
            self.written as f64 / 1024.0 / units.max(1) as f64,
        )
    }
}
