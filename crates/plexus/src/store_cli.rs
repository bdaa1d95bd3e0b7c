//! `plexus store rotate-key|keys`: encryption at rest, from the command line.
//!
//! A key rotation: make the new key active in `[store.encryption]` (`key_id`, `key_file` or
//! `key_env`) and move the old one to `[[store.encryption.retired]]`; restart (new data is
//! then encrypted with the new key); run `plexus store rotate-key` to re-encrypt what the old
//! key encrypted. It works in batches (one transaction each) next to a running server, can be
//! interrupted and run again, and prints its progress and, at the end, how many values each
//! key id holds. The old key must stay configured: the blind indexes are keyed from the key
//! that was active when encryption was first turned on (see docs/security.md).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use store::crypto::{self, SealedTable};
use store::{AnyStore, Store as _};

use crate::config::Config;

/// `plexus store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Re-encrypt every value written under a retired key with the active key.
    RotateKey(RotateKeyArgs),
    /// Show how many encrypted values each key id holds, per table.
    Keys,
}

/// Options of `plexus store rotate-key`.
#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    /// Rows looked at per transaction.
    #[arg(long, default_value_t = 500)]
    pub batch_size: u32,
}

/// Runs a `plexus store` command against the configured store.
pub async fn run(config: Option<PathBuf>, cmd: StoreCommand) -> Result<ExitCode> {
    let (config, _) = Config::resolve(config.as_deref())?;
    if config.store.encryption().is_none() {
        bail!("encryption at rest is not configured: add [store.encryption] to the configuration");
    }
    let store = AnyStore::open(&config.store)
        .await
        .context("opening the store")?;
    let result = match cmd {
        StoreCommand::RotateKey(args) => rotate(&store, &args).await,
        StoreCommand::Keys => print_usage(&store).await,
    };
    store.close().await?;
    result.map(|()| ExitCode::SUCCESS)
}

async fn rotate(store: &AnyStore, args: &RotateKeyArgs) -> Result<()> {
    let active = store.active_key_id().unwrap_or_default().to_owned();
    eprintln!(
        "re-encrypting with key {active:?}, {} rows per batch",
        args.batch_size
    );
    let started = Instant::now();
    let mut last_table = None;
    let mut last_print = Instant::now();
    let report = crypto::rotate(store, args.batch_size, |r| {
        let table = r.table;
        let done = r
            .rewritten
            .get(&table.unwrap_or(SealedTable::MessageContent));
        if table != last_table || last_print.elapsed().as_secs() >= 2 {
            if let Some(t) = table {
                eprintln!(
                    "  {}: {} re-encrypted ({} batches so far)",
                    t.name(),
                    done.copied().unwrap_or(0),
                    r.batches
                );
            }
            last_table = table;
            last_print = Instant::now();
        }
    })
    .await
    .context("re-encrypting")?;
    println!(
        "re-encrypted {} values in {} batches, {:.1} s:",
        report.total(),
        report.batches,
        started.elapsed().as_secs_f64()
    );
    for table in SealedTable::ALL {
        println!(
            "  {:<17} {}",
            table.name(),
            report.rewritten.get(&table).copied().unwrap_or(0)
        );
    }
    print_usage(store).await
}

async fn print_usage(store: &AnyStore) -> Result<()> {
    let usage: BTreeMap<SealedTable, BTreeMap<String, u64>> = crypto::key_usage(store)
        .await
        .context("counting values per key")?;
    println!("encrypted values per key id:");
    for (table, keys) in &usage {
        let list = if keys.is_empty() {
            "none".to_owned()
        } else {
            keys.iter()
                .map(|(k, n)| {
                    let k = if k.is_empty() { "(not encrypted)" } else { k };
                    format!("{k}: {n}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("  {:<17} {list}", table.name());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: StoreCommand,
    }

    #[test]
    fn parses_rotate_key() {
        let cli = Cli::try_parse_from(["plexus", "rotate-key", "--batch-size", "50"]).unwrap();
        assert!(matches!(
            cli.cmd,
            StoreCommand::RotateKey(RotateKeyArgs { batch_size: 50 })
        ));
        let cli = Cli::try_parse_from(["plexus", "keys"]).unwrap();
        assert!(matches!(cli.cmd, StoreCommand::Keys));
    }
}
