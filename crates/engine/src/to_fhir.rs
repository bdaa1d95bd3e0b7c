//! The `to-fhir` transformer step: the HL7 v2 message becomes a FHIR R4 `transaction` Bundle
//! (the `convert` crate, following the HL7 v2-to-FHIR IG), so the outbound data type is JSON.
//!
//! ```toml
//! [[transformer]]
//! type = "to-fhir"
//! timezone = "+01:00"                          # optional: offset of times without one
//! identifier_systems = { HOSP = "urn:oid:1.2.3" } # optional: assigning authority → system
//! ```
//!
//! The Bundle's entries are conditional (Patient by identifier, Encounter by visit number…),
//! so a re-sent message updates the same resources on the FHIR server. What the conversion
//! could not map is listed (locations only, never values) in the channel map under
//! `fhirUnmapped`; a message that cannot be converted goes to ERROR with the segment and field.

use std::collections::BTreeMap;

use script::{Context, Data};
use serde::Deserialize;
use serde_json::Value;

/// Settings of the `to-fhir` step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToFhirConfig {
    /// The offset (`+02:00`) of times that carry none. Default: MSH-7's offset.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Identifier systems by assigning authority (HD-1): `{ HOSP = "urn:oid:1.2.3" }`.
    #[serde(default)]
    pub identifier_systems: BTreeMap<String, String>,
    /// Also carry the unmapped content as extensions of the Provenance. Default: false.
    #[serde(default)]
    pub unmapped_extensions: bool,
}

impl ToFhirConfig {
    /// The step.
    pub fn build(&self) -> ToFhir {
        ToFhir {
            options: convert::Options {
                default_timezone: self.timezone.clone(),
                identifier_systems: self
                    .identifier_systems
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                unmapped_extensions: self.unmapped_extensions,
            },
        }
    }
}

/// The compiled `to-fhir` step.
#[derive(Debug)]
pub struct ToFhir {
    options: convert::Options,
}

impl ToFhir {
    /// Replaces the context's HL7 v2 message with its Bundle, and lists the unmapped content
    /// in the channel map (`fhirUnmapped`).
    pub fn apply(&self, ctx: &mut Context) -> Result<(), String> {
        let Data::Hl7v2(m) = &ctx.data else {
            return Err(format!(
                "needs HL7V2 data, the message is {}",
                ctx.data.data_type()
            ));
        };
        let (bundle, unmapped) = self.convert(&m.encode())?;
        ctx.data = Data::Json(bundle);
        if !unmapped.is_empty() {
            ctx.channel_map
                .insert("fhirUnmapped".into(), serde_json::json!(unmapped));
        }
        Ok(())
    }

    /// Converts one encoded HL7 v2 message; the error names the segment and field.
    pub fn convert(&self, message: &[u8]) -> Result<(Value, Vec<String>), String> {
        let conversion = convert::convert_bytes(message, &self.options)
            .map_err(|e| format!("cannot convert to FHIR: {e}"))?;
        let unmapped = conversion
            .unmapped
            .iter()
            .map(ToString::to_string)
            .collect();
        Ok((conversion.bundle, unmapped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_and_names_the_bad_field() {
        let step = ToFhirConfig::default().build();
        let ok = b"MSH|^~\\&|A|B|C|D|20260101120000+0000||ADT^A01|1|P|2.5\rPID|1||42^^^H&1.2.3&ISO^MR||DOE^J||19800101\rZPI|1|X\r";
        let (bundle, unmapped) = step.convert(ok).unwrap();
        assert_eq!(bundle["type"], "transaction");
        assert!(
            unmapped.iter().any(|u| u.starts_with("ZPI")),
            "{unmapped:?}"
        );
        let bad = b"MSH|^~\\&|A|B|C|D|20260101120000+0000||ADT^A01|1|P|2.5\rPID|1||42^^^H&1.2.3&ISO^MR||DOE^J||19801399\r";
        let e = step.convert(bad).unwrap_err();
        assert!(e.contains("PID-7"), "{e}");
    }

    #[test]
    fn options_reach_the_converter() {
        let c: ToFhirConfig =
            toml::from_str("timezone = \"+01:00\"\nidentifier_systems = { H = \"urn:oid:9.9\" }")
                .unwrap();
        let step = c.build();
        let msg = b"MSH|^~\\&|A|B|C|D|20260101120000||ADT^A01|1|P|2.5\rPID|1||42^^^H^MR||DOE^J\r";
        let (bundle, _) = step.convert(msg).unwrap();
        let text = bundle.to_string();
        assert!(
            text.contains("urn:oid:9.9|42") || text.contains("urn:oid:9.9"),
            "{text}"
        );
        assert!(toml::from_str::<ToFhirConfig>("zone = \"Z\"").is_err());
    }
}
