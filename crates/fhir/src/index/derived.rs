//! Search parameters whose index rows would repeat other parameters' rows of the same
//! resource, so a store need not write them and answers their searches from those rows.
//!
//! Four shapes are recognised from the definitions (nothing is listed by hand):
//!
//! - the same: the parameter's expression is another parameter's of the same type and kind
//!   (`Patient.phonetic` and `Patient.name` are both `Patient.name` in R4); the one whose code
//!   sorts first keeps the rows;
//! - a union: the parameter's expression is the union of other parameters' expressions of
//!   the same type and kind (`Observation.combo-code` is `Observation.code |
//!   Observation.component.code`, the expressions of `code` and `component-code`). Its
//!   values are exactly theirs; for a composite, the same holds when the other composites'
//!   expressions make up its own and their components are evaluated the same way
//!   (`combo-code-value-quantity` is `code-value-quantity` ∪ `component-code-value-quantity`);
//! - a composite on the resource itself (`Observation.code-value-quantity`, expression
//!   `Observation`): one element, so a combination of component values matches exactly when
//!   each component's own parameter (its `definition`) has a matching value, provided that
//!   parameter's expression is the component's expression on the resource.
//!
//! Expressions are compared as sets of `|`-separated parts after spelling `(X as T)` as
//! `X.as(T)`. For quantity parameters a part `… as SampledData` is left out: SampledData
//! gives no quantity row (see [`crate::index`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use super::extract::for_type;
use crate::defs::{self, ParamType, SearchParamDef};
#[cfg(doc)]
use crate::index::IndexValue;

/// Where the values of a derived parameter are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Derivation {
    /// The values are those of these parameters of the same type and kind, together.
    Union(Vec<&'static str>),
    /// A composite on the resource itself: per component, in order, the parameter whose
    /// values are the component's.
    Components(Vec<&'static str>),
    /// The rows of the string parameter `source` converted from the HumanName or Address
    /// part `part` (`family`, `city`, …).
    Part {
        /// The parameter whose rows hold the values.
        source: &'static str,
        /// The element of the HumanName or Address the values come from.
        part: &'static str,
    },
}

/// All derivations, by resource type (only types with some) and parameter code.
type ByType = HashMap<&'static str, HashMap<&'static str, Derivation>>;

fn all() -> &'static ByType {
    static ALL: OnceLock<ByType> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut out = ByType::new();
        for ty in defs::resource_types() {
            let found = of_type(ty);
            if !found.is_empty() {
                out.insert(*ty, found.into_iter().collect());
            }
        }
        out
    })
}

/// How the rows of `code` on `resource_type` are derived, or `None` when the store writes
/// them.
pub fn derivation(resource_type: &str, code: &str) -> Option<&'static Derivation> {
    all().get(resource_type)?.get(code)
}

/// The resource types on which `code` is derived (sorted, usually none).
pub fn deriving_types(code: &str) -> &'static [&'static str] {
    static BY_CODE: OnceLock<HashMap<&'static str, Vec<&'static str>>> = OnceLock::new();
    let by_code = BY_CODE.get_or_init(|| {
        let mut m: HashMap<&'static str, Vec<&'static str>> = HashMap::new();
        for (ty, params) in all() {
            for code in params.keys() {
                m.entry(*code).or_default().push(*ty);
            }
        }
        for types in m.values_mut() {
            types.sort_unstable();
        }
        m
    });
    by_code.get(code).map_or(&[], Vec::as_slice)
}

/// The `|`-separated parts of an expression, each spelled one way (see the module doc).
fn parts(expression: &str, kind: ParamType) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for part in split_top(expression)? {
        let p = unwrap_parens(part);
        let p = match p.rsplit_once(" as ") {
            Some((x, t)) if !t.contains(['(', ')', ' ', '.']) => format!("{x}.as({t})"),
            _ => p.to_owned(),
        };
        if kind == ParamType::Quantity && p.ends_with(".as(SampledData)") {
            continue;
        }
        if p.is_empty() || p.contains(" as ") {
            return None;
        }
        out.push(p);
    }
    out.sort();
    out.dedup();
    Some(out)
}

