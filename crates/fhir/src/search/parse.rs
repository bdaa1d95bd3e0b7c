//! From URL parameters to a [`SearchRequest`], checked against the search parameter
//! definitions.

use std::fmt::Write as _;

use super::{
    Filter, Include, Predicate, Prefix, SearchError, SearchOptions, SearchRequest, SortKey,
    StringMode, Test, TokenSystem, TotalMode, UriMode,
};
use crate::defs::{self, ParamType, SearchParamDef};
use crate::index::{date_range, normalize, number_range};

/// What a system-wide search calls the set of types, in error texts.
const ALL_TYPES: &str = "all resource types";

/// Parameters that shape the result, not the matches: passed on in
/// [`SearchRequest::result_params`].
const RESULT_PARAMS: &[&str] = &["_summary", "_elements", "_format", "_pretty"];

/// Defined parameters this server does not implement.
const UNSUPPORTED: &[&str] = &[
    "_text",
    "_content",
    "_list",
    "_query",
    "_filter",
    "_type",
    "_contained",
    "_containedType",
];

/// Parses a search: `resource_type` is the type searched (`None` for a system-wide search),
/// `params` the query's key/value pairs, already URL-decoded, in order.
///
/// Repeated keys combine with AND, the comma-separated values of one key with OR (`\\,` is a
/// literal comma; `\\|`, `\\$` and `\\\\` escape the other separators). An empty value is
/// ignored (`name=`), as are empty alternatives (`code=a,`). `_count` (lowered to
/// `options.max_count`), `_offset`, `_total`, `_sort`, `_include` and `_revinclude` fill
/// their fields; `_summary`, `_elements`, `_format` and `_pretty` are passed on untouched in
/// [`SearchRequest::result_params`]. Every other key must be a search parameter of the type
/// (a system-wide search knows the parameters of `Resource`), with chains
/// (`subject:Patient.name`, `subject.organization.name`) and reverse chains
/// (`_has:Observation:patient:code`, nested) resolved through the parameters' targets.
pub fn parse(
    resource_type: Option<&str>,
    params: &[(String, String)],
    options: &SearchOptions,
) -> Result<SearchRequest, SearchError> {
    if let Some(ty) = resource_type
        && !defs::is_resource_type(ty)
    {
        return Err(SearchError::UnknownResourceType(ty.to_owned()));
    }
    let mut request = SearchRequest {
        resource_type: resource_type.map(str::to_owned),
        count: options.default_count.min(options.max_count),
        total: TotalMode::Auto,
        ..SearchRequest::default()
    };
    let mut seen_count = false;
    let mut seen_offset = false;
    let mut seen_total = false;
    let mut seen_sort = false;
    for (key, value) in params {
        let (name, modifier) = match key.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (key.as_str(), None),
        };
        let once = |seen: &mut bool| -> Result<(), SearchError> {
            if modifier.is_some() {
                return Err(SearchError::InvalidParameter {
                    param: key.clone(),
                    reason: "this parameter takes no modifier".into(),
                });
            }
            if std::mem::replace(seen, true) {
                return Err(SearchError::InvalidParameter {
                    param: key.clone(),
                    reason: "may appear only once".into(),
                });
            }
            Ok(())
        };
        match name {
            "_count" => {
                once(&mut seen_count)?;
                request.count = parse_usize(key, value)?.min(options.max_count);
            }
            "_offset" => {
                once(&mut seen_offset)?;
                request.offset = parse_usize(key, value)?;
            }
            "_total" => {
                once(&mut seen_total)?;
                request.total = match value.as_str() {
                    "none" => TotalMode::None,
                    "estimate" => TotalMode::Estimate,
                    "accurate" => TotalMode::Accurate,
                    _ => return Err(invalid(key, value, "expected none, estimate or accurate")),
                };
            }
            "_sort" => {
                once(&mut seen_sort)?;
                request.sort = parse_sort(resource_type, key, value)?;
            }
            "_include" | "_revinclude" => {
                let iterate = match modifier {
                    None => false,
                    Some("iterate" | "recurse") => true,
                    Some(m) => {
                        return Err(SearchError::UnknownModifier {
                            param: name.to_owned(),
                            modifier: m.to_owned(),
                        });
                    }
                };
                if value.is_empty() {
                    continue;
                }
                let include = parse_include(resource_type, key, value, iterate)?;
                if name == "_include" {
                    request.include.push(include);
                } else {
                    request.revinclude.push(include);
                }
            }
            _ if RESULT_PARAMS.contains(&name) => {
                request.result_params.push((key.clone(), value.clone()));
            }
            _ => {
                let any = predicates(resource_type, key, value)?;
                if !any.is_empty() {
                    request.filters.push(Filter { any });
                }
            }
        }
    }
    Ok(request)
}

