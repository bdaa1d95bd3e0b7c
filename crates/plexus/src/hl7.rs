//! `plexus hl7 …`: parse, read, validate and acknowledge HL7 v2 files of any number of
//! messages, streamed one message at a time.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use hl7v2::ack::{AckCode, AckError, AckMode, AckOptions, Outcome, build_ack, timestamp};
use hl7v2::structure::{Node, arrange, structure_for};
use hl7v2::validate::{Severity, validate};
use hl7v2::{Message, MessageReader, ParseError, Path as Hl7Path, Terminator};

/// HL7 v2 tools.
#[derive(Debug, Subcommand)]
pub enum Hl7Command {
    /// Show each message as a tree of segments (in their groups), fields and components, or as JSON.
    Parse {
        /// File of one or many messages (batches too); `-` reads standard input.
        file: PathBuf,
        /// One JSON document per message, one per line (see docs/hl7-json.md).
        #[arg(long)]
        json: bool,
    },
    /// Print the value at a path (`PID-5-1`, `PID-3[2]-1`, `OBX[3]-5`) for each message, one line each.
    Get {
        /// File of one or many messages; `-` reads standard input.
        file: PathBuf,
        /// The path.
        path: String,
        /// Print the raw (still escaped) value instead of the decoded text.
        #[arg(long)]
        raw: bool,
    },
    /// Validate each message; exit status 1 if any has an error.
    Validate {
        /// File of one or many messages; `-` reads standard input.
        file: PathBuf,
        /// Also fail on warnings.
        #[arg(long)]
        strict: bool,
    },
    /// Print the acknowledgment of each message.
    Ack {
        /// File of one or many messages; `-` reads standard input.
        file: PathBuf,
        /// Acknowledgment code; by default AA/CA for a valid message, AE/CE with ERR segments for
        /// one with errors, AR/CR for one that cannot be parsed (CA/CE/CR when MSH-15/16 ask for
        /// enhanced mode).
        #[arg(long, value_enum)]
        code: Option<CodeArg>,
        /// Text for MSA-3.
        #[arg(long)]
        text: Option<String>,
        /// Segment terminator of the output.
        #[arg(long, value_enum, default_value = "cr")]
        terminator: TerminatorArg,
    },
}

/// `--code` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[clap(rename_all = "UPPER")]
pub enum CodeArg {
    /// Application accept.
    AA,
    /// Application error.
    AE,
    /// Application reject.
    AR,
    /// Commit accept.
    CA,
    /// Commit error.
    CE,
    /// Commit reject.
    CR,
}

/// `--terminator` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TerminatorArg {
    /// `\r`, the HL7 standard.
    Cr,
    /// `\n`, for reading in a terminal.
    Lf,
    /// `\r\n`.
    Crlf,
}

/// Runs one `plexus hl7` command.
pub fn run(cmd: Hl7Command) -> Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match cmd {
        Hl7Command::Parse { file, json } => {
            each_message(&file, |ctx, msg| parse_one(&mut out, ctx, msg, json))
        }
        Hl7Command::Get { file, path, raw } => {
            let path = Hl7Path::parse(&path).map_err(|e| anyhow::anyhow!("{}", e.kind))?;
            each_message(&file, |_, msg| {
                let msg = msg?;
                match msg.get_path(&path) {
                    Some(e) if raw => out.write_all(e.raw())?,
                    Some(e) => out.write_all(e.text()?.as_bytes())?,
                    None => {}
                }
                out.write_all(b"\n")?;
                Ok(true)
            })
        }
        Hl7Command::Validate { file, strict } => each_message(&file, |ctx, msg| {
            let msg = msg?;
            let mut ok = true;
            for issue in validate(&msg) {
                ok &= issue.severity < Severity::Error
                    && !(strict && issue.severity == Severity::Warning);
                let line = ctx.line_of(issue.location.offset);
                writeln!(out, "{}:{line}: message {}: {issue}", ctx.file, ctx.number)?;
            }
            Ok(ok)
        }),
        Hl7Command::Ack {
            file,
            code,
            text,
            terminator,
        } => each_message(&file, |ctx, msg| {
            ack_one(&mut out, ctx, msg, code, text.as_deref(), terminator)
        }),
    };
    let all_ok = match result {
        Err(e) if is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
        r => r?,
    };
    match out.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        r => r?,
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// Where a message came from, to name it in output and errors.
pub struct MessageContext<'b> {
    file: String,
    number: usize,
    line: u64,
    offset: u64,
    bytes: &'b [u8],
}

