//! `plexus channel ...` (operations on a running server, through its admin API) and
//! `plexus test` (a channel run offline on fixture messages).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::config::Config;

/// `plexus channel` subcommands.
#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// List deployed channels with their state and queue depths.
    List,
    /// Show one channel.
    Status {
        /// Channel name.
        name: String,
    },
    /// (Re)read the channel's file from the channels folder and deploy it.
    Deploy {
        /// Channel name.
        name: String,
    },
    /// Stop and remove a channel (its messages stay stored).
    Undeploy {
        /// Channel name.
        name: String,
    },
    /// Start a channel.
    Start {
        /// Channel name.
        name: String,
    },
    /// Stop a channel (source and deliveries).
    Stop {
        /// Channel name.
        name: String,
    },
    /// Pause a channel's source; queued messages are still delivered.
    Pause {
        /// Channel name.
        name: String,
    },
    /// Reprocess a stored message (optionally only to some destinations).
    Reprocess {
        /// Message id.
        id: String,
        /// Destination name or number (repeatable).
        #[arg(long = "destination")]
        destinations: Vec<String>,
    },
}

/// Where the admin API is.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Admin API base URL (default: from plexus.toml's `[admin]` bind).
    #[arg(long, global = true)]
    admin: Option<String>,
    /// API token for the admin API (default: the PLEXUS_TOKEN environment variable).
    #[arg(long, global = true)]
    token: Option<String>,
}

/// `plexus test` arguments.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The channel file.
    channel: PathBuf,
    /// Folder of fixture messages; `NAME.expected/DESTINATION.*` hold the expected outputs.
    #[arg(long)]
    fixtures: PathBuf,
    /// Write the actual outputs as the expected files.
    #[arg(long)]
    update: bool,
}

/// Runs `plexus test`: exit 0 when every fixture matches, 1 on any difference.
pub async fn test(args: TestArgs) -> Result<ExitCode> {
    let config = engine::ChannelConfig::load(&args.channel)?;
    let pipeline = engine::Pipeline::compile(&config)?;
    let results = engine::testing::run_fixtures(&pipeline, &args.fixtures, args.update)
        .await
        .with_context(|| format!("reading fixtures in {}", args.fixtures.display()))?;
    if results.is_empty() {
        bail!("{}: no fixture messages", args.fixtures.display());
    }
    let mut failed = 0;
    let mut report = String::new();
    for r in &results {
        if r.passed() {
            let _ = writeln!(report, "ok    {}", r.input.display());
        } else {
            failed += 1;
            let _ = writeln!(report, "FAIL  {}", r.input.display());
            for d in &r.differences {
                for line in d.lines() {
                    let _ = writeln!(report, "      {line}");
                }
            }
        }
    }
    let _ = writeln!(
        report,
        "{} fixture(s), {} passed, {failed} failed{}",
        results.len(),
        results.len() - failed,
        if args.update {
            " (expected files updated)"
        } else {
            ""
        }
    );
    // a closed pipe (`| head`) is not an error of the test run
    let _ = std::io::stdout().write_all(report.as_bytes());
    Ok(if failed == 0 || args.update {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs a `plexus channel` command against the admin API.
pub async fn run(
    config: Option<PathBuf>,
    admin: AdminArgs,
    cmd: ChannelCommand,
) -> Result<ExitCode> {
    let base = if let Some(a) = admin.admin {
        a.trim_end_matches('/').to_owned()
    } else {
        let (c, _) = Config::resolve(config.as_deref())?;
        format!("http://{}", c.admin.bind)
    };
    let (method, path, body) = match &cmd {
        ChannelCommand::List => ("GET", "/api/channels".to_owned(), None),
        ChannelCommand::Status { name } => ("GET", format!("/api/channels/{name}"), None),
        ChannelCommand::Deploy { name } => ("POST", format!("/api/channels/{name}/deploy"), None),
        ChannelCommand::Undeploy { name } => {
            ("POST", format!("/api/channels/{name}/undeploy"), None)
        }
        ChannelCommand::Start { name } => ("POST", format!("/api/channels/{name}/start"), None),
        ChannelCommand::Stop { name } => ("POST", format!("/api/channels/{name}/stop"), None),
        ChannelCommand::Pause { name } => ("POST", format!("/api/channels/{name}/pause"), None),
        ChannelCommand::Reprocess { id, destinations } => (
            "POST",
            format!("/api/messages/{id}/reprocess"),
            Some(if destinations.is_empty() {
                serde_json::json!({})
            } else {
                serde_json::json!({ "destinations": destinations })
            }),
        ),
    };
    let token = admin
        .token
        .clone()
        .or_else(|| std::env::var("PLEXUS_TOKEN").ok());
    let (status, value) = call(method, &format!("{base}{path}"), body, token.as_deref()).await?;
    if !status.is_success() {
        let msg = value
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| value.to_string(), str::to_owned);
        eprintln!("plexus: {msg}");
        return Ok(ExitCode::FAILURE);
    }
    if let ChannelCommand::List = cmd {
        println!(
            "{:<24} {:<8} {:<22} DESTINATIONS (queued)",
            "CHANNEL", "STATE", "SOURCE"
        );
        for c in value.as_array().into_iter().flatten() {
            let dests: Vec<String> = c["destinations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    let q = &d["queue"];
                    let waiting =
                        q["ready"].as_u64().unwrap_or(0) + q["leased"].as_u64().unwrap_or(0);
                    let dead = q["dead"].as_u64().unwrap_or(0);
                    format!(
                        "{}({waiting}{}{})",
                        d["name"].as_str().unwrap_or("?"),
                        if dead > 0 {
                            format!(", {dead} dead")
                        } else {
                            String::new()
                        },
                        if d["paused"].as_bool() == Some(true) {
                            ", paused"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            println!(
                "{:<24} {:<8} {:<22} {}",
                c["name"].as_str().unwrap_or("?"),
                c["state"].as_str().unwrap_or("?"),
                c["source"].as_str().unwrap_or("-"),
                dests.join(" ")
            );
        }
    } else {
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// One JSON request to the admin API.
async fn call(
    method: &str,
    url: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Result<(hyper::StatusCode, Value)> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .with_context(|| format!("bad admin URL {url}"))?;
    let resp = client.request(req).await.with_context(|| {
        format!("cannot reach the admin API at {url}; is plexus serve running?")
    })?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .context("reading the admin API's answer")?
        .to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok((status, value))
}
