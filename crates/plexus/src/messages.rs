//! `plexus messages list|show`: read the message journal.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use store::{AnyStore, Journal as _, MessageFilter, MessageId, Status, Store as _, Timestamp};

use crate::config::Config;

/// `plexus messages` subcommands.
#[derive(Debug, Subcommand)]
pub enum MessagesCommand {
    /// List messages, newest first.
    List(ListArgs),
    /// Show one message: its journal row, metadata and every content stage.
    Show {
        /// The message id (from `list`).
        id: String,
        /// Print only the raw bytes as received (exactly).
        #[arg(long)]
        raw: bool,
    },
}

/// Filters of `plexus messages list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Received at or after (RFC 3339, e.g. 2026-11-25T10:00:00Z).
    #[arg(long)]
    pub from: Option<String>,
    /// Received before (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// Message type (MSH-9-1), e.g. ADT.
    #[arg(long = "type")]
    pub message_type: Option<String>,
    /// Trigger event (MSH-9-2), e.g. A01.
    #[arg(long)]
    pub event: Option<String>,
    /// Status: RECEIVED, FILTERED, TRANSFORMED, QUEUED, SENT or ERROR.
    #[arg(long)]
    pub status: Option<String>,
    /// Message control id (MSH-10).
    #[arg(long)]
    pub control_id: Option<String>,
    /// Channel.
    #[arg(long)]
    pub channel: Option<String>,
    /// Metadata a channel recorded, `KEY=VALUE` (e.g. `--meta MRN=12345`); repeatable, all
    /// must match.
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Most rows to print.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Only messages older than this id (paging: pass the last id printed).
    #[arg(long)]
    pub before: Option<String>,
}

/// Runs a `plexus messages` command against the configured store.
pub async fn run(config: Option<PathBuf>, cmd: MessagesCommand) -> Result<ExitCode> {
    let (config, _) = Config::resolve(config.as_deref())?;
    let store = AnyStore::open(&config.store)
        .await
        .context("opening the store")?;
    let code = match cmd {
        MessagesCommand::List(args) => list(&store, args).await?,
        MessagesCommand::Show { id, raw } => show(&store, &id, raw).await?,
    };
    store.close().await?;
    Ok(code)
}

fn time(arg: Option<&String>, what: &str) -> Result<Option<Timestamp>> {
    arg.map(|t| {
        t.parse::<Timestamp>()
            .map_err(|e| anyhow::anyhow!("--{what} {t:?}: {e}"))
    })
    .transpose()
}

async fn list(store: &AnyStore, args: ListArgs) -> Result<ExitCode> {
    let metadata = args
        .meta
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("--meta {kv:?}: expected KEY=VALUE"))
        })
        .collect::<Result<Vec<_>>>()?;
    let filter = MessageFilter {
        metadata,
        received_from: time(args.from.as_ref(), "from")?,
        received_to: time(args.to.as_ref(), "to")?,
        channel: args.channel,
        message_type: args.message_type,
        trigger_event: args.event,
        status: args
            .status
            .map(|s| s.to_ascii_uppercase().parse::<Status>())
            .transpose()
            .map_err(|e| anyhow::anyhow!("--status: {e}"))?,
        control_id: args.control_id,
        limit: Some(args.limit),
        before_id: args
            .before
            .map(|b| b.parse::<MessageId>())
            .transpose()
            .map_err(|e| anyhow::anyhow!("--before: {e}"))?,
        ..MessageFilter::default()
    };
    let rows = store.list(&filter).await?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<26}  {:<24}  {:<12}  {:<9}  {:<22}  {:<8}  PEER",
        "ID", "RECEIVED", "CHANNEL", "TYPE", "CONTROL ID", "STATUS"
    )?;
    for m in &rows {
        let ty = format!(
            "{}^{}",
            m.message_type.as_deref().unwrap_or("?"),
            m.trigger_event.as_deref().unwrap_or("?")
        );
        writeln!(
            out,
            "{:<26}  {:<24}  {:<12}  {:<9}  {:<22}  {:<8}  {}",
            m.id,
            m.received_at,
            m.channel,
            ty,
            m.control_id.as_deref().unwrap_or(""),
            m.status,
            m.peer_addr.as_deref().unwrap_or("")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(store: &AnyStore, id: &str, raw: bool) -> Result<ExitCode> {
    let id: MessageId = id.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(m) = store.get(id).await? else {
        bail!("no message {id}")
    };
    let mut out = std::io::stdout().lock();
    if raw {
        out.write_all(m.raw().unwrap_or_default())?;
        return Ok(ExitCode::SUCCESS);
    }
    let s = &m.summary;
    writeln!(out, "id:           {}", s.id)?;
    writeln!(out, "received:     {}", s.received_at)?;
    writeln!(out, "channel:      {}", s.channel)?;
    writeln!(
        out,
        "peer:         {}",
        s.peer_addr.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "tls subject:  {}",
        s.tls_subject.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "type:         {}^{}",
        s.message_type.as_deref().unwrap_or("?"),
        s.trigger_event.as_deref().unwrap_or("?")
    )?;
    writeln!(
        out,
        "control id:   {}",
        s.control_id.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "sender:       {} / {}",
        s.sending_application.as_deref().unwrap_or("-"),
        s.sending_facility.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "status:       {}", s.status)?;
    if let Some(e) = &s.error {
        writeln!(out, "error:        {e}")?;
    }
    for (k, v) in &m.metadata {
        writeln!(out, "meta {k}: {v}")?;
    }
    for c in &m.content {
        writeln!(
            out,
            "\n--- destination {} {} ({} bytes, {})",
            c.destination,
            c.stage,
            c.bytes.len(),
            c.created_at
        )?;
        let text = String::from_utf8_lossy(&c.bytes)
            .replace("\r\n", "\n")
            .replace('\r', "\n");
        writeln!(out, "{}", text.trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}
