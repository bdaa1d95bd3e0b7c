//! `plexus bench channel`: MLLP in → channel (a JavaScript or declarative transformer that
//! rewrites three fields) → MLLP out to a local sink, durable at every step, in this process
//! over loopback. Also measures MLLP ingest alone (receive, store, ACK) in the same run, so
//! the figures can be read as a ratio on a shared machine. A benchmark, not a test.

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
use bytes::Bytes;
use clap::{Args, ValueEnum};
use mllp::{Handler, HandlerReply, MllpServer, PeerInfo, ServerConfig};
use store::{AnyStore, Store as _};

use crate::bench::{BenchStore, WriteCost, drive, drop_schema, peak_rss_kb};

/// The transformer of the measured channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transformer {
    /// A JavaScript step that sets MSH-5, MSH-6 and PV1-3-1.
    Javascript,
    /// Three declarative `set` steps doing the same.
    Declarative,
}

/// Options of `plexus bench channel`.
#[derive(Debug, Args)]
pub struct ChannelBenchArgs {
    /// Store to write to.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub store: BenchStore,
    /// PostgreSQL URL for --store postgres.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub pg_url: String,
    /// Transformers to measure (repeatable; default both).
    #[arg(long, value_enum)]
    pub transformer: Vec<Transformer>,
    /// Concurrent sending connections.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Seconds to send for (each phase).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Longest wait for the queues to drain after sending stopped.
    #[arg(long, default_value_t = 120)]
    pub drain_seconds: u64,
    /// Script threads of the channel.
    #[arg(long, default_value_t = 1)]
    pub script_threads: usize,
    /// Give the channel two searchable metadata fields whose values differ per message, as the
    /// example channels' MRN and visit number do (here PID-3-1 and MSH-10).
    #[arg(long)]
    pub metadata: bool,
}

/// An MLLP receiver that answers AA at once and counts what it got.
struct Sink {
    received: Arc<AtomicU64>,
    last: Arc<std::sync::Mutex<Option<Instant>>>,
}

const SINK_ACK: &[u8] =
    b"MSH|^~\\&|SINK|BENCH|PLEXUS|BENCH|20260101120000||ACK|1|P|2.5.1\rMSA|AA|1\r";

impl Handler for Sink {
    async fn handle(&self, _payload: Bytes, _peer: &PeerInfo) -> HandlerReply {
        self.received.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().expect("lock") = Some(Instant::now());
        HandlerReply::Send(Bytes::from_static(SINK_ACK))
    }
}

/// One measured phase.
struct Row {
    what: String,
    ingested: u64,
    ingest_rate: f64,
    p99_ack_ms: f64,
    delivered: u64,
    end_to_end_rate: f64,
    backlog_at_stop: u64,
    /// What the phase cost, and its messages (delivered, or ingested for ingest only).
    cost: (WriteCost, u64),
}

