//! Segment handlers: each turns one segment into (part of) a resource, following the IG's
//! segment map named in its doc.

pub mod clinical;
pub mod encounter;
pub mod orders;
pub mod other;
pub mod patient;
pub mod provenance;

use serde_json::{Map, Value};

use crate::ctx::{Ctx, identifier_query};

/// The request for a resource known by `identifier` (a conditional update when the
/// identifier has a system), else a PUT at the id named by `fallback`.
pub fn request_for(identifier: Option<&Value>) -> Option<crate::ctx::Request> {
    let id = identifier?;
    id.get("system")?;
    identifier_query(id).map(crate::ctx::Request::Conditional)
}

/// Adds a resource known by `identifier` when it has a system, else by the name `fallback`.
pub fn add_keyed(
    ctx: &mut Ctx<'_, '_>,
    rtype: &'static str,
    identifier: Option<&Value>,
    fallback: &[&str],
    resource: Map<String, Value>,
) -> usize {
    if let Some(req) = request_for(identifier) {
        ctx.add(rtype, req, &[], resource)
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