/// A stable text of a search's type and filters (not its paging, sort or includes): equal
/// for two searches that select the same resources by the same filters, whatever the order
/// of their parameters or of the comma-separated values. Meant as the key of the advisory
/// lock that serializes conditional creates; it is stable within one build of the server
/// (it spells the parsed filters), not a format to store.
pub fn canonical_key(request: &SearchRequest) -> String {
    let mut filters: Vec<String> = request
        .filters
        .iter()
        .map(|f| {
            let mut any: Vec<String> = f.any.iter().map(|p| format!("{p:?}")).collect();
            any.sort_unstable();
            any.dedup();
            any.join(" OR ")
        })
        .collect();
    filters.sort_unstable();
    filters.dedup();
    let mut out = request.resource_type.clone().unwrap_or_default();
    out.push('?');
    for (i, f) in filters.iter().enumerate() {
        if i > 0 {
            out.push_str(" AND ");
        }
        let _ = write!(out, "({f})");
    }
    out
}

fn invalid(param: &str, value: &str, reason: impl Into<String>) -> SearchError {
    SearchError::InvalidValue {
        param: param.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn bad_param(param: &str, reason: impl Into<String>) -> SearchError {
    SearchError::InvalidParameter {
        param: param.to_owned(),
        reason: reason.into(),
    }
}

fn parse_usize(param: &str, value: &str) -> Result<usize, SearchError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(param, value, "expected a whole number"));
    }
    value
        .parse()
        .map_err(|_| invalid(param, value, "number too large"))
}

/// The definition of `code` for a type, or (system-wide search) the `Resource` parameter of
/// that code.
fn param_def(resource_type: Option<&str>, code: &str) -> Option<&'static SearchParamDef> {
    match resource_type {
        Some(ty) => defs::search_param(ty, code),
        // Bundle has Resource's parameters but not DomainResource's.
        None => defs::search_param("Bundle", code)
            .filter(|d| d.url.contains("/SearchParameter/Resource-")),
    }
}

fn unknown(resource_type: Option<&str>, param: &str) -> SearchError {
    SearchError::UnknownParameter {
        resource_type: resource_type.unwrap_or(ALL_TYPES).to_owned(),
        param: param.to_owned(),
    }
}

fn parse_sort(
    resource_type: Option<&str>,
    key: &str,
    value: &str,
) -> Result<Vec<SortKey>, SearchError> {
    let mut keys = Vec::new();
    for item in value.split(',').filter(|s| !s.is_empty()) {
        let (descending, code) = match item.strip_prefix('-') {
            Some(code) => (true, code),
            None => (false, item),
        };
        let def = param_def(resource_type, code).ok_or_else(|| unknown(resource_type, code))?;
        if matches!(def.kind, ParamType::Composite | ParamType::Special) {
            return Err(invalid(
                key,
                item,
                "cannot sort on a composite or special parameter",
            ));
        }
        if keys.iter().any(|k: &SortKey| k.param == code) {
            return Err(invalid(key, item, "parameter sorted on twice"));
        }
        keys.push(SortKey {
            param: code.to_owned(),
            descending,
            kind: def.kind,
        });
    }
    Ok(keys)
}