/// Runs the benchmark and prints a report (Markdown).
pub async fn run(args: ChannelBenchArgs) -> Result<()> {
    let transformers = if args.transformer.is_empty() {
        vec![Transformer::Javascript, Transformer::Declarative]
    } else {
        args.transformer.clone()
    };
    let mut rows = Vec::new();
    // ingest alone, for the ratio
    {
        let (store, schema, _dir) = open_store(&args, "ingest").await?;
        let server = MllpServer::bind(
            ServerConfig::new("127.0.0.1:0".parse()?),
            crate::serve::Intake::new(
                Arc::clone(&store),
                "bench".into(),
                crate::config::AcceptAck::Always,
            ),
        )?;
        let addr = server.local_addr();
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(server.serve(async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        let before = WriteCost::now(store.stats());
        let started = Instant::now();
        let (n, lat) = drive(addr, args.connections, args.seconds, 0).await?;
        let rate = n as f64 / started.elapsed().as_secs_f64();
        let cost = WriteCost::now(store.stats()).since(&before);
        let _ = stop_tx.send(true);
        task.await??;
        rows.push(Row {
            what: "MLLP ingest only (store, ACK)".into(),
            ingested: n,
            ingest_rate: rate,
            p99_ack_ms: p99(lat),
            delivered: 0,
            end_to_end_rate: rate,
            backlog_at_stop: 0,
            cost: (cost, n),
        });
        close(store, schema, &args.pg_url).await?;
    }
    for t in transformers {
        rows.push(channel_phase(&args, t).await?);
    }

    let ingest = rows[0].ingest_rate.max(1.0);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "| {:?} store, {} connections, {} s each | received | ingest msgs/s | p99 ACK | delivered | end-to-end msgs/s | ÷ ingest-only | backlog when sending stopped |",
        args.store, args.connections, args.seconds
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for r in &rows {
        writeln!(
            out,
            "| {} | {} | {:.0} | {:.2} ms | {} | {:.0} | {:.2} | {} |",
            r.what,
            r.ingested,
            r.ingest_rate,
            r.p99_ack_ms,
            r.delivered,
            r.end_to_end_rate,
            r.end_to_end_rate / ingest,
            r.backlog_at_stop
        )?;
    }
    writeln!(out)?;
    for r in &rows {
        let (cost, n) = &r.cost;
        writeln!(out, "{}: {}", r.what, cost.describe(*n, "message"))?;
    }
    writeln!(
        out,
        "\npeak RSS of the whole run: {:.1} MB",
        peak_rss_kb() as f64 / 1024.0
    )?;
    Ok(())
}

async fn channel_phase(args: &ChannelBenchArgs, t: Transformer) -> Result<Row> {
    let (store, schema, dir) = open_store(args, "channel").await?;
    let received = Arc::new(AtomicU64::new(0));
    let last = Arc::new(std::sync::Mutex::new(None));
    let sink = MllpServer::bind(
        ServerConfig::new("127.0.0.1:0".parse()?),
        Sink {
            received: Arc::clone(&received),
            last: Arc::clone(&last),
        },
    )?;
    let sink_addr = sink.local_addr();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let sink_task = tokio::spawn(sink.serve(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));

    let steps = match t {
        Transformer::Javascript => "[[transformer]]\ntype = \"javascript\"\nscript = \"\"\"\nmsg.set('MSH-5', 'LAB');\nmsg.set('MSH-6', 'LABHOSP');\nmsg.set('PV1-3-1', msg.get('PV1-3-1') + '-B');\n\"\"\"\n".to_owned(),
        Transformer::Declarative => "[[transformer]]\ntype = \"set\"\npath = \"MSH-5\"\nvalue = \"LAB\"\n[[transformer]]\ntype = \"set\"\npath = \"MSH-6\"\nvalue = \"LABHOSP\"\n[[transformer]]\ntype = \"set\"\npath = \"PV1-3-1\"\nvalue = \"${PV1-3-1}-B\"\n".to_owned(),
    };
    let text = format!(
        "{}[source.mllp]\nbind = \"127.0.0.1:0\"\n[script]\nthreads = {}\n{steps}\n[[destination]]\nname = \"sink\"\n[destination.mllp]\nhost = \"127.0.0.1\"\nport = {}\n[destination.queue]\nbatch = 256\n",
        if args.metadata {
            "metadata = { MRN = \"PID-3-1\", VISIT = \"MSH-10\" }\n"
        } else {
            ""
        },
        args.script_threads,
        sink_addr.port()
    );
    let config = engine::ChannelConfig::parse(&text, &dir.path().join("bench.toml"))?;
    let engine = engine::Engine::new(Arc::clone(&store), engine::EngineConfig::default());
    let ch = engine.deploy(config).await?;
    let addr = ch
        .source_addr()
        .context("the channel has no source address")?;

    let before = WriteCost::now(store.stats());
    let started = Instant::now();
    let (n, lat) = drive(addr, args.connections, args.seconds, 0).await?;
    let sending = started.elapsed().as_secs_f64();
    let backlog = n.saturating_sub(received.load(Ordering::Relaxed));
    let deadline = Instant::now() + Duration::from_secs(args.drain_seconds);
    while received.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = received.load(Ordering::Relaxed);
    let cost = WriteCost::now(store.stats()).since(&before);
    if delivered < n {
        eprintln!(
            "warning: {} of {n} messages were not delivered within {} s",
            n - delivered,
            args.drain_seconds
        );
    }
    let end = (*last.lock().expect("lock")).unwrap_or_else(Instant::now);
    let total = end.duration_since(started).as_secs_f64().max(sending);
    engine.shutdown().await;
    let _ = stop_tx.send(true);
    sink_task.await??;
    drop(engine);
    close(store, schema, &args.pg_url).await?;
    if delivered == 0 {
        bail!("nothing was delivered");
    }
    Ok(Row {
        what: format!(
            "channel, {t:?} transformer{}, MLLP out",
            if args.metadata {
                " and 2 metadata fields"
            } else {
                ""
            }
        ),
        ingested: n,
        ingest_rate: n as f64 / sending,
        p99_ack_ms: p99(lat),
        delivered,
        end_to_end_rate: delivered as f64 / total,
        backlog_at_stop: backlog,
        cost: (cost, delivered),
    })
}

fn p99(mut lat: Vec<u32>) -> f64 {
    lat.sort_unstable();
    let i = ((lat.len() as f64 - 1.0) * 0.99).round() as usize;
    f64::from(lat.get(i).copied().unwrap_or(0)) / 1000.0
}

async fn open_store(
    args: &ChannelBenchArgs,
    phase: &str,
) -> Result<(Arc<AnyStore>, Option<String>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let (config, schema) = crate::bench::store_config(args.store, dir.path(), &args.pg_url, phase);
    let store = Arc::new(AnyStore::open(&config).await.context("opening the store")?);
    Ok((store, schema, dir))
}

async fn close(store: Arc<AnyStore>, schema: Option<String>, url: &str) -> Result<()> {
    store.close().await?;
    if let Some(schema) = schema {
        drop_schema(url, &schema).await?;
    }
    Ok(())
}
