//! What the client asked the answer to look like: `_format`/`Accept`, `_pretty`,
//! `_summary`, `_elements` and `Prefer: return=…`.

use axum::http::{HeaderMap, header};
use serde_json::{Map, Value, json};

use crate::error::FhirError;

/// The query parameters that shape the answer rather than select resources.
pub const RESULT_PARAMS: &[&str] = &["_format", "_pretty", "_summary", "_elements"];

/// `_summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Summary {
    /// `false` (default): everything.
    #[default]
    False,
    /// `true`: only elements marked as summary elements.
    True,
    /// `text`: `text`, `id`, `meta` and mandatory top-level elements.
    Text,
    /// `data`: everything but `text`.
    Data,
    /// `count`: only the total of a search.
    Count,
}

/// The shape of the answer.
#[derive(Debug, Clone, Default)]
pub struct Format {
    /// `_pretty=true`.
    pub pretty: bool,
    /// `_summary`.
    pub summary: Summary,
    /// `_elements` (top-level element names).
    pub elements: Option<Vec<String>>,
}

impl Format {
    /// Reads `_format`, `_pretty`, `_summary`, `_elements` from the query and `Accept` from
    /// the headers; 406 when the client only accepts XML (or another format we do not write).
    pub fn from_request(
        query: &[(String, String)],
        headers: &HeaderMap,
    ) -> Result<Self, FhirError> {
        let mut format = Self::default();
        let mut explicit = false;
        for (k, v) in query {
            match k.as_str() {
                "_format" => {
                    explicit = true;
                    if !is_json_mime(v) {
                        return Err(FhirError::not_acceptable(format!(
                            "_format={v} is not supported; this server answers application/fhir+json"
                        )));
                    }
                }
                "_pretty" => {
                    format.pretty = match v.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(FhirError::bad_request(format!(
                                "_pretty must be true or false, not {v:?}"
                            )));
                        }
                    }
                }
                "_summary" => {
                    format.summary = match v.as_str() {
                        "true" => Summary::True,
                        "false" => Summary::False,
                        "text" => Summary::Text,
                        "data" => Summary::Data,
                        "count" => Summary::Count,
                        _ => {
                            return Err(FhirError::bad_request(format!(
                                "_summary must be one of true, false, text, data, count; not {v:?}"
                            )));
                        }
                    }
                }
                "_elements" => {
                    let names: Vec<String> = v
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| s.rsplit('.').next().unwrap_or(s).to_owned())
                        .collect();
                    format.elements = Some(names);
                }
                _ => {}
            }
        }
        if !explicit
            && let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())
            && !accepts_json(accept)
        {
            return Err(FhirError::not_acceptable(format!(
                "Accept: {accept} is not supported; this server answers application/fhir+json"
            )));
        }
        Ok(format)
    }

    /// Whether resources must be re-shaped before they are sent.
    pub fn reshapes(&self) -> bool {
        self.elements.is_some() || !matches!(self.summary, Summary::False | Summary::Count)
    }

    /// Applies `_summary`/`_elements` to a resource, marking it SUBSETTED as FHIR asks.
    pub fn reshape(&self, resource: &mut Value) {
        let Some(obj) = resource.as_object_mut() else {
            return;
        };
        let resource_type = obj
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let keep: Box<dyn Fn(&str) -> bool> = if let Some(elements) = &self.elements {
            let elements = elements.clone();
            let rt = resource_type.clone();
            Box::new(move |k: &str| {
                elements.iter().any(|e| e == k) || is_mandatory(&rt, k) || is_always_kept(k)
            })
        } else {
            match self.summary {
                Summary::False | Summary::Count => return,
                Summary::Data => Box::new(|k: &str| k != "text"),
                Summary::Text => {
                    let rt = resource_type.clone();
                    Box::new(move |k: &str| {
                        k == "text" || is_always_kept(k) || is_mandatory(&rt, k)
                    })
                }
                Summary::True => {
                    let rt = resource_type.clone();
                    Box::new(move |k: &str| is_always_kept(k) || is_summary(&rt, k))
                }
            }
        };
        obj.retain(|k, _| {
            let name = k.strip_prefix('_').unwrap_or(k);
            keep(name)
        });
        mark_subsetted(obj);
    }

    /// Serialises a JSON value, pretty when asked.
    pub fn to_bytes(&self, value: &Value) -> Vec<u8> {
        if self.pretty {
            serde_json::to_vec_pretty(value).unwrap_or_default()
        } else {
            serde_json::to_vec(value).unwrap_or_default()
        }
    }

    /// Stored resource bytes as they should be sent: unchanged when nothing asks otherwise.
    pub fn resource_bytes(&self, stored: &[u8]) -> Vec<u8> {
        self.shaped(stored).unwrap_or_else(|| stored.to_vec())
    }

    /// [`Format::resource_bytes`] of bytes the caller gives up: returned as they are (not
    /// copied) when nothing asks otherwise.
    pub fn resource_body(&self, stored: Vec<u8>) -> Vec<u8> {
        self.shaped(&stored).unwrap_or(stored)
    }

    /// The resource reshaped or pretty-printed as asked; `None` when it is sent as stored.
    fn shaped(&self, stored: &[u8]) -> Option<Vec<u8>> {
        if !self.pretty && !self.reshapes() {
            return None;
        }
        let mut v = serde_json::from_slice::<Value>(stored).ok()?;
        self.reshape(&mut v);
        Some(self.to_bytes(&v))
    }
}

