//! Bundles written straight to bytes: stored resources are copied in as they are stored,
//! without being parsed again (unless the client asked for a reshaped or pretty answer).

use serde_json::{Value, json};
use store::Timestamp;

use crate::format::Format;

/// Writes one Bundle.
pub struct BundleWriter {
    buf: Vec<u8>,
    entries: usize,
}

/// One Bundle entry.
#[derive(Default)]
pub struct Entry<'a> {
    /// `fullUrl`.
    pub full_url: Option<&'a str>,
    /// The resource, as stored JSON bytes.
    pub resource: Option<&'a [u8]>,
    /// `search.mode` (`match`, `include`, `outcome`).
    pub search_mode: Option<&'static str>,
    /// `request` (history and batch/transaction requests).
    pub request: Option<Value>,
    /// `response` (batch/transaction responses, history).
    pub response: Option<Value>,
}

impl BundleWriter {
    /// Starts a Bundle of type `kind` (`searchset`, `history`, `batch-response`, …).
    pub fn new(kind: &str, total: Option<u64>, links: &[(&str, String)]) -> Self {
        let mut head = json!({
            "resourceType": "Bundle",
            "id": ulid::Ulid::new().to_string(),
            "meta": {"lastUpdated": Timestamp::now().to_string()},
            "type": kind,
        });
        if let Some(total) = total {
            head["total"] = json!(total);
        }
        if !links.is_empty() {
            head["link"] = links
                .iter()
                .map(|(rel, url)| json!({"relation": rel, "url": url}))
                .collect();
        }
        let mut buf = serde_json::to_vec(&head).unwrap_or_default();
        buf.pop(); // the closing brace: entries follow
        Self { buf, entries: 0 }
    }

    /// Appends an entry. `format` reshapes the resource if the client asked for it.
    pub fn entry(&mut self, entry: &Entry<'_>, format: &Format) {
        self.buf.extend_from_slice(if self.entries == 0 {
            b",\"entry\":[{"
        } else {
            b",{"
        });
        self.entries += 1;
        let mut first = true;
        let mut key = |buf: &mut Vec<u8>, name: &str| {
            if !first {
                buf.push(b',');
            }
            first = false;
            buf.push(b'"');
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(b"\":");
        };
        if let Some(url) = entry.full_url {
            key(&mut self.buf, "fullUrl");
            let _ = serde_json::to_writer(&mut self.buf, url);
        }
        if let Some(resource) = entry.resource {
            key(&mut self.buf, "resource");
            if format.reshapes() {
                self.buf.extend_from_slice(
                    &Format {
                        pretty: false,
                        ..format.clone()
                    }
                    .resource_bytes(resource),
                );
            } else {
                self.buf.extend_from_slice(resource);
            }
        }
        if let Some(mode) = entry.search_mode {
            key(&mut self.buf, "search");
            let _ = serde_json::to_writer(&mut self.buf, &json!({"mode": mode}));
        }
        if let Some(request) = &entry.request {
            key(&mut self.buf, "request");
            let _ = serde_json::to_writer(&mut self.buf, request);
        }
        if let Some(response) = &entry.response {
            key(&mut self.buf, "response");
            let _ = serde_json::to_writer(&mut self.buf, response);
        }
        self.buf.push(b'}');
    }

    /// Ends the Bundle and returns its bytes (pretty-printed if `format` asks).
    pub fn finish(mut self, format: &Format) -> Vec<u8> {
        if self.entries > 0 {
            self.buf.push(b']');
        }
        self.buf.push(b'}');
        if format.pretty
            && let Ok(v) = serde_json::from_slice::<Value>(&self.buf)
        {
            return serde_json::to_vec_pretty(&v).unwrap_or(self.buf);
        }
        self.buf
    }
}
