//! `plexus audit verify|search|show`: check and read the audit trail of the configured store.
//!
//! `verify` walks the whole hash chain (flat memory) and exits 0 when it is intact, 1 when a
//! record was changed, removed or re-ordered (naming the first such seq), 2 on other errors.
//! Its summary line ends with the head (`seq:hash`): kept somewhere else, it can be checked
//! later with `--anchor`, which also catches records cut off the end, or a chain recomputed
//! after a change.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use store::audit::{self, AuditEntry, AuditQuery};
use store::{AnyStore, Audit as _, Store as _, Timestamp};

use crate::config::Config;

/// `plexus audit` subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run
pub enum AuditCommand {
    /// Check the hash chain of the whole audit trail.
    Verify(VerifyArgs),
    /// List audit records, newest first.
    Search(SearchArgs),
    /// Print one record's full FHIR AuditEvent.
    Show {
        /// The record's seq (from `search`).
        seq: i64,
    },
}

/// Options of `plexus audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A head printed by an earlier verify, `SEQ:HASH`: the chain must still hold it.
    #[arg(long, value_name = "SEQ:HASH")]
    pub anchor: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Filters of `plexus audit search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The patient: an id or `Patient/id`.
    #[arg(long)]
    pub patient: Option<String>,
    /// Who: a user name or client id.
    #[arg(long)]
    pub agent: Option<String>,
    /// Recorded at or after (RFC 3339, e.g. 2026-11-25T10:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Recorded before (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Outcome: 0 (success), 4, 8 or 12 (failures).
    #[arg(long)]
    pub outcome: Option<String>,
    /// Action: C, R, U, D or E.
    #[arg(long)]
    pub action: Option<String>,
    /// Event type code: rest, 110114 (login), 110110 (patient record), ...
    #[arg(long = "type")]
    pub type_code: Option<String>,
    /// Subtype code: read, search-type, 110122 (login), message-view, ...
    #[arg(long)]
    pub subtype: Option<String>,
    /// Resource type of the entity (Observation matches Observation/5 and Observation searches).
    #[arg(long)]
    pub entity_type: Option<String>,
    /// Only records older than this seq (paging: pass the last seq printed).
    #[arg(long)]
    pub before: Option<i64>,
    /// Most records to print (at most 1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Print a JSON array of records, each with its full AuditEvent.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `plexus audit` command against the configured store.
pub async fn run(config: Option<PathBuf>, cmd: AuditCommand) -> Result<ExitCode> {
    let (config, _) = Config::resolve(config.as_deref())?;
    let store = AnyStore::open(&config.store)
        .await
        .context("opening the store")?;
    let result = match cmd {
        AuditCommand::Verify(args) => verify(&store, &args).await,
        AuditCommand::Search(args) => search(&store, args).await,
        AuditCommand::Show { seq } => show(&store, seq).await,
    };
    store.close().await?;
    result
}

/// Parses `SEQ:HASH`.
fn parse_anchor(text: &str) -> Result<audit::AuditAnchor> {
    let (seq, hash) = text
        .split_once(':')
        .context("--anchor: expected SEQ:HASH (as printed by verify)")?;
    let seq: i64 = seq
        .parse()
        .with_context(|| format!("--anchor: {seq:?} is not a seq"))?;
    let hash = audit::parse_hex(hash).context("--anchor: the hash must be 64 hex digits")?;
    Ok((seq, hash))
}

async fn verify(store: &AnyStore, args: &VerifyArgs) -> Result<ExitCode> {
    let anchor = args.anchor.as_deref().map(parse_anchor).transpose()?;
    let v = store.audit_verify(anchor).await?;
    let last = v.head.map_or(0, |(seq, _)| seq);
    let head = v
        .head
        .map(|(seq, hash)| format!("{seq}:{}", audit::hex(&hash)));
    let mut out = std::io::stdout().lock();
    if args.json {
        let report = serde_json::json!({
            "intact": v.is_intact(),
            "records": v.records,
            "last_seq": last,
            "head": head,
            "breaks": v.breaks,
            "missing": v.missing,
            "first_break": v.first_break.as_ref().map(|b| serde_json::json!({
                "seq": b.seq,
                "reason": b.kind.to_string(),
            })),
        });
        writeln!(out, "{report}")?;
    } else if let Some(b) = &v.first_break {
        writeln!(
            out,
            "audit chain BROKEN at seq {}: {}; {} records read, {} breaks, {} missing",
            b.seq, b.kind, v.records, v.breaks, v.missing
        )?;
    } else {
        writeln!(
            out,
            "audit chain intact: {} records, last seq {last}",
            v.records
        )?;
        if let Some(head) = &head {
            writeln!(out, "head {head} (keep it; check later with --anchor)")?;
        }
    }
    Ok(if v.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn time(arg: Option<&String>, what: &str) -> Result<Option<Timestamp>> {
    arg.map(|t| {
        t.parse::<Timestamp>()
            .map_err(|e| anyhow::anyhow!("--{what} {t:?}: {e}"))
    })
    .transpose()
}

/// One record as JSON (the CLI and the admin API).
pub(crate) fn entry_json(e: &AuditEntry) -> serde_json::Value {
    let r = &e.record;
    serde_json::json!({
        "seq": e.seq,
        "recorded": r.recorded.to_string(),
        "action": r.action,
        "outcome": r.outcome,
        "type": r.type_code,
        "subtype": r.subtype,
        "agent": r.agent,
        "client_id": r.client_id,
        "source_addr": r.source_addr,
        "patient": r.patient,
        "entity": r.entity,
        "detail": r.detail,
        "hash": audit::hex(&e.hash),
        "event": r.event,
    })
}

async fn search(store: &AnyStore, args: SearchArgs) -> Result<ExitCode> {
    if args.limit == 0 || args.limit > audit::MAX_AUDIT_LIMIT {
        bail!("--limit must be 1 to {}", audit::MAX_AUDIT_LIMIT);
    }
    let query = AuditQuery {
        since: time(args.since.as_ref(), "since")?,
        until: time(args.until.as_ref(), "until")?,
        agent: args.agent,
        patient: args.patient.map(|p| {
            if p.starts_with("Patient/") {
                p
            } else {
                format!("Patient/{p}")
            }
        }),
        action: args.action.map(|a| a.to_ascii_uppercase()),
        outcome: args.outcome,
        subtype: args.subtype,
        type_code: args.type_code,
        entity_type: args.entity_type,
        before_seq: args.before,
        after_seq: None,
        limit: Some(args.limit),
    };
    let rows = store.audit_search(&query).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let all: Vec<_> = rows.iter().map(entry_json).collect();
        writeln!(out, "{}", serde_json::Value::Array(all))?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:>8}  {:<27}  {:<1}  {:>2}  {:<22}  {:<16}  {:<15}  {:<16}  ENTITY",
        "SEQ", "RECORDED", "A", "O", "TYPE/SUBTYPE", "AGENT", "FROM", "PATIENT"
    )?;
    for e in &rows {
        let r = &e.record;
        let kind = match &r.subtype {
            Some(s) => format!("{}/{s}", r.type_code),
            None => r.type_code.clone(),
        };
        let mut line = format!(
            "{:>8}  {:<27}  {:<1}  {:>2}  {:<22}  {:<16}  {:<15}  {:<16}  {}",
            e.seq,
            r.recorded.to_string(),
            r.action,
            r.outcome,
            kind,
            r.agent,
            r.source_addr.as_deref().unwrap_or("-"),
            r.patient.as_deref().unwrap_or("-"),
            r.entity.as_deref().unwrap_or("-"),
        );
        if let Some(d) = &r.detail {
            let _ = write!(line, "  ({d})");
        }
        writeln!(out, "{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(store: &AnyStore, seq: i64) -> Result<ExitCode> {
    let Some(e) = store.audit_get(seq).await? else {
        bail!("no audit record with seq {seq}")
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(&entry_json(&e))?)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_anchor;

    #[test]
    fn anchors_parse() {
        let hash = "ab".repeat(32);
        let (seq, h) = parse_anchor(&format!("42:{hash}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((seq, h[0]), (42, 0xab));
        for bad in ["42", "x:ab", &format!("42:{}", "ab".repeat(31))] {
            assert!(parse_anchor(bad).is_err(), "{bad}");
        }
    }
}
