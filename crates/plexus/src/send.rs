//! `plexus send`: send every message of some files over MLLP and check each acknowledgment.

use std::fs::File;
use std::io::{BufReader, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use hl7v2::ack::AckCode;
use hl7v2::{Message, MessageReader};
use indicatif::{ProgressBar, ProgressStyle};
use mllp::{ClientConfig, MllpClient, TlsClientConfig};

/// Options of `plexus send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Host to send to.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to send to.
    #[arg(long, default_value_t = 2575)]
    pub port: u16,
    /// Use TLS (with --ca, the CA that signed the server's certificate).
    #[arg(long)]
    pub tls: bool,
    /// CA certificate (PEM) to trust for the server's certificate; implies --tls.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; implies --tls.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Name to check the server certificate against, when it differs from --host.
    #[arg(long)]
    pub server_name: Option<String>,
    /// Seconds to wait for each acknowledgment.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Files of one or many messages (batches too).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    accepted: u64,
    /// Sent with MSH-15 `NE`: the receiver is asked not to acknowledge them.
    unacknowledged: u64,
    errors: u64,
    rejected: u64,
    unreadable: u64,
}

/// Sends the files; exit status 1 if any message was not accepted (AA/CA).
pub async fn run(args: SendArgs) -> Result<ExitCode> {
    let mut config = ClientConfig::new(args.host.clone(), args.port);
    config.ack_timeout = Duration::from_secs(args.timeout);
    if args.tls || args.ca.is_some() || args.cert.is_some() {
        let ca = args.ca.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "--tls needs --ca FILE: the CA certificate that signed the server's certificate"
            )
        })?;
        let mut tls = TlsClientConfig::new(ca);
        tls.cert.clone_from(&args.cert);
        tls.key.clone_from(&args.key);
        tls.server_name.clone_from(&args.server_name);
        config.tls = Some(tls);
    }
    let mut client = MllpClient::new(config).context("client configuration")?;
    let mut tally = Tally::default();
    for file in &args.files {
        send_file(&mut client, file, &mut tally).await?;
    }
    client.close().await;
    let not_asked = if tally.unacknowledged > 0 {
        format!(
            " ({} sent with MSH-15 NE, which asks for no acknowledgment)",
            tally.unacknowledged
        )
    } else {
        String::new()
    };
    println!(
        "sent {} messages: {} accepted, {} with errors (AE/CE), {} rejected (AR/CR), {} without a valid acknowledgment{not_asked}",
        tally.sent, tally.accepted, tally.errors, tally.rejected, tally.unreadable
    );
    Ok(if tally.accepted + tally.unacknowledged == tally.sent {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn send_file(client: &mut MllpClient, file: &PathBuf, tally: &mut Tally) -> Result<()> {
    let name = file.display().to_string();
    let handle = File::open(file).with_context(|| format!("cannot open {name}"))?;
    let size = handle.metadata().map_or(0, |m| m.len());
    let bar = if std::io::stderr().is_terminal() && size > 1 << 20 {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(name.clone());
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut reader = MessageReader::new(BufReader::with_capacity(1 << 18, handle));
    while let Some(next) = reader.next_message() {
        let raw = match next {
            Ok(raw) => raw,
            Err(e) => {
                bar.suspend(|| eprintln!("{name}: {e}; not sent"));
                tally.sent += 1;
                tally.unreadable += 1;
                continue;
            }
        };
        let parsed = Message::parse(raw.bytes).ok();
        let control = parsed
            .as_ref()
            .and_then(|m| m.control_id().map(std::borrow::Cow::into_owned))
            .unwrap_or_default();
        let never_acked = parsed.as_ref().is_some_and(|m| {
            matches!(
                hl7v2::ack::AckMode::of(m),
                hl7v2::ack::AckMode::Enhanced {
                    accept: hl7v2::ack::AckCondition::Never,
                    ..
                }
            )
        });
        tally.sent += 1;
        let where_ = format!(
            "{name}:{}: message {} (control id {control:?})",
            raw.line, raw.number
        );
        if never_acked {
            match client.send_no_reply(raw.bytes).await {
                Ok(()) => {
                    tally.unacknowledged += 1;
                    // a receiver may answer anyway: a new connection for the next message keeps
                    // that late ACK from being taken for the next message's
                    client.close().await;
                }
                Err(e) => {
                    tally.unreadable += 1;
                    bar.suspend(|| eprintln!("{where_}: {e}"));
                }
            }
            bar.set_position(raw.offset + raw.bytes.len() as u64);
            continue;
        }
        match client.send(raw.bytes).await {
            Ok(ack) => match read_ack(&ack) {
                Some((code, _)) if code.is_accept() => tally.accepted += 1,
                Some((code, text)) => {
                    if matches!(code, AckCode::ApplicationReject | AckCode::CommitReject) {
                        tally.rejected += 1;
                    } else {
                        tally.errors += 1;
                    }
                    bar.suspend(|| {
                        eprintln!(
                            "{where_}: {}{}",
                            code.code(),
                            text.map(|t| format!(": {t}")).unwrap_or_default()
                        );
                    });
                }
                None => {
                    tally.unreadable += 1;
                    bar.suspend(|| eprintln!("{where_}: the reply is not an HL7 acknowledgment"));
                }
            },
            Err(e) => {
                tally.unreadable += 1;
                bar.suspend(|| eprintln!("{where_}: {e}"));
            }
        }
        bar.set_position(raw.offset + raw.bytes.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// MSA-1 and the most telling text of an acknowledgment (ERR-8, else MSA-3).
fn read_ack(bytes: &[u8]) -> Option<(AckCode, Option<String>)> {
    let msg = Message::parse(bytes).ok()?;
    let code = AckCode::from_code(&msg.value("MSA-1").ok()??)?;
    Some((code, hl7v2::ack::ack_text(&msg)))
}