fn parse_include(
    resource_type: Option<&str>,
    key: &str,
    value: &str,
    iterate: bool,
) -> Result<Include, SearchError> {
    if value == "*" {
        let ty = resource_type
            .ok_or_else(|| invalid(key, value, "'*' needs a resource type; use Type:*"))?;
        return Ok(Include {
            source_type: ty.to_owned(),
            param: "*".into(),
            target_type: None,
            iterate,
        });
    }
    let mut parts = value.split(':');
    let source = parts.next().unwrap_or_default();
    let param = parts
        .next()
        .ok_or_else(|| invalid(key, value, "expected SourceType:parameter[:TargetType]"))?;
    let target = parts.next();
    if parts.next().is_some() {
        return Err(invalid(
            key,
            value,
            "expected SourceType:parameter[:TargetType]",
        ));
    }
    if !defs::is_resource_type(source) {
        return Err(invalid(
            key,
            value,
            format!("unknown resource type '{source}'"),
        ));
    }
    let targets: &[&str] = if param == "*" {
        &[]
    } else {
        let def = defs::search_param(source, param).ok_or_else(|| {
            invalid(
                key,
                value,
                format!("{source} has no search parameter '{param}'"),
            )
        })?;
        if def.kind != ParamType::Reference {
            return Err(invalid(
                key,
                value,
                format!("'{param}' is not a reference parameter"),
            ));
        }
        def.targets
    };
    if let Some(t) = target
        && (!defs::is_resource_type(t) || !targets.is_empty() && !targets.contains(&t))
    {
        return Err(invalid(
            key,
            value,
            format!("'{param}' cannot point to '{t}'"),
        ));
    }
    Ok(Include {
        source_type: source.to_owned(),
        param: param.to_owned(),
        target_type: target.map(str::to_owned),
        iterate,
    })
}

/// The predicates (OR) of one `key=value` pair; empty when every value is empty.
fn predicates(
    resource_type: Option<&str>,
    key: &str,
    value: &str,
) -> Result<Vec<Predicate>, SearchError> {
    if key == "_has" || key.starts_with("_has:") {
        return has(resource_type, key, value);
    }
    let (head, chain) = match key.split_once('.') {
        Some((h, rest)) => (h, Some(rest)),
        None => (key, None),
    };
    let (code, modifier) = match head.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (head, None),
    };
    if UNSUPPORTED.contains(&code) {
        return Err(SearchError::Unsupported {
            param: key.to_owned(),
            reason: "this server does not implement it".into(),
        });
    }
    let def = param_def(resource_type, code).ok_or_else(|| unknown(resource_type, code))?;
    if def.kind == ParamType::Special || def.expression.is_empty() {
        return Err(SearchError::Unsupported {
            param: key.to_owned(),
            reason: "this server does not implement it".into(),
        });
    }
    if let Some(rest) = chain {
        return chained(def, key, modifier, rest, value);
    }
    if modifier == Some("missing") {
        let missing = match value {
            "true" => true,
            "false" => false,
            "" => return Ok(Vec::new()),
            _ => return Err(invalid(key, value, "expected true or false")),
        };
        return Ok(vec![Predicate {
            param: code.to_owned(),
            test: Test::Missing {
                missing,
                kind: def.kind,
            },
        }]);
    }
    let mut out = Vec::new();
    for alt in split_escaped(value, ',') {
        if alt.is_empty() {
            continue;
        }
        let test = value_test(def, key, modifier, alt)?;
        out.push(Predicate {
            param: code.to_owned(),
            test,
        });
    }
    Ok(out)
}

/// `ref[:Type].rest=value`.
fn chained(
    def: &'static SearchParamDef,
    key: &str,
    modifier: Option<&str>,
    rest: &str,
    value: &str,
) -> Result<Vec<Predicate>, SearchError> {
    if def.kind != ParamType::Reference {
        return Err(bad_param(
            key,
            format!(
                "'{}' is not a reference parameter, so it cannot be chained",
                def.code
            ),
        ));
    }
    let mut candidates: Vec<&str> = match modifier {
        None => def.targets.to_vec(),
        Some(t) if defs::is_resource_type(t) => {
            if !def.targets.is_empty() && !def.targets.contains(&t) {
                return Err(bad_param(
                    key,
                    format!("'{}' cannot point to '{t}'", def.code),
                ));
            }
            vec![t]
        }
        Some(m) => {
            return Err(SearchError::UnknownModifier {
                param: def.code.to_owned(),
                modifier: m.to_owned(),
            });
        }
    };
    if candidates.is_empty() {
        candidates = defs::resource_types().to_vec();
    }
    let next_code = rest.split(['.', ':']).next().unwrap_or_default();
    let mut kind = None;
    candidates.retain(|t| match defs::search_param(t, next_code) {
        Some(d) if kind.is_none_or(|k| k == d.kind) => {
            kind = Some(d.kind);
            true
        }
        _ => false,
    });
    let Some(first) = candidates.first() else {
        return Err(SearchError::UnknownParameter {
            resource_type: format!("the targets of '{}'", def.code),
            param: next_code.to_owned(),
        });
    };
    let inner = predicates(Some(first), rest, value)?;
    let target_types: Vec<String> = candidates.iter().map(|t| (*t).to_owned()).collect();
    Ok(inner
        .into_iter()
        .map(|p| Predicate {
            param: def.code.to_owned(),
            test: Test::Chain {
                target_types: target_types.clone(),
                predicate: Box::new(p),
            },
        })
        .collect())
}

