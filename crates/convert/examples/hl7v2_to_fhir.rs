//! Converts an HL7 v2 file to a FHIR transaction Bundle on stdout; the unmapped-content
//! report goes to stderr. `cargo run -p convert --example hl7v2_to_fhir -- FILE`

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: hl7v2_to_fhir FILE");
        return ExitCode::from(2);
    };
    let raw = match std::fs::read(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    match convert::convert_bytes(&raw, &convert::Options::default()) {
        Ok(out) => {
            match serde_json::to_string_pretty(&out.bundle) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
            for u in &out.unmapped {
                eprintln!("unmapped: {u}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            ExitCode::FAILURE
        }
    }
}