impl MessageContext<'_> {
    /// The 1-based line in the file of a byte offset inside this message.
    fn line_of(&self, offset: usize) -> u64 {
        let rel = usize::try_from((offset as u64).saturating_sub(self.offset))
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        let before = &self.bytes[..rel];
        let mut lines = 0;
        let mut prev = 0u8;
        for &b in before {
            if b == b'\r' || (b == b'\n' && prev != b'\r') {
                lines += 1;
            }
            prev = b;
        }
        self.line + lines
    }

    fn describe(&self, e: &ParseError) -> String {
        format!(
            "{}:{}: message {}: {e}",
            self.file,
            self.line_of(e.location.offset),
            self.number
        )
    }
}

/// Calls `f` for every message of the file; `f` returns whether the message was fine.
/// `f` sees parse errors too (to acknowledge them); a [`ParseError`] it returns is reported on
/// stderr with file, line and location, makes the result false, and reading goes on.
fn each_message(
    file: &Path,
    mut f: impl FnMut(&MessageContext<'_>, Result<Message<'_>, ParseError>) -> Result<bool>,
) -> Result<bool> {
    let name = file.display().to_string();
    let input: Box<dyn BufRead> = if name == "-" {
        Box::new(BufReader::with_capacity(1 << 18, io::stdin().lock()))
    } else {
        Box::new(BufReader::with_capacity(
            1 << 18,
            File::open(file).with_context(|| format!("cannot open {name}"))?,
        ))
    };
    let mut reader = MessageReader::new(input);
    let mut all_ok = true;
    let mut count = 0;
    while let Some(next) = reader.next_message() {
        let raw = match next {
            Ok(raw) => raw,
            Err(e) => {
                eprintln!("{name}: {e}");
                all_ok = false;
                continue;
            }
        };
        count += 1;
        let ctx = MessageContext {
            file: name.clone(),
            number: raw.number,
            line: raw.line,
            offset: raw.offset,
            bytes: raw.bytes,
        };
        let parsed =
            Message::parse_at(raw.bytes, usize::try_from(raw.offset).unwrap_or(usize::MAX));
        match f(&ctx, parsed) {
            Ok(ok) => all_ok &= ok,
            Err(e) => match e.downcast_ref::<ParseError>() {
                // a message that does not parse, or a value that does not decode: report, go on
                Some(pe) => {
                    eprintln!("{}", ctx.describe(pe));
                    all_ok = false;
                }
                None => return Err(e),
            },
        }
    }
    if count == 0 && all_ok {
        anyhow::bail!("{name}: no HL7 message found");
    }
    Ok(all_ok)
}

fn parse_one(
    out: &mut impl Write,
    ctx: &MessageContext<'_>,
    msg: Result<Message<'_>, ParseError>,
    json: bool,
) -> Result<bool> {
    let msg = msg?;
    if json {
        serde_json::to_writer(&mut *out, &hl7v2::json::to_json(&msg)?)?;
        out.write_all(b"\n")?;
        return Ok(true);
    }
    writeln!(
        out,
        "message {} ({}^{}, control id {}, version {}) at {}:{}",
        ctx.number,
        msg.message_type().unwrap_or_default(),
        msg.trigger_event().unwrap_or_default(),
        msg.control_id().unwrap_or_default(),
        msg.version().unwrap_or_default(),
        ctx.file,
        ctx.line
    )?;
    match structure_for(&msg) {
        Some((_, def)) => {
            let tree = arrange(&msg, def);
            writeln!(out, "{}", tree.root.name)?;
            print_nodes(out, &msg, &tree.root.children, 1)?;
        }
        None => {
            for seg in msg.segments() {
                print_segment(out, &msg, seg.index(), 1)?;
            }
        }
    }
    Ok(true)
}

