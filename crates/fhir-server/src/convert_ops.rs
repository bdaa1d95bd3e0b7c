//! Conversion operations: `POST [base]/$convert-data` (HL7 v2 or C-CDA in, a FHIR Bundle
//! out, in the shape of Microsoft FHIR-Converter's operation) and `GET Patient/[id]/$ccd` (the
//! patient's data as a C-CDA R2.1 Continuity of Care Document).
//!
//! `$convert-data` only converts: nothing is stored, so it needs no more than an authenticated
//! caller (the guard layer checks that when authorization is on). `$ccd` reads exactly what
//! `$everything` would give the same caller.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{FhirError, Issue};
use crate::rest::{self, FhirState, Reply, Req};

/// The media type of `$ccd`'s answer.
pub const CDA_XML: &str = "application/xml; charset=utf-8";

/// The `inputDataType` values `$convert-data` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputType {
    Hl7v2,
    Ccda,
}

/// `POST [base]/$convert-data` with a Parameters body: `inputData` (string), `inputDataType`
/// (`Hl7v2` or `Ccda`), and optionally `rootTemplate` (accepted for compatibility with
/// FHIR-Converter clients; the conversion is chosen from the message type or document, not a
/// template). Answers a `transaction` Bundle, ready to be posted to a FHIR server.
pub fn convert_data(body: &[u8], req: &Req) -> Result<Reply, FhirError> {
    let params = rest::parse_body(&req.headers, body, Some("Parameters"))?;
    let list = params
        .get("parameter")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let string_param = |name: &str| -> Result<Option<&str>, FhirError> {
        let mut found = list
            .iter()
            .filter(|p| p.get("name").and_then(Value::as_str) == Some(name));
        let Some(p) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(FhirError::bad_request(format!(
                "Parameters has more than one `{name}`"
            )));
        }
        p.get("valueString")
            .and_then(Value::as_str)
            .map(Some)
            .ok_or_else(|| {
                FhirError::bad_request(format!("parameter `{name}` needs a valueString"))
            })
    };
    let input = string_param("inputData")?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| FhirError::bad_request("parameter `inputData` is required"))?;
    let kind = match string_param("inputDataType")? {
        Some(t) if t.eq_ignore_ascii_case("hl7v2") => InputType::Hl7v2,
        Some(t) if t.eq_ignore_ascii_case("ccda") => InputType::Ccda,
        Some(t) => {
            return Err(FhirError::new(
                StatusCode::BAD_REQUEST,
                "not-supported",
                format!("inputDataType {t:?} is not supported; use Hl7v2 or Ccda"),
            ));
        }
        None => {
            return Err(FhirError::bad_request(
                "parameter `inputDataType` is required (Hl7v2 or Ccda)",
            ));
        }
    };
    // Accepted, not used: the conversion follows the IG, not a template.
    let _root_template = string_param("rootTemplate")?;
    let body = match kind {
        // compact JSON: the converter writes the Bundle's bytes itself (the same bytes
        // `serde_json::to_vec` gives for its Value), without building a Value first
        InputType::Hl7v2 if !req.format.pretty => convert_hl7v2_json(input)?,
        InputType::Hl7v2 => req.format.to_bytes(&convert_hl7v2(input)?),
        InputType::Ccda => req.format.to_bytes(&convert_ccda(input)?),
    };
    Ok(Reply::body(StatusCode::OK, body))
}

fn convert_hl7v2(input: &str) -> Result<Value, FhirError> {
    // JSON strings usually carry segment ends as \n or \r\n; the converter takes all of them.
    convert::convert_bytes(input.as_bytes(), &convert::Options::default())
        .map(|conversion| conversion.bundle)
        .map_err(|e| hl7v2_error(&e))
}

/// The Bundle as compact JSON bytes.
fn convert_hl7v2_json(input: &str) -> Result<Vec<u8>, FhirError> {
    convert::convert_bytes_to_json(input.as_bytes(), &convert::Options::default())
        .map(|conversion| conversion.json)
        .map_err(|e| hl7v2_error(&e))
}

/// The OperationOutcome of a message that cannot be converted.
fn hl7v2_error(e: &convert::ConvertError) -> FhirError {
    let mut issue = Issue::error(
        match e {
            convert::ConvertError::Parse(_) => "structure",
            convert::ConvertError::Unsupported { .. } => "not-supported",
            _ => "invalid",
        },
        format!("inputData: {e}"),
    );
    issue.expression = e.location().map(ToString::to_string);
    let status = match e {
        convert::ConvertError::Parse(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    FhirError {
        status,
        issues: vec![issue],
    }
}

fn convert_ccda(input: &str) -> Result<Value, FhirError> {
    let opts = ccda::Options {
        bundle_type: ccda::BundleType::Transaction,
        ..ccda::Options::default()
    };
    match ccda::to_fhir(input.as_bytes(), &opts) {
        Ok(conversion) => Ok(conversion.bundle),
        Err(e) => {
            let (status, code) = match e {
                ccda::CcdaError::Xml { .. } | ccda::CcdaError::NotClinicalDocument { .. } => {
                    (StatusCode::BAD_REQUEST, "structure")
                }
                _ => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            };
            Err(FhirError::new(status, code, format!("inputData: {e}")))
        }
    }
}

/// `GET Patient/[id]/$ccd`: a CCD of what `$everything` gives the caller, as
/// `application/xml`. `?effectiveTime=` sets the document's time (default: now).
pub async fn ccd(state: &FhirState, id: &str, req: &Req) -> Response {
    match ccd_xml(state, id, req).await {
        Ok(xml) => {
            let mut response = (StatusCode::OK, xml).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CDA_XML));
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn ccd_xml(state: &FhirState, id: &str, req: &Req) -> Result<String, FhirError> {
    let found = rest::everything_resources(state, id, req).await?;
    let mut resources = Vec::with_capacity(found.len());
    for r in &found {
        let value: Value = serde_json::from_slice(&r.content).map_err(|e| {
            tracing::error!(resource_type = %r.resource_type, error = %e, "a stored resource is not JSON");
            FhirError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                "a stored resource could not be read",
            )
        })?;
        resources.push(value);
    }
    let Some(patient) = resources.first() else {
        return Err(FhirError::not_found(format!("Patient/{id} is not known")));
    };
    let opts = ccda::CcdOptions {
        effective_time: req
            .query
            .iter()
            .find(|(k, _)| k == "effectiveTime")
            .map(|(_, v)| v.clone()),
        ..ccda::CcdOptions::default()
    };
    ccda::to_ccd(patient, &resources, &opts).map_err(|e| {
        FhirError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "processing",
            format!("the CCD could not be written: {e}"),
        )
    })
}
