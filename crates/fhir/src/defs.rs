//! The FHIR R4 definitions as Rust tables (generated), and lookups over them.

use std::collections::HashMap;
use std::sync::LazyLock;

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
/// based on `DomainResource` (all but `Bundle`, `Binary` and `Parameters`), those of
/// `DomainResource`.
/// Empty for an unknown type.
pub fn search_params(resource_type: &str) -> impl Iterator<Item = &'static SearchParamDef> {
    let known = is_resource_type(resource_type);
    let domain = known && type_def(resource_type).is_some_and(|t| t.base == Some("DomainResource"));
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

#[rustfmt::skip]
#[path = "generated/types.rs"]
mod types;

#[rustfmt::skip]
#[path = "generated/valuesets.rs"]
mod valuesets;

/// What a [`TypeDef`] defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TypeKind {
    /// A primitive type (`string`, `dateTime`): a JSON scalar plus an optional `_name` object.
    Primitive,
    /// A complex data type (`HumanName`, `Reference`, `Element`, `BackboneElement`).
    Complex,
    /// A resource (`Patient`, and the abstract `Resource` and `DomainResource`).
    Resource,
}

/// A base type or resource of FHIR R4 with its elements (the StructureDefinition snapshot;
/// constraining profiles such as `SimpleQuantity` are not in the tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeDef {
    /// The type's name (`Patient`, `HumanName`, `dateTime`).
    pub name: &'static str,
    /// Primitive, complex or resource.
    pub kind: TypeKind,
    /// Whether the type is abstract (`Resource`, `DomainResource`, `Element`,
    /// `BackboneElement`).
    pub is_abstract: bool,
    /// The type it specializes (`DomainResource` for `Patient`); `None` for the roots.
    pub base: Option<&'static str>,
    /// All elements of the snapshot (inherited ones included), sorted by path.
    pub elements: &'static [ElementDef],
}

/// One element of a type's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementDef {
    /// The full path (`Patient.contact.name`; a choice element is `Observation.value[x]`).
    pub path: &'static str,
    /// Minimum number of occurrences.
    pub min: u32,
    /// Maximum number of occurrences; `None` for `*`.
    pub max: Option<u32>,
    /// The type codes (`HumanName`, `string`; `BackboneElement` or `Element` for an element
    /// with nested elements of its own; all the options of a choice). Empty for the type's root
    /// element and for elements defined by [`ElementDef::content_reference`].
    pub types: &'static [&'static str],
    /// Whether this is a choice element (`value[x]`).
    pub choice: bool,
    /// The element whose definition this one reuses (`Questionnaire.item` for
    /// `Questionnaire.item.item`).
    pub content_reference: Option<&'static str>,
    /// The types a `Reference` (or `canonical`) may point to (`Patient`; `Resource` for any).
    pub target_profiles: &'static [&'static str],
    /// The value set url (without `|version`) of a binding of strength `required`.
    pub required_binding: Option<&'static str>,
    /// Whether the element is part of the summary (`isSummary`, what `_summary=true` keeps).
    pub summary: bool,
}

impl ElementDef {
    /// The element's name, the last part of its path (`value[x]` for a choice).
    pub fn name(&self) -> &'static str {
        self.path.rsplit('.').next().unwrap_or(self.path)
    }

    /// Whether the element may repeat (its maximum is more than one).
    pub fn is_array(&self) -> bool {
        self.max.is_none_or(|m| m > 1)
    }
}

/// A type or resource by name (`Patient`, `HumanName`, `string`).
pub fn type_def(name: &str) -> Option<&'static TypeDef> {
    // asked for on every object validated and every step of a search expression: a hash
    // lookup, not ten string comparisons of a binary search over some 650 names
    static BY_NAME: LazyLock<HashMap<&'static str, &'static TypeDef>> =
        LazyLock::new(|| types::TYPES.iter().map(|t| (t.name, t)).collect());
    BY_NAME.get(name).copied()
}

/// The element of a type at `path`, which is either the full path (`Patient.contact.name`)
/// or the path relative to the type (`contact.name`). Choice elements are named as in the
/// definitions (`Observation.value[x]`).
pub fn element(type_name: &str, path: &str) -> Option<&'static ElementDef> {
    let def = type_def(type_name)?;
    let full;
    let path = if path == type_name
        || path
            .strip_prefix(type_name)
            .is_some_and(|rest| rest.starts_with('.'))
    {
        path
    } else {
        full = format!("{type_name}.{path}");
        &full
    };
    def.elements
        .binary_search_by(|e| e.path.cmp(path))
        .ok()
        .map(|i| &def.elements[i])
}