/// `_has:Type:ref:rest=value`.
fn has(resource_type: Option<&str>, key: &str, value: &str) -> Result<Vec<Predicate>, SearchError> {
    let mut parts = key.splitn(4, ':');
    let _ = parts.next();
    let (Some(source), Some(reference), Some(rest)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_param(key, "expected _has:Type:reference:parameter"));
    };
    if !defs::is_resource_type(source) {
        return Err(bad_param(key, format!("unknown resource type '{source}'")));
    }
    let def =
        defs::search_param(source, reference).ok_or_else(|| unknown(Some(source), reference))?;
    if def.kind != ParamType::Reference {
        return Err(bad_param(
            key,
            format!("'{reference}' of {source} is not a reference parameter"),
        ));
    }
    if let Some(ty) = resource_type
        && !def.targets.is_empty()
        && !def.targets.contains(&ty)
    {
        return Err(bad_param(
            key,
            format!("'{reference}' of {source} cannot point to {ty}"),
        ));
    }
    if rest.is_empty() {
        return Err(bad_param(key, "expected _has:Type:reference:parameter"));
    }
    let inner = predicates(Some(source), rest, value)?;
    Ok(inner
        .into_iter()
        .map(|p| Predicate {
            param: "_has".to_owned(),
            test: Test::Has {
                source_type: source.to_owned(),
                reference_param: reference.to_owned(),
                predicate: Box::new(p),
            },
        })
        .collect())
}

