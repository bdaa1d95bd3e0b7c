//! `plexus` — the Plexus integration engine's command-line binary.
//!
//! Today it offers the HL7 v2 tools (`plexus hl7 parse|get|validate|ack`); the engine's
//! `serve` command arrives with the store and MLLP transport.

#![forbid(unsafe_code)]

mod hl7;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Plexus healthcare integration engine.
#[derive(Debug, Parser)]
#[command(name = "plexus", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with HL7 v2 files: parse, read values, validate, acknowledge.
    #[command(subcommand)]
    Hl7(hl7::Hl7Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hl7(cmd) => hl7::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("plexus: {e:#}");
            ExitCode::from(2)
        }
    }
}