/// `part` trimmed and without the parentheses that enclose all of it (`((X))` is `X`).
pub(super) fn unwrap_parens(part: &str) -> &str {
    let mut p = part.trim();
    while p.starts_with('(') && p.ends_with(')') && split_top(&p[1..p.len() - 1]).is_some() {
        p = p[1..p.len() - 1].trim();
    }
    p
}

/// Splits at `|` outside parentheses; `None` when the parentheses do not balance.
pub(super) fn split_top(expression: &str) -> Option<Vec<&str>> {
    let mut depth = 0usize;
    let mut start = 0;
    let mut out = Vec::new();
    for (i, c) in expression.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1)?,
            '|' if depth == 0 => {
                out.push(&expression[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    (depth == 0).then(|| {
        out.push(&expression[start..]);
        out
    })
}

/// The components of a composite, as (kind, expression) each.
fn components(def: &SearchParamDef) -> Vec<(ParamType, &'static str)> {
    def.components
        .iter()
        .map(|c| {
            let kind =
                defs::search_param_by_url(c.definition).map_or(ParamType::Special, |d| d.kind);
            (kind, c.expression)
        })
        .collect()
}

/// The derivations of one type.
fn of_type(ty: &'static str) -> Vec<(&'static str, Derivation)> {
    let params: Vec<&'static SearchParamDef> = defs::search_params(ty)
        .filter(|d| d.kind != ParamType::Special && !d.expression.is_empty())
        .filter(|d| !matches!(d.code, "_id" | "_lastUpdated"))
        .collect();
    let parts_of = |d: &SearchParamDef| parts(&for_type(d.expression, ty), d.kind);
    let mut out = Vec::new();
    for p in &params {
        // References are not derived: includes, chains and `_has` read their rows by name.
        if p.kind == ParamType::Reference {
            continue;
        }
        let Some(own) = parts_of(p) else { continue };
        if p.kind == ParamType::String
            && let Some(d) = part_of(&own, &params, &parts_of)
        {
            out.push((p.code, d));
            continue;
        }
        if p.kind == ParamType::Composite && own == [ty] {
            if let Some(d) = root_components(ty, p, &params) {
                out.push((p.code, d));
            }
            continue;
        }
        let same_kind = |q: &SearchParamDef| {
            q.code != p.code
                && q.kind == p.kind
                && (p.kind != ParamType::Composite || components(q) == components(p))
        };
        // another parameter with the very same parts: the one whose code sorts first keeps
        // the rows (`Patient.phonetic` is `Patient.name`, as the definitions spell it)
        if let Some(q) = params
            .iter()
            .find(|q| same_kind(q) && q.code < p.code && parts_of(q).as_ref() == Some(&own))
        {
            out.push((p.code, Derivation::Union(vec![q.code])));
            continue;
        }
        if own.len() < 2 {
            continue;
        }
        // the other parameters whose parts are some of these (fewer, so no cycles)
        let mut covered: Vec<String> = Vec::new();
        let mut sources = Vec::new();
        for q in &params {
            if !same_kind(q) {
                continue;
            }
            let Some(theirs) = parts_of(q) else { continue };
            if !theirs.is_empty()
                && theirs.len() < own.len()
                && theirs.iter().all(|t| own.contains(t))
            {
                sources.push(q.code);
                covered.extend(theirs);
            }
        }
        covered.sort();
        covered.dedup();
        if covered == own {
            out.push((p.code, Derivation::Union(sources)));
        }
    }
    // a source must itself be written, or derived from written rows on the resource
    let derived: Vec<&str> = out.iter().map(|(c, _)| *c).collect();
    out.retain(|(_, d)| match d {
        Derivation::Union(sources) => sources
            .iter()
            .all(|s| !derived.contains(s) || out_is_components(ty, s)),
        Derivation::Components(sources) => sources.iter().all(|s| !derived.contains(s)),
        Derivation::Part { source, .. } => !derived.contains(source),
    });
    out
}

/// A string parameter whose parts are all `X.k` for the parts `X` of one other string
/// parameter, each `X` a HumanName or Address element and `k` one of its parts that string
/// conversion tags ([`super::convert::STRING_PARTS`]).
fn part_of(
    own: &[String],
    params: &[&'static SearchParamDef],
    parts_of: &dyn Fn(&SearchParamDef) -> Option<Vec<String>>,
) -> Option<Derivation> {
    let (_, k) = own.first()?.rsplit_once('.')?;
    let part = *super::convert::STRING_PARTS.iter().find(|p| **p == k)?;
    let mut bases: Vec<String> = Vec::new();
    for p in own {
        let base = p.strip_suffix(part)?.strip_suffix('.')?;
        let (ty, _) = base.split_once('.')?;
        let element = defs::element(ty, base)?;
        if !matches!(element.types, ["HumanName" | "Address"])
            || defs::element(element.types[0], part).is_none()
        {
            return None;
        }
        bases.push(base.to_owned());
    }
    bases.sort();
    bases.dedup();
    let source = params
        .iter()
        .find(|q| q.kind == ParamType::String && parts_of(q).as_ref() == Some(&bases))?;
    Some(Derivation::Part {
        source: source.code,
        part,
    })
}

/// Whether `code` on `ty` is a composite on the resource itself (answered from written rows).
fn out_is_components(ty: &'static str, code: &str) -> bool {
    defs::search_param(ty, code).is_some_and(|d| {
        d.kind == ParamType::Composite
            && parts(&for_type(d.expression, ty), d.kind).is_some_and(|p| p == [ty])
    })
}

/// A composite on the resource itself whose every component is another parameter's values.
fn root_components(
    ty: &'static str,
    p: &SearchParamDef,
    params: &[&'static SearchParamDef],
) -> Option<Derivation> {
    let mut sources = Vec::new();
    for c in p.components {
        let def = params.iter().find(|d| d.url == c.definition)?;
        if matches!(def.kind, ParamType::Composite | ParamType::Reference) {
            return None;
        }
        let want = parts(&format!("{ty}.{}", c.expression), def.kind)?;
        let have = parts(&for_type(def.expression, ty), def.kind)?;
        if want.is_empty() || want != have {
            return None;
        }
        sources.push(def.code);
    }
    (!sources.is_empty()).then_some(Derivation::Components(sources))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observation_duplicates_are_derived() {
        let u = |v: &[&'static str]| Some(Derivation::Union(v.to_vec()));
        let d = |c| derivation("Observation", c).cloned();
        assert_eq!(d("combo-code"), u(&["code", "component-code"]));
        assert_eq!(
            d("combo-value-quantity"),
            u(&["component-value-quantity", "value-quantity"])
        );
        assert_eq!(
            d("combo-value-concept"),
            u(&["component-value-concept", "value-concept"])
        );
        assert_eq!(
            d("code-value-quantity"),
            Some(Derivation::Components(vec!["code", "value-quantity"]))
        );
        assert_eq!(
            d("code-value-concept"),
            Some(Derivation::Components(vec!["code", "value-concept"]))
        );
        assert_eq!(
            d("combo-code-value-quantity"),
            u(&["code-value-quantity", "component-code-value-quantity"])
        );
        // value-string also holds CodeableConcept.text, the component only strings
        assert_eq!(d("code-value-string"), None);
        // each component is its own element: pairs need their own rows
        assert_eq!(d("component-code-value-quantity"), None);
        for written in [
            "code",
            "component-code",
            "value-quantity",
            "subject",
            "patient",
        ] {
            assert_eq!(d(written), None, "{written}");
        }
        assert!(deriving_types("combo-code").contains(&"Observation"));
        assert!(deriving_types("code").is_empty());
    }

    /// A parameter whose expression is another's is answered from that one's rows.
    #[test]
    fn parameters_with_the_same_expression_share_rows() {
        let u = |v: &[&'static str]| Some(Derivation::Union(v.to_vec()));
        for ty in ["Patient", "Practitioner", "Person", "RelatedPerson"] {
            assert_eq!(derivation(ty, "phonetic").cloned(), u(&["name"]), "{ty}");
            assert_eq!(derivation(ty, "name"), None, "{ty}");
        }
        assert_eq!(
            derivation("CapabilityStatement", "version").cloned(),
            u(&["fhirversion"])
        );
        // references keep their own rows (includes, chains and `_has` read them by name)
        assert_eq!(derivation("Coverage", "patient"), None);
        assert_eq!(derivation("Coverage", "beneficiary"), None);
    }

    /// A parameter on one part of a HumanName or Address is answered from the rows of the
    /// parameter on the whole element that came from that part.
    #[test]
    fn name_and_address_parts_are_derived() {
        let part = |source, part| Some(Derivation::Part { source, part });
        for ty in ["Patient", "Practitioner"] {
            assert_eq!(
                derivation(ty, "family").cloned(),
                part("name", "family"),
                "{ty}"
            );
            assert_eq!(
                derivation(ty, "given").cloned(),
                part("name", "given"),
                "{ty}"
            );
        }
        for ty in ["Patient", "Practitioner", "Person", "RelatedPerson"] {
            for (code, p) in [
                ("address-city", "city"),
                ("address-state", "state"),
                ("address-postalcode", "postalCode"),
                ("address-country", "country"),
            ] {
                assert_eq!(
                    derivation(ty, code).cloned(),
                    part("address", p),
                    "{ty}.{code}"
                );
            }
            assert_eq!(derivation(ty, "address"), None, "{ty}");
            // a token: its rows say nothing of the ContactPoint's system
            assert_eq!(derivation(ty, "phone"), None, "{ty}");
            assert_eq!(derivation(ty, "address-use"), None, "{ty}");
        }
        // Location.address is one Address
        assert_eq!(
            derivation("Location", "address-city").cloned(),
            part("address", "city")
        );
        assert!(deriving_types("family").contains(&"Patient"));
    }

    /// Every source of a derivation is a parameter of the type, of the same kind (union), and
    /// is written or itself a composite on the resource.
    #[test]
    fn sources_are_written_parameters() {
        let pairs = all()
            .iter()
            .flat_map(|(ty, params)| params.iter().map(move |(code, d)| (ty, code, d)));
        for (ty, code, d) in pairs {
            let def = defs::search_param(ty, code).expect("defined");
            let sources = match d {
                Derivation::Union(s) | Derivation::Components(s) => s.clone(),
                Derivation::Part { source, .. } => vec![*source],
            };
            assert!(!sources.is_empty(), "{ty}.{code}");
            for s in sources {
                let src = defs::search_param(ty, s).expect("source defined");
                if let Derivation::Union(_) | Derivation::Part { .. } = d {
                    assert_eq!(src.kind, def.kind, "{ty}.{code} from {s}");
                }
                match derivation(ty, s) {
                    None => {}
                    Some(Derivation::Components(_)) => {
                        assert!(matches!(d, Derivation::Union(_)), "{ty}.{code}");
                    }
                    Some(Derivation::Union(_) | Derivation::Part { .. }) => {
                        panic!("{ty}.{code} from derived {s}")
                    }
                }
            }
        }
    }

    #[test]
    fn parts_spell_casts_one_way() {
        assert_eq!(
            parts(
                "(Observation.value as Quantity) | (Observation.value as SampledData)",
                ParamType::Quantity
            ),
            Some(vec!["Observation.value.as(Quantity)".to_owned()])
        );
        assert_eq!(
            parts(
                "Observation.code | Observation.component.code",
                ParamType::Token
            ),
            Some(vec![
                "Observation.code".to_owned(),
                "Observation.component.code".to_owned()
            ])
        );
        assert_eq!(parts("(a | b", ParamType::Token), None);
    }
}