/// The element `name` of a node whose full path is `parent_path` (`Patient.contact`) in
/// `type_name` (`Patient`), or else the choice element `name[x]`, with whether it is the
/// choice; as [`element`] with `parent_path.name`, without building that path.
pub fn child_element(
    type_name: &str,
    parent_path: &str,
    name: &str,
) -> Option<(&'static ElementDef, bool)> {
    let elements = type_def(type_name)?.elements;
    // `parent.name[x]`, joined on the stack (the longest path of the definitions is under
    // 100 bytes)
    let (mut stack, mut heap) = ([0u8; 128], Vec::new());
    let buf = join_bytes(
        &mut stack,
        &mut heap,
        &[parent_path.as_bytes(), b".", name.as_bytes(), b"[x]"],
    );
    let len = buf.len() - 3;
    let find = |path: &[u8]| {
        let path = std::str::from_utf8(path).ok()?;
        elements
            .binary_search_by(|e| e.path.cmp(path))
            .ok()
            .map(|i| &elements[i])
    };
    find(&buf[..len])
        .map(|e| (e, false))
        .or_else(|| find(buf).map(|e| (e, true)))
}

/// `parts` joined in `stack` when they fit, else in `heap`: a key or path built without an
/// allocation in the usual case.
pub(crate) fn join_bytes<'b>(
    stack: &'b mut [u8; 128],
    heap: &'b mut Vec<u8>,
    parts: &[&[u8]],
) -> &'b [u8] {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len <= stack.len() {
        let mut at = 0;
        for p in parts {
            stack[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        &stack[..len]
    } else {
        heap.clear();
        for p in parts {
            heap.extend_from_slice(p);
        }
        heap
    }
}

/// The children of a node of a type: the elements whose path is `parent_path` plus `.name`
/// (`parent_path` is a full path such as `Patient.contact`), in path order.
pub fn children(
    type_name: &str,
    parent_path: &str,
) -> impl Iterator<Item = &'static ElementDef> + use<> {
    named_children(type_name, parent_path)
        .iter()
        .map(|(e, _)| *e)
}

/// [`children`] with their names, from a table built once of every element's direct children
/// (a validator looks them up for every object it checks; scanning the type's elements for
/// them took half of the time of validating a Patient, two thirds for an Observation).
pub(crate) fn named_children(
    type_name: &str,
    parent_path: &str,
) -> &'static [(&'static ElementDef, &'static str)] {
    type Named = Vec<(&'static ElementDef, &'static str)>;
    // type name → parent path → children
    static ALL: LazyLock<HashMap<&'static str, HashMap<&'static str, Named>>> =
        LazyLock::new(|| {
            let mut all: HashMap<&'static str, HashMap<&'static str, Named>> = HashMap::new();
            for t in types::TYPES {
                let of_type = all.entry(t.name).or_default();
                // in path order
                for e in t.elements {
                    if let Some((parent, _)) = e.path.rsplit_once('.') {
                        of_type.entry(parent).or_default().push((e, e.name()));
                    }
                }
            }
            all
        });
    ALL.get(type_name)
        .and_then(|of_type| of_type.get(parent_path))
        .map_or(&[], Vec::as_slice)
}

/// The regular expression (XML Schema style, implicitly anchored) that the value of a
/// primitive type matches, from the definitions (`[A-Za-z0-9\-\.]{1,64}` for `id`); `None`
/// for types without one (`xhtml`) and for non-primitive names.
pub fn primitive_regex(name: &str) -> Option<&'static str> {
    types::PRIMITIVE_REGEX
        .binary_search_by(|(t, _)| (*t).cmp(name))
        .ok()
        .map(|i| types::PRIMITIVE_REGEX[i].1)
}

/// A value set bound with strength `required` by some element, expanded when the
/// definitions allow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequiredValueSet {
    /// The value set's canonical url (without version).
    pub url: &'static str,
    /// The code systems its codes come from, sorted.
    pub systems: &'static [&'static str],
    /// The allowed codes, sorted; `None` when the value set is not expandable from the
    /// definitions alone (see [`RequiredValueSet::not_expandable`]).
    pub codes: Option<&'static [&'static str]>,
    /// Why the value set is not expanded (it uses a filter, or an external code system such
    /// as UCUM, BCP-47 or MIME types, or is missing); empty when it is.
    pub not_expandable: &'static str,
}

