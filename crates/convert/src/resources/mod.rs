//! Segment handlers: each turns one segment into (part of) a resource, following the IG's
//! segment map named in its doc.

pub mod clinical;
pub mod encounter;
pub mod orders;
pub mod other;
pub mod patient;
pub mod provenance;

use crate::tree::{Map, Value};

use crate::ctx::{Ctx, Seg, identifier_query};

/// The request for a resource known by `identifier` (a conditional update when the
/// identifier has a system), else a PUT at the id named by `fallback`.
pub fn request_for(identifier: Option<&Value>) -> Option<crate::ctx::Request> {
    let id = identifier?;
    id.get("system")?;
    identifier_query(id).map(crate::ctx::Request::Conditional)
}

/// Adds a resource known by `identifier` when it has a system, else by the name `fallback`.
///
/// Two resources of one message under the same identifier would leave the server with two
/// matches for later conditional updates: the later one is written without that identifier
/// (at an id of its own), and `src` (the segment and field the identifier came from) is
/// reported.
pub fn add_keyed<'a>(
    ctx: &mut Ctx<'a, '_>,
    src: (Seg<'a>, usize),
    rtype: &'static str,
    identifier: Option<&Value>,
    fallback: &[&str],
    mut resource: Map,
) -> usize {
    if let Some(req) = request_for(identifier) {
        let dedupe = matches!(rtype, "Patient" | "Account" | "Encounter");
        if dedupe || !ctx.has(rtype, &req) {
            return ctx.add(rtype, req, &[], resource);
        }
        if let (Some(Value::Array(ids)), Some(id)) = (resource.get_mut("identifier"), identifier) {
            ids.retain(|i| i != id);
            if ids.is_empty() {
                resource.remove("identifier");
            }
        }
        if resource.get("masterIdentifier") == identifier {
            resource.remove("masterIdentifier");
        }
        ctx.report(src.0, src.1, crate::UnmappedReason::DuplicateIdentifier);
        let n = src.0.occ.to_string();
        let mut name: Vec<&str> = fallback.to_vec();
        name.push(&n);
        ctx.add(rtype, crate::ctx::Request::Put, &name, resource)
    } else {
        {
            let value = identifier
                .and_then(|i| i.get("value"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut name: Vec<&str> = fallback.to_vec();
            if !value.is_empty() {
                name = vec![fallback.first().copied().unwrap_or_default(), "id", &value];
            }
            ctx.add(rtype, crate::ctx::Request::Put, &name, resource)
        }
    }
}
