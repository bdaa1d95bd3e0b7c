//! `plexus convert …`: HL7 v2 → FHIR, C-CDA → FHIR and FHIR → CCD on files, with the
//! libraries `convert` and `ccda`.
//!
//! Output goes to stdout (or `--out`); what the conversion could not map goes to stderr (or
//! `--report`), one line per item, naming where it is and never its value. A file or message
//! that cannot be converted is named with its position (for HL7 v2: file, line, message
//! number, segment and field) and makes the exit status 1.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use hl7v2::MessageReader;
use serde_json::Value;

/// Conversions between HL7 v2, C-CDA and FHIR R4.
#[derive(Debug, Subcommand)]
pub enum ConvertCommand {
    /// Each HL7 v2 message of the files (batches too; `-` reads stdin) to a FHIR transaction
    /// Bundle: one JSON document per message, one per line (pretty-printed with `--pretty`).
    #[command(name = "hl7v2-to-fhir")]
    Hl7v2ToFhir {
        /// Files of one or many messages.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The offset (`+02:00`) of times that carry none (else MSH-7's offset).
        #[arg(long)]
        timezone: Option<String>,
        /// Identifier system of an assigning authority: `HOSP=urn:oid:1.2.3` (repeatable).
        #[arg(long = "identifier-system", value_name = "NAMESPACE=URI")]
        identifier_systems: Vec<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A C-CDA document to a FHIR Bundle (a `document`, or a `transaction` to load a server).
    #[command(name = "ccda-to-fhir")]
    CcdaToFhir {
        /// The C-CDA XML file; `-` reads stdin.
        file: PathBuf,
        /// The kind of Bundle.
        #[arg(long, value_enum, default_value = "document")]
        bundle: BundleKind,
        /// The UTC offset given to times without a zone (`-05:00`, `Z`).
        #[arg(long)]
        timezone: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A FHIR Bundle of one patient's resources (a `$everything` answer, a converted document)
    /// to a C-CDA R2.1 Continuity of Care Document.
    #[command(name = "fhir-to-ccda")]
    FhirToCcda {
        /// The Bundle (JSON); `-` reads stdin.
        bundle: PathBuf,
        /// Which Patient of the Bundle, by id (default: the only one).
        #[arg(long)]
        patient: Option<String>,
        /// The document's time (a FHIR dateTime); default now, give it for reproducible output.
        #[arg(long)]
        effective_time: Option<String>,
        /// The custodian organization's name.
        #[arg(long)]
        custodian: Option<String>,
        /// The custodian organization's OID.
        #[arg(long)]
        custodian_oid: Option<String>,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Where the output and the unmapped-content report go.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Write the output here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Pretty-print the JSON.
    #[arg(long)]
    pretty: bool,
    /// Write the unmapped-content report here instead of stderr.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// `--bundle` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BundleKind {
    /// A FHIR document (Composition first), for viewing.
    Document,
    /// A transaction of PUTs with deterministic ids, for loading into a server.
    Transaction,
}

/// Runs one `plexus convert` command.
pub fn run(cmd: ConvertCommand) -> Result<ExitCode> {
    let ok = match cmd {
        ConvertCommand::Hl7v2ToFhir {
            files,
            timezone,
            identifier_systems,
            output,
        } => {
            let mut opts = convert::Options {
                default_timezone: timezone,
                ..convert::Options::default()
            };
            for pair in identifier_systems {
                let (ns, uri) = pair.split_once('=').with_context(|| {
                    format!("--identifier-system {pair:?}: expected NAMESPACE=URI")
                })?;
                opts.identifier_systems
                    .push((ns.to_owned(), uri.to_owned()));
            }
            let mut sinks = Sinks::open(&output)?;
            let mut ok = true;
            for file in &files {
                ok &= hl7v2_file(file, &opts, output.pretty, &mut sinks)?;
            }
            sinks.finish()?;
            ok
        }
        ConvertCommand::CcdaToFhir {
            file,
            bundle,
            timezone,
            output,
        } => {
            let name = file.display().to_string();
            let xml = read_input(&file)?;
            let opts = ccda::Options {
                bundle_type: match bundle {
                    BundleKind::Document => ccda::BundleType::Document,
                    BundleKind::Transaction => ccda::BundleType::Transaction,
                },
                default_offset: timezone,
            };
            match ccda::to_fhir(&xml, &opts) {
                Ok(conversion) => {
                    let mut sinks = Sinks::open(&output)?;
                    sinks.json(&conversion.bundle, output.pretty)?;
                    for u in &conversion.unmapped {
                        sinks.report(&format!(
                            "{name}:{}: {} ({}): {}",
                            u.line, u.path, u.what, u.reason
                        ))?;
                    }
                    sinks.finish()?;
                    true
                }
                Err(e) => {
                    eprintln!("{name}: {e}");
                    false
                }
            }
        }
        ConvertCommand::FhirToCcda {
            bundle,
            patient,
            effective_time,
            custodian,
            custodian_oid,
            out,
        } => {
            let name = bundle.display().to_string();
            let bytes = read_input(&bundle)?;
            let opts = ccda::CcdOptions {
                effective_time,
                custodian_name: custodian,
                custodian_oid,
                ..ccda::CcdOptions::default()
            };
            match fhir_to_ccd(&bytes, patient.as_deref(), &opts) {
                Ok(xml) => {
                    let mut w = writer(out.as_deref())?;
                    w.write_all(xml.as_bytes())?;
                    if !xml.ends_with('\n') {
                        w.write_all(b"\n")?;
                    }
                    w.flush()?;
                    true
                }
                Err(e) => {
                    eprintln!("{name}: {e}");
                    false
                }
            }
        }
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The output and report streams of a conversion.
struct Sinks {
    out: Box<dyn Write>,
    report: Box<dyn Write>,
}

impl Sinks {
    fn open(args: &OutputArgs) -> Result<Self> {
        let report: Box<dyn Write> = match &args.report {
            Some(p) => Box::new(BufWriter::new(
                File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
            )),
            None => Box::new(io::stderr()),
        };
        Ok(Sinks {
            out: writer(args.out.as_deref())?,
            report,
        })
    }

    fn json(&mut self, value: &Value, pretty: bool) -> Result<()> {
        if pretty {
            serde_json::to_writer_pretty(&mut self.out, value)?;
        } else {
            serde_json::to_writer(&mut self.out, value)?;
        }
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// Writes a document already serialised, as one line (or block, when pretty).
    fn json_bytes(&mut self, json: &[u8]) -> Result<()> {
        self.out.write_all(json)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn report(&mut self, line: &str) -> Result<()> {
        writeln!(self.report, "{line}")?;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.out.flush()?;
        self.report.flush()?;
        Ok(())
    }
}

fn writer(path: Option<&Path>) -> Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(io::stdout())),
    })
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        io::Read::read_to_end(&mut io::stdin().lock(), &mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// Converts every message of one file; false if any failed (each failure is on stderr).
fn hl7v2_file(
    file: &Path,
    opts: &convert::Options,
    pretty: bool,
    sinks: &mut Sinks,
) -> Result<bool> {
    let name = file.display().to_string();
    let input: Box<dyn io::BufRead> = if name == "-" {
        Box::new(BufReader::new(io::stdin().lock()))
    } else {
        Box::new(BufReader::new(
            File::open(file).with_context(|| format!("cannot open {name}"))?,
        ))
    };
    let mut reader = MessageReader::new(input);
    let mut ok = true;
    let mut count = 0usize;
    while let Some(next) = reader.next_message() {
        let raw = match next {
            Ok(raw) => raw,
            Err(e) => {
                eprintln!("{name}: {e}");
                ok = false;
                continue;
            }
        };
        count += 1;
        // compact output takes the converter's own JSON bytes (the bytes serde_json writes for
        // the Bundle's Value); only --pretty needs the Value
        let converted = if pretty {
            convert::convert_bytes(raw.bytes, opts)
                .map(|c| (serde_json::to_vec_pretty(&c.bundle), c.unmapped))
        } else {
            convert::convert_bytes_to_json(raw.bytes, opts).map(|c| (Ok(c.json), c.unmapped))
        };
        match converted {
            Ok((json, unmapped)) => {
                sinks.json_bytes(&json?)?;
                for u in &unmapped {
                    sinks.report(&format!("{name}: message {}: {u}", raw.number))?;
                }
            }
            Err(e) => {
                let line = e
                    .location()
                    .and_then(|l| segment_line(raw.bytes, &l.segment, l.occurrence))
                    .map_or(raw.line, |n| raw.line + n);
                eprintln!("{name}:{line}: message {}: {e}", raw.number);
                ok = false;
            }
        }
    }
    if count == 0 && ok {
        eprintln!("{name}: no HL7 message found");
        ok = false;
    }
    Ok(ok)
}

/// How many lines after the message's first line the `occurrence`-th segment `id` starts
/// (segments end with CR, LF or CRLF).
fn segment_line(message: &[u8], id: &str, occurrence: usize) -> Option<u64> {
    let mut seen = 0;
    let mut line = 0u64;
    let mut rest = message;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(rest.len());
        let segment = &rest[..end];
        if segment.starts_with(id.as_bytes()) && matches!(segment.get(id.len()), None | Some(b'|'))
        {
            seen += 1;
            if seen == occurrence.max(1) {
                return Some(line);
            }
        }
        let mut next = end;
        if rest.get(next) == Some(&b'\r') {
            next += 1;
        }
        if rest.get(next) == Some(&b'\n') {
            next += 1;
        }
        if next == end {
            break;
        }
        line += 1;
        rest = &rest[next..];
    }
    None
}

/// A CCD from a Bundle (or a single Patient resource).
fn fhir_to_ccd(bytes: &[u8], patient_id: Option<&str>, opts: &ccda::CcdOptions) -> Result<String> {
    let value: Value = serde_json::from_slice(bytes).context("not JSON")?;
    let resources: Vec<Value> = match value.get("resourceType").and_then(Value::as_str) {
        Some("Bundle") => value
            .get("entry")
            .and_then(Value::as_array)
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e.get("resource").cloned())
                    .collect()
            })
            .unwrap_or_default(),
        Some(_) => vec![value],
        None => anyhow::bail!("not a FHIR resource (no resourceType)"),
    };
    let patients: Vec<&Value> = resources
        .iter()
        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Patient"))
        .filter(|r| patient_id.is_none_or(|id| r.get("id").and_then(Value::as_str) == Some(id)))
        .collect();
    let patient = match (patients.as_slice(), patient_id) {
        ([p], _) => *p,
        ([], Some(id)) => anyhow::bail!("the Bundle has no Patient with id {id:?}"),
        ([], None) => anyhow::bail!("the Bundle has no Patient"),
        (_, _) => anyhow::bail!(
            "the Bundle has {} Patients; choose one with --patient ID",
            patients.len()
        ),
    };
    Ok(ccda::to_ccd(patient, &resources, opts)?)
}