/// A required-binding value set by url (with or without `|version`).
pub fn required_value_set(valueset_url: &str) -> Option<&'static RequiredValueSet> {
    let url = valueset_url.split('|').next().unwrap_or(valueset_url);
    valuesets::REQUIRED_VALUE_SETS
        .binary_search_by(|v| v.url.cmp(url))
        .ok()
        .map(|i| &valuesets::REQUIRED_VALUE_SETS[i])
}

/// The codes allowed by a value set of a required binding, sorted; `None` when the value set
/// is not expandable here (or not bound as required anywhere), so codes are not checked.
pub fn required_codes(valueset_url: &str) -> Option<&'static [&'static str]> {
    required_value_set(valueset_url).and_then(|v| v.codes)
}

#[rustfmt::skip]
#[path = "generated/profiles.rs"]
mod profiles;

/// A resource profile (US Core 5.0.1) as the constraints it adds to its base resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileDef {
    /// The profile's canonical url.
    pub url: &'static str,
    /// The resource type it constrains.
    pub type_name: &'static str,
    /// Constraints on elements outside slices.
    pub constraints: &'static [ProfileConstraint],
    /// Slices recognised by a pattern, with their cardinality.
    pub slices: &'static [SliceDef],
}

/// What a profile says about one element: only the parts that add to the base definition
/// matter (a higher minimum, a lower maximum, a fixed or pattern value, a required binding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileConstraint {
    /// The element's full path (`Patient.identifier.system`, `Observation.effective[x]`).
    pub path: &'static str,
    /// Minimum occurrences in each instance of the parent element.
    pub min: u32,
    /// Maximum occurrences in each instance of the parent element; `None` for `*`.
    pub max: Option<u32>,
    /// A `fixed[x]` or `pattern[x]` value, as JSON text; each value must contain it.
    pub pattern: Option<&'static str>,
    /// The value set url of a required binding.
    pub required_binding: Option<&'static str>,
}

/// A slice of a repeating element, recognised by a pattern (the fixed and pattern values of
/// the slice and its descendants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceDef {
    /// The slice's element id (`Observation.component:systolic`).
    pub id: &'static str,
    /// The sliced element's path (`Observation.component`).
    pub path: &'static str,
    /// Minimum number of values matching the pattern.
    pub min: u32,
    /// Maximum number of values matching the pattern; `None` for `*`.
    pub max: Option<u32>,
    /// The pattern, as JSON text.
    pub pattern: &'static str,
}

/// A resource profile by canonical url (with or without `|version`).
pub fn profile(url: &str) -> Option<&'static ProfileDef> {
    let url = url.split('|').next().unwrap_or(url);
    profiles::PROFILES
        .binary_search_by(|p| p.url.cmp(url))
        .ok()
        .map(|i| &profiles::PROFILES[i])
}

/// The canonical urls of the profiles [`profile`] knows, sorted.
pub fn profile_urls() -> impl Iterator<Item = &'static str> {
    profiles::PROFILES.iter().map(|p| p.url)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The elements whose path is `parent` plus `.name`, found by scanning the type's
    /// elements (sorted by path).
    fn scan(t: &'static TypeDef, parent: &str) -> Vec<&'static ElementDef> {
        // descendants of `parent` sort right after it: '.' sorts before the letters, digits
        // and '[' that may follow a name
        let start = t.elements.partition_point(|e| e.path <= parent);
        t.elements[start..]
            .iter()
            .map_while(|e| {
                e.path
                    .strip_prefix(parent)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .map(|rest| (e, rest))
            })
            .filter(|(_, rest)| !rest.contains('.'))
            .map(|(e, _)| e)
            .collect()
    }

    /// The table of children gives, for every type and element, what a scan of the type's
    /// elements gives, in the same order.
    #[test]
    fn named_children_are_the_children() {
        let mut parents = 0;
        for t in types::TYPES {
            for parent in std::iter::once(t.name).chain(t.elements.iter().map(|e| e.path)) {
                let scanned: Vec<(&str, &str)> =
                    scan(t, parent).iter().map(|e| (e.path, e.name())).collect();
                let listed: Vec<&str> = children(t.name, parent).map(|e| e.path).collect();
                let paths: Vec<&str> = scanned.iter().map(|(p, _)| *p).collect();
                assert_eq!(listed, paths, "{} {parent}", t.name);
                let table: Vec<(&str, &str)> = named_children(t.name, parent)
                    .iter()
                    .map(|(e, name)| (e.path, *name))
                    .collect();
                assert_eq!(table, scanned, "{} {parent}", t.name);
                parents += usize::from(!table.is_empty());
            }
        }
        assert!(parents > 800, "{parents}");
    }
}
