//! The FHIR R4 definitions as Rust tables (generated), and lookups over them.

/// The type of a search parameter, as in the SearchParameter resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    /// `number`
    Number,
    /// `date`
    Date,
    /// `string`
    String,
    /// `token`
    Token,
    /// `reference`
    Reference,
    /// `composite`
    Composite,
    /// `quantity`
    Quantity,
    /// `uri`
    Uri,
    /// `special`
    Special,
}

#[rustfmt::skip]
#[path = "generated/search_params.rs"]
mod search_params;

pub use search_params::SOURCE_PARAMS;

/// A search parameter as it applies to one resource type.
///
/// A parameter the specification shares between several types (`clinical-patient` has base
/// `AllergyIntolerance`, `Observation`, …) gives one definition per type, each with the part
/// of the expression for its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParamDef {
    /// The code used in searches (`family`, `_id`).
    pub code: &'static str,
    /// The canonical url of the SearchParameter resource.
    pub url: &'static str,
    /// The parameter's type.
    pub kind: ParamType,
    /// The FHIRPath expression restricted to this resource type: for shared parameters whose
    /// expression is a union over several types (`AllergyIntolerance.code | Condition.code |
    /// …`), only the parts for this type (parts starting with `Type.` or `(Type.`).
    /// Parameters of `Resource` and `DomainResource` keep theirs (`Resource.meta.tag`).
    /// Empty for parameters without one (`_text`, `_content`, `_query`).
    pub expression: &'static str,
    /// Resource types a reference parameter may point to, sorted.
    pub targets: &'static [&'static str],
    /// The components of a composite parameter, in order.
    pub components: &'static [ComponentDef],
}

/// One component of a composite search parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentDef {
    /// The url of the search parameter giving the component's type (see
    /// [`search_param_by_url`]).
    pub definition: &'static str,
    /// The FHIRPath expression of the component, relative to the composite's value.
    pub expression: &'static str,
}

/// The definitions of one type's entries (the type's own only).
fn own_params(resource_type: &str) -> &'static [SearchParamDef] {
    search_params::TYPE_RANGES
        .binary_search_by(|(t, _, _)| (*t).cmp(resource_type))
        .ok()
        .and_then(|i| {
            let (_, start, end) = search_params::TYPE_RANGES[i];
            search_params::SEARCH_PARAMS.get(usize::from(start)..usize::from(end))
        })
        .unwrap_or(&[])
}

/// The search parameters of a resource type: its own, then those of `Resource` and, for types
/// other than `Bundle`, `Binary` and `Parameters`, those of `DomainResource`.
/// Empty for an unknown type.
pub fn search_params(resource_type: &str) -> impl Iterator<Item = &'static SearchParamDef> {
    let known = is_resource_type(resource_type);
    let domain = known && !matches!(resource_type, "Bundle" | "Binary" | "Parameters");
    let own = if known {
        own_params(resource_type)
    } else {
        &[]
    };
    let resource = if known { own_params("Resource") } else { &[] };
    let domain = if domain {
        own_params("DomainResource")
    } else {
        &[]
    };
    own.iter().chain(resource).chain(domain)
}

/// The search parameter `code` of a resource type (its own, `Resource`'s or
/// `DomainResource`'s).
pub fn search_param(resource_type: &str, code: &str) -> Option<&'static SearchParamDef> {
    search_params(resource_type).find(|p| p.code == code)
}

/// A search parameter by its canonical url. For a parameter shared by several types, the
/// entry of the first of them in alphabetical order; callers that know the resource type can
/// use `search_params(ty).find(|p| p.url == url)` for that type's expression.
pub fn search_param_by_url(url: &str) -> Option<&'static SearchParamDef> {
    search_params::BY_URL
        .binary_search_by(|(u, _)| (*u).cmp(url))
        .ok()
        .and_then(|i| search_params::SEARCH_PARAMS.get(usize::from(search_params::BY_URL[i].1)))
}

/// The concrete resource types of FHIR R4, sorted.
pub fn resource_types() -> &'static [&'static str] {
    search_params::RESOURCE_TYPES
}

/// Whether `name` is a concrete resource type (`Patient`; not `Resource` or `DomainResource`).
pub fn is_resource_type(name: &str) -> bool {
    search_params::RESOURCE_TYPES.binary_search(&name).is_ok()
}

/// The codes of the search parameters that put a resource of this type in a Patient's
/// compartment (`subject`, `performer` for `Observation`); empty when the type is not in the
/// Patient compartment.
pub fn patient_compartment(resource_type: &str) -> &'static [&'static str] {
    search_params::PATIENT_COMPARTMENT
        .binary_search_by(|(t, _)| (*t).cmp(resource_type))
        .map_or(&[], |i| search_params::PATIENT_COMPARTMENT[i].1)
}