/// Elements every subset keeps.
fn is_always_kept(name: &str) -> bool {
    matches!(name, "resourceType" | "id" | "meta")
}

/// Whether a top-level element is mandatory (min ≥ 1) in the resource type.
fn is_mandatory(resource_type: &str, name: &str) -> bool {
    fhir::defs::element(resource_type, &format!("{resource_type}.{name}"))
        .is_some_and(|e| e.min > 0)
}

/// Whether a top-level element is a summary element of the resource type.
fn is_summary(resource_type: &str, name: &str) -> bool {
    fhir::defs::element(resource_type, &format!("{resource_type}.{name}"))
        .is_some_and(|e| e.min > 0 || e.summary)
}

/// Adds the `SUBSETTED` tag (http://terminology.hl7.org/CodeSystem/v3-ObservationValue).
fn mark_subsetted(obj: &mut Map<String, Value>) {
    let meta = obj.entry("meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        let tags = meta.entry("tag").or_insert_with(|| json!([]));
        if let Some(tags) = tags.as_array_mut() {
            tags.push(json!({
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                "code": "SUBSETTED",
                "display": "Resource encoded in summary mode",
            }));
        }
    }
}

/// Whether a `_format` value or media type means JSON.
pub fn is_json_mime(v: &str) -> bool {
    let base = v.split(';').next().unwrap_or_default().trim();
    matches!(
        base,
        "json" | "application/json" | "application/fhir+json" | "application/json+fhir"
            // `+` unencoded in a query string arrives as a space.
            | "application/fhir json" | "application/json fhir"
    )
}

/// Whether an `Accept` header admits JSON.
fn accepts_json(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let base = part.split(';').next().unwrap_or_default().trim();
        is_json_mime(base) || matches!(base, "*/*" | "application/*" | "")
    })
}

/// `Prefer: return=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Return {
    /// `return=representation` (default): the resource.
    #[default]
    Representation,
    /// `return=minimal`: no body.
    Minimal,
    /// `return=OperationOutcome`: an OperationOutcome.
    OperationOutcome,
}

/// What the `Prefer` header asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prefer {
    /// `return=`, if the client said.
    pub ret: Option<Return>,
    /// `handling=lenient`: ignore unknown search parameters instead of answering 400.
    pub lenient: bool,
}

impl Prefer {
    /// Reads the `Prefer` header(s).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut prefer = Self::default();
        for value in headers.get_all("prefer") {
            let Ok(value) = value.to_str() else { continue };
            for part in value.split([',', ';']) {
                let part = part.trim();
                match part
                    .split_once('=')
                    .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
                {
                    Some(("return", "minimal")) => prefer.ret = Some(Return::Minimal),
                    Some(("return", "OperationOutcome")) => {
                        prefer.ret = Some(Return::OperationOutcome);
                    }
                    Some(("return", "representation")) => {
                        prefer.ret = Some(Return::Representation);
                    }
                    Some(("handling", "lenient")) => prefer.lenient = true,
                    Some(("handling", "strict")) => prefer.lenient = false,
                    _ => {}
                }
            }
        }
        prefer
    }
}