fn print_nodes(
    out: &mut impl Write,
    msg: &Message<'_>,
    nodes: &[Node],
    depth: usize,
) -> Result<()> {
    for n in nodes {
        match n {
            Node::Segment(i) => print_segment(out, msg, *i, depth)?,
            Node::Group(g) => {
                writeln!(out, "{}[{}]", "  ".repeat(depth), g.name)?;
                print_nodes(out, msg, &g.children, depth + 1)?;
            }
        }
    }
    Ok(())
}

fn print_segment(
    out: &mut impl Write,
    msg: &Message<'_>,
    index: usize,
    depth: usize,
) -> Result<()> {
    let Some(seg) = msg.segment_at(index) else {
        return Ok(());
    };
    let pad = "  ".repeat(depth);
    writeln!(out, "{pad}{}", seg.id())?;
    for (n, field) in seg.fields().filter(|(_, f)| !f.is_empty()) {
        let reps: Vec<_> = field.children().collect();
        for (r, rep) in reps.iter().enumerate() {
            let name = if reps.len() > 1 {
                format!("{}-{n}[{}]", seg.id(), r + 1)
            } else {
                format!("{}-{n}", seg.id())
            };
            writeln!(
                out,
                "{pad}  {name:<12} {}",
                String::from_utf8_lossy(rep.raw())
            )?;
            if !rep.is_composite() {
                continue;
            }
            for (c, comp) in rep.children().enumerate().filter(|(_, c)| !c.is_empty()) {
                writeln!(
                    out,
                    "{pad}    {:<12} {}",
                    format!("{name}-{}", c + 1),
                    comp.text()?
                )?;
                if comp.is_composite() {
                    for (s, sub) in comp.children().enumerate().filter(|(_, s)| !s.is_empty()) {
                        writeln!(
                            out,
                            "{pad}      {:<12} {}",
                            format!("{name}-{}-{}", c + 1, s + 1),
                            sub.text()?
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn ack_one(
    out: &mut impl Write,
    ctx: &MessageContext<'_>,
    msg: Result<Message<'_>, ParseError>,
    code: Option<CodeArg>,
    text: Option<&str>,
    terminator: TerminatorArg,
) -> Result<bool> {
    let now = timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0)),
    );
    let control_id = format!("ACK{}", ctx.number);
    let (msg, outcome, errors) = match msg {
        Ok(m) => {
            let issues = validate(&m);
            let errors: Vec<AckError> = issues
                .iter()
                .filter(|i| i.severity >= Severity::Error)
                .map(AckError::from)
                .collect();
            let outcome = if errors.is_empty() {
                Outcome::Accept
            } else {
                Outcome::Error
            };
            (m, outcome, errors)
        }
        Err(e) => {
            let Some(m) = hl7v2::ack::salvage_header(ctx.bytes) else {
                eprintln!("{}: cannot acknowledge: no readable MSH", ctx.describe(&e));
                return Ok(false);
            };
            (m, Outcome::Reject, vec![AckError::from(&e)])
        }
    };
    let mode = AckMode::of(&msg);
    let code = code.map_or_else(
        || mode.code(outcome),
        |c| AckCode::from_code(&format!("{c:?}")).unwrap_or(AckCode::ApplicationReject),
    );
    let opts = AckOptions {
        code,
        text,
        errors,
        control_id: &control_id,
        timestamp: &now,
    };
    let mut ack = build_ack(&msg, &opts)?;
    ack.set_terminator(
        match terminator {
            TerminatorArg::Cr => Terminator::Cr,
            TerminatorArg::Lf => Terminator::Lf,
            TerminatorArg::Crlf => Terminator::CrLf,
        },
        true,
    );
    out.write_all(&ack.encode())?;
    Ok(code.is_accept())
}