/// Splits at unescaped `sep`, keeping escapes in the parts.
fn split_escaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Removes the escapes of `\,`, `\|`, `\$` and `\\`; other backslashes stay.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek()
            && matches!(next, ',' | '|' | '$' | '\\')
        {
            out.push(next);
            let _ = chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

fn no_modifier(def: &SearchParamDef, modifier: Option<&str>) -> Result<(), SearchError> {
    match modifier {
        None => Ok(()),
        Some(m) => Err(SearchError::UnknownModifier {
            param: def.code.to_owned(),
            modifier: m.to_owned(),
        }),
    }
}

/// The test of one (still escaped) value of a parameter.
fn value_test(
    def: &SearchParamDef,
    key: &str,
    modifier: Option<&str>,
    raw: &str,
) -> Result<Test, SearchError> {
    match def.kind {
        ParamType::String => {
            let text = unescape(raw);
            let mode = match modifier {
                None => StringMode::StartsWith,
                Some("exact") => StringMode::Exact,
                Some("contains") => StringMode::Contains,
                Some("text") => {
                    return Err(SearchError::Unsupported {
                        param: key.to_owned(),
                        reason: "':text' on a string parameter is not implemented".into(),
                    });
                }
                Some(m) => {
                    return Err(SearchError::UnknownModifier {
                        param: def.code.to_owned(),
                        modifier: m.to_owned(),
                    });
                }
            };
            let value = if mode == StringMode::Exact {
                text
            } else {
                normalize(&text)
            };
            Ok(Test::String { value, mode })
        }
        ParamType::Token => token_test(def, key, modifier, raw),
        ParamType::Reference => reference_test(def, key, modifier, raw),
        ParamType::Date => {
            no_modifier(def, modifier)?;
            date_test(key, raw)
        }
        ParamType::Number => {
            no_modifier(def, modifier)?;
            let (prefix, text) = split_prefix(raw);
            let (value, low, high) =
                number_range(text).ok_or_else(|| invalid(key, raw, "expected a number"))?;
            Ok(Test::Number {
                prefix,
                value,
                low,
                high,
            })
        }
        ParamType::Quantity => {
            no_modifier(def, modifier)?;
            quantity_test(key, raw)
        }
        ParamType::Uri => {
            let mode = match modifier {
                None => UriMode::Exact,
                Some("above") => UriMode::Above,
                Some("below") => UriMode::Below,
                Some(m) => {
                    return Err(SearchError::UnknownModifier {
                        param: def.code.to_owned(),
                        modifier: m.to_owned(),
                    });
                }
            };
            Ok(Test::Uri {
                value: unescape(raw),
                mode,
            })
        }
        ParamType::Composite => {
            no_modifier(def, modifier)?;
            composite_test(def, key, raw)
        }
        ParamType::Special => Err(SearchError::Unsupported {
            param: key.to_owned(),
            reason: "this server does not implement it".into(),
        }),
    }
}

fn split_prefix(raw: &str) -> (Prefix, &str) {
    let prefix = match raw.get(..2) {
        Some("eq") => Prefix::Eq,
        Some("ne") => Prefix::Ne,
        Some("gt") => Prefix::Gt,
        Some("lt") => Prefix::Lt,
        Some("ge") => Prefix::Ge,
        Some("le") => Prefix::Le,
        Some("sa") => Prefix::Sa,
        Some("eb") => Prefix::Eb,
        Some("ap") => Prefix::Ap,
        _ => return (Prefix::Eq, raw),
    };
    (prefix, &raw[2..])
}

fn date_test(key: &str, raw: &str) -> Result<Test, SearchError> {
    let (prefix, text) = split_prefix(raw);
    let (low, high) = date_range(text).ok_or_else(|| {
        invalid(
            key,
            raw,
            "expected [prefix]YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|±hh:mm]]]]",
        )
    })?;
    Ok(Test::Date { prefix, low, high })
}

fn quantity_test(key: &str, raw: &str) -> Result<Test, SearchError> {
    let parts = split_escaped(raw, '|');
    let (number, system, code) = match parts.as_slice() {
        [n] => (*n, None, None),
        [n, s, c] => (*n, Some(unescape(s)), Some(unescape(c))),
        _ => {
            return Err(invalid(key, raw, "expected [prefix]number[|system|code]"));
        }
    };
    let (prefix, text) = split_prefix(number);
    let (value, low, high) =
        number_range(text).ok_or_else(|| invalid(key, raw, "expected a number before '|'"))?;
    Ok(Test::Quantity {
        prefix,
        value,
        low,
        high,
        system: system.filter(|s| !s.is_empty()),
        code: code.filter(|c| !c.is_empty()),
    })
}

fn token_test(
    def: &SearchParamDef,
    key: &str,
    modifier: Option<&str>,
    raw: &str,
) -> Result<Test, SearchError> {
    let negate = match modifier {
        None => false,
        Some("not") => true,
        Some("text") => return Ok(Test::TokenText(normalize(&unescape(raw)))),
        Some("of-type") => {
            let parts = split_escaped(raw, '|');
            let [s, c, v] = parts.as_slice() else {
                return Err(invalid(key, raw, "expected type-system|type-code|value"));
            };
            if s.is_empty() || c.is_empty() || v.is_empty() {
                return Err(invalid(key, raw, "expected type-system|type-code|value"));
            }
            return Ok(Test::OfType {
                type_system: unescape(s),
                type_code: unescape(c),
                value: unescape(v),
            });
        }
        Some(m @ ("above" | "below" | "in" | "not-in")) => {
            return Err(SearchError::Unsupported {
                param: key.to_owned(),
                reason: format!("':{m}' needs terminology services this server does not have"),
            });
        }
        Some(m) => {
            return Err(SearchError::UnknownModifier {
                param: def.code.to_owned(),
                modifier: m.to_owned(),
            });
        }
    };
    let parts = split_escaped(raw, '|');
    let (system, code) = match parts.as_slice() {
        [c] => (TokenSystem::Any, Some(unescape(c))),
        ["", c] => (TokenSystem::None, Some(unescape(c))),
        [s, ""] => (TokenSystem::Is(unescape(s)), None),
        [s, c] => (TokenSystem::Is(unescape(s)), Some(unescape(c))),
        _ => return Err(invalid(key, raw, "expected [system|]code")),
    };
    if system == TokenSystem::None && code.as_deref() == Some("") {
        return Err(invalid(key, raw, "expected [system|]code"));
    }
    Ok(Test::Token {
        system,
        code,
        negate,
    })
}

/// Whether a reference value is an absolute URL (or URN), compared as written.
fn is_absolute(value: &str) -> bool {
    value.contains("://") || value.starts_with("urn:")
}

fn reference_test(
    def: &SearchParamDef,
    key: &str,
    modifier: Option<&str>,
    raw: &str,
) -> Result<Test, SearchError> {
    let value = unescape(raw);
    let type_modifier = match modifier {
        None => None,
        Some("identifier") => {
            let parts = split_escaped(raw, '|');
            return match parts.as_slice() {
                [v] if !v.is_empty() => Ok(Test::ReferenceIdentifier {
                    system: None,
                    value: unescape(v),
                }),
                [s, v] if !v.is_empty() => Ok(Test::ReferenceIdentifier {
                    system: Some(unescape(s)).filter(|s| !s.is_empty()),
                    value: unescape(v),
                }),
                _ => Err(invalid(key, raw, "expected [system|]value")),
            };
        }
        Some(m @ ("above" | "below")) => {
            return Err(SearchError::Unsupported {
                param: key.to_owned(),
                reason: format!("':{m}' on a reference is not implemented"),
            });
        }
        Some(t) if defs::is_resource_type(t) => {
            if !def.targets.is_empty() && !def.targets.contains(&t) {
                return Err(bad_param(
                    key,
                    format!("'{}' cannot point to '{t}'", def.code),
                ));
            }
            Some(t)
        }
        Some(m) => {
            return Err(SearchError::UnknownModifier {
                param: def.code.to_owned(),
                modifier: m.to_owned(),
            });
        }
    };
    if is_absolute(&value) {
        if type_modifier.is_some() {
            return Err(invalid(key, raw, "a type modifier needs an id or Type/id"));
        }
        return Ok(Test::ReferenceUrl(value));
    }
    let segments: Vec<&str> = value.split('/').collect();
    let (ty, id) = match segments.as_slice() {
        [id] => (type_modifier, *id),
        [ty, id] | [ty, id, "_history", _] => (Some(*ty), *id),
        _ => return Err(invalid(key, raw, "expected id, Type/id or an absolute URL")),
    };
    if id.is_empty() {
        return Err(invalid(key, raw, "expected id, Type/id or an absolute URL"));
    }
    if let Some(ty) = ty {
        if !defs::is_resource_type(ty) {
            return Err(invalid(key, raw, format!("unknown resource type '{ty}'")));
        }
        if type_modifier.is_some_and(|m| m != ty) {
            return Err(invalid(
                key,
                raw,
                "the type modifier and the value's type differ",
            ));
        }
        if !def.targets.is_empty() && !def.targets.contains(&ty) {
            return Err(invalid(
                key,
                raw,
                format!("'{}' cannot point to '{ty}'", def.code),
            ));
        }
    }
    Ok(Test::Reference {
        target_type: ty.map(str::to_owned),
        id: id.to_owned(),
    })
}

fn composite_test(def: &SearchParamDef, key: &str, raw: &str) -> Result<Test, SearchError> {
    let parts = split_escaped(raw, '$');
    if parts.len() != def.components.len() {
        return Err(invalid(
            key,
            raw,
            format!("expected {} values separated by '$'", def.components.len()),
        ));
    }
    let mut tests = Vec::with_capacity(parts.len());
    for (part, component) in parts.iter().zip(def.components) {
        let Some(cdef) = defs::search_param_by_url(component.definition) else {
            return Err(SearchError::Unsupported {
                param: key.to_owned(),
                reason: "a component's definition is unknown".into(),
            });
        };
        if cdef.kind == ParamType::Composite {
            return Err(SearchError::Unsupported {
                param: key.to_owned(),
                reason: "nested composite parameters are not implemented".into(),
            });
        }
        if part.is_empty() {
            return Err(invalid(key, raw, "every component needs a value"));
        }
        tests.push(value_test(cdef, key, None, part)?);
    }
    Ok(Test::Composite(tests))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(split_escaped(r"a\,b,c", ','), vec![r"a\,b", "c"]);
        assert_eq!(unescape(r"a\,b\|c\$d\\e\x"), r"a,b|c$d\e\x");
        assert_eq!(split_escaped("", ','), vec![""]);
        assert_eq!(split_escaped(r"a\\,b", ','), vec![r"a\\", "b"]);
    }

    #[test]
    fn prefixes() {
        assert_eq!(split_prefix("ge2024"), (Prefix::Ge, "2024"));
        assert_eq!(split_prefix("2024"), (Prefix::Eq, "2024"));
        assert_eq!(split_prefix("é"), (Prefix::Eq, "é"));
        assert_eq!(split_prefix("-1"), (Prefix::Eq, "-1"));
    }
}
