//! `/metadata`: the CapabilityStatement, made from what this server implements and the
//! generated search parameter tables — so it never claims a parameter the server lacks.

use serde_json::{Value, json};

use crate::FhirConfig;

/// The interactions every resource type supports.
const TYPE_INTERACTIONS: &[&str] = &[
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
];

/// The CapabilityStatement of this server.
pub fn statement(config: &FhirConfig) -> Value {
    let resources: Vec<Value> = fhir::defs::resource_types()
        .iter()
        .map(|t| resource(t))
        .collect();
    let mut rest = json!({
        "mode": "server",
        "resource": resources,
        "interaction": [
            {"code": "transaction"},
            {"code": "batch"},
            {"code": "search-system"},
            {"code": "history-system"},
        ],
        "searchParam": [
            {"name": "_id", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id"},
            {"name": "_lastUpdated", "type": "date", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"},
        ],
        "operation": [{
            "name": "validate",
            "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
        }],
    });
    if let Some(oauth) = &config.oauth {
        rest["security"] = security(oauth);
    }
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": store::Timestamp::now().to_string(),
        "publisher": "Plexus",
        "kind": "instance",
        "software": {"name": "Plexus", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Plexus FHIR R4 server", "url": config.base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [rest],
    })
}

/// `rest.security`: SMART on FHIR, with the OAuth endpoints (the `oauth-uris` extension).
fn security(oauth: &crate::OAuthUris) -> Value {
    json!({
        "cors": false,
        "service": [{
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR",
            }],
            "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
        }],
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
                {"url": "authorize", "valueUri": oauth.authorize},
                {"url": "token", "valueUri": oauth.token},
                {"url": "introspect", "valueUri": oauth.introspect},
                {"url": "revoke", "valueUri": oauth.revoke},
            ],
        }],
    })
}

fn resource(resource_type: &str) -> Value {
    let params: Vec<Value> = fhir::defs::search_params(resource_type)
        .filter(|p| !p.expression.is_empty() || matches!(p.code, "_id" | "_lastUpdated"))
        .filter(|p| p.kind != fhir::defs::ParamType::Special)
        .map(|p| {
            json!({
                "name": p.code,
                "definition": p.url,
                "type": param_type(p.kind),
            })
        })
        .collect();
    let includes: Vec<Value> = fhir::defs::search_params(resource_type)
        .filter(|p| p.kind == fhir::defs::ParamType::Reference)
        .map(|p| Value::String(format!("{resource_type}:{}", p.code)))
        .chain(std::iter::once(Value::String("*".to_owned())))
        .collect();
    let mut r = json!({
        "type": resource_type,
        "profile": format!("http://hl7.org/fhir/StructureDefinition/{resource_type}"),
        "interaction": TYPE_INTERACTIONS.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
        "versioning": "versioned-update",
        "readHistory": true,
        "updateCreate": true,
        "conditionalCreate": true,
        "conditionalRead": "full-support",
        "conditionalUpdate": true,
        "conditionalDelete": "single",
        "referencePolicy": ["literal", "logical"],
        "searchInclude": includes,
        "searchParam": params,
    });
    if resource_type == "Patient" {
        r["operation"] = json!([{
            "name": "everything",
            "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
        }]);
    }
    r
}

fn param_type(kind: fhir::defs::ParamType) -> &'static str {
    use fhir::defs::ParamType as P;
    match kind {
        P::Number => "number",
        P::Date => "date",
        P::String => "string",
        P::Token => "token",
        P::Reference => "reference",
        P::Composite => "composite",
        P::Quantity => "quantity",
        P::Uri => "uri",
        P::Special => "special",
    }
}
