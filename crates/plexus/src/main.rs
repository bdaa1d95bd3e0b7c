//! `plexus` — the Plexus integration engine's command-line binary.
//!
//! `plexus serve` receives HL7 v2 over MLLP (plain, TLS, mutual TLS), stores every message
//! durably (SQLite by default, PostgreSQL to scale out) and acknowledges it only then;
//! `plexus send` delivers files of messages to any MLLP server and checks the ACKs;
//! `plexus messages` reads the journal; `plexus hl7` parses, validates and acknowledges files;
//! `plexus serve` also serves the FHIR R4 API, and `plexus fhir synth` makes test patients.

#![forbid(unsafe_code)]

mod admin;
mod alerts;
mod audit_cli;
mod bench;
mod bench_channel;
mod bench_fhir;
mod channel_cli;
mod config;
mod convert_cli;
mod fhir_cli;
mod hl7;
mod messages;
mod oidc;
mod security;
mod security_cli;
mod send;
mod serve;
mod store_cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Plexus healthcare integration engine.
#[derive(Debug, Parser)]
#[command(name = "plexus", version, about)]
struct Cli {
    /// Configuration file (default: ./plexus.toml if present, else built-in defaults).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive HL7 v2 over MLLP, store each message, then acknowledge it.
    Serve,
    /// Send every message of some files over MLLP and check each acknowledgment.
    Send(send::SendArgs),
    /// Read the message journal.
    #[command(subcommand)]
    Messages(messages::MessagesCommand),
    /// Operate channels of a running server (through its admin API).
    Channel {
        #[command(flatten)]
        admin: channel_cli::AdminArgs,
        #[command(subcommand)]
        command: channel_cli::ChannelCommand,
    },
    /// Run a channel offline on fixture messages and compare each destination's output.
    Test(channel_cli::TestArgs),
    /// Work with HL7 v2 files: parse, read values, validate, acknowledge.
    #[command(subcommand)]
    Hl7(hl7::Hl7Command),
    /// FHIR tools: synthetic test data.
    #[command(subcommand)]
    Fhir(fhir_cli::FhirCommand),
    /// Convert files: HL7 v2 → FHIR, C-CDA → FHIR, FHIR → CCD.
    #[command(subcommand)]
    Convert(convert_cli::ConvertCommand),
    /// Benchmarks (not tests): measure on this machine, print a Markdown report.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Users and their roles (admin API, console, SMART sign-in).
    #[command(subcommand)]
    User(security_cli::UserCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(security_cli::TokenCommand),
    /// OAuth clients of the SMART authorization server (apps, backend services).
    #[command(subcommand)]
    Client(security_cli::ClientCommand),
    /// The audit trail: verify its hash chain, search it.
    #[command(subcommand)]
    Audit(audit_cli::AuditCommand),
    /// Store maintenance: re-encrypt rows under the active key.
    #[command(subcommand)]
    Store(store_cli::StoreCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// MLLP receive → durable store → ACK, with concurrent clients over loopback.
    Mllp(bench::MllpBenchArgs),
    /// MLLP in → channel with a transformer → MLLP out to a local sink, durable.
    Channel(bench_channel::ChannelBenchArgs),
    /// The FHIR API: transaction import, then a CRUD and search mix with concurrent clients.
    Fhir(bench_fhir::FhirBenchArgs),
}

/// mimalloc instead of the system allocator: under the benchmarks' loads malloc and free were
/// about a seventh of all CPU (many small, short-lived allocations on several threads). With
/// the `override` feature (workspace `Cargo.toml`) mimalloc also serves C's `malloc` and
/// `free`, so SQLite's allocations use it too: glibc gave each SQLite page cache's 84 KB first
/// allocation back to the kernel and faulted it in again at the next statement (in the FHIR
/// benchmark's mix 94 % fewer page faults, 8–19 % less CPU per request; docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Hl7(cmd) => hl7::run(cmd),
        Command::Convert(cmd) => convert_cli::run(cmd),
        Command::Serve => runtime().and_then(|rt| {
            rt.block_on(async {
                let (config, path) = config::Config::resolve(cli.config.as_deref())?;
                if let Some(p) = &path {
                    tracing::info!(config = %p.display(), "configuration read");
                } else {
                    tracing::info!("no plexus.toml: one listener on 127.0.0.1:2575, SQLite store in ./plexus-data");
                }
                serve::run(config).await.map(|()| ExitCode::SUCCESS)
            })
        }),
        Command::Send(args) => runtime().and_then(|rt| rt.block_on(send::run(args))),
        Command::Messages(cmd) => runtime().and_then(|rt| rt.block_on(messages::run(cli.config, cmd))),
        Command::Channel { admin, command } => runtime().and_then(|rt| rt.block_on(channel_cli::run(cli.config, admin, command))),
        Command::Fhir(cmd) => runtime().and_then(|rt| rt.block_on(fhir_cli::run(cmd)).map(|()| ExitCode::SUCCESS)),
        Command::Test(args) => runtime().and_then(|rt| rt.block_on(channel_cli::test(args))),
        Command::Bench(BenchCommand::Channel(args)) => runtime().and_then(|rt| rt.block_on(bench_channel::run(args)).map(|()| ExitCode::SUCCESS)),
        Command::Bench(BenchCommand::Fhir(args)) => runtime().and_then(|rt| rt.block_on(bench_fhir::run(args)).map(|()| ExitCode::SUCCESS)),
        Command::User(cmd) => runtime().and_then(|rt| rt.block_on(security_cli::user(cli.config, cmd))),
        Command::Token(cmd) => runtime().and_then(|rt| rt.block_on(security_cli::token(cli.config, cmd))),
        Command::Client(cmd) => runtime().and_then(|rt| rt.block_on(security_cli::client(cli.config, cmd))),
        Command::Audit(cmd) => runtime().and_then(|rt| rt.block_on(audit_cli::run(cli.config, cmd))),
        Command::Store(cmd) => runtime().and_then(|rt| rt.block_on(store_cli::run(cli.config, cmd))),
        Command::Bench(BenchCommand::Mllp(args)) => runtime().and_then(|rt| rt.block_on(bench::run(args)).map(|()| ExitCode::SUCCESS)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("plexus: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Logs to stderr; `RUST_LOG` filters (default `info`). Message content is never logged above
/// debug.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
