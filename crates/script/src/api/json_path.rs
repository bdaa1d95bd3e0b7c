//! Dotted paths into JSON data (`a.b.0.c`) for `msg.get`, `msg.set` and `msg.clear`.
//!
//! A key is an object member, or an array index when the value there is an array. `""` is the
//! whole document. Keys holding dots are reached with `msg.json()` / `msg.setJson()` instead.

use serde_json::{Map, Value};

use super::hl7::ApiResult;

fn keys(path: &str) -> impl Iterator<Item = &str> {
    path.split('.').filter(|_| !path.is_empty())
}

fn index(key: &str) -> Option<usize> {
    key.parse().ok()
}

/// The value at a path, if any.
pub(crate) fn get<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    keys(path).try_fold(root, |v, k| match v {
        Value::Object(m) => m.get(k),
        Value::Array(a) => a.get(index(k)?),
        _ => None,
    })
}

/// Sets the value at a path. Missing members on the way are created as objects (also in
/// place of `null`); an array index may name an existing element or the next one (appended).
pub(crate) fn set(root: &mut Value, path: &str, value: Value) -> ApiResult<()> {
    let keys: Vec<&str> = keys(path).collect();
    let Some((last, parents)) = keys.split_last() else {
        *root = value;
        return Ok(());
    };
    let mut cur = root;
    for (depth, k) in parents.iter().enumerate() {
        cur = child_mut(cur, k, &keys[..=depth])?;
    }
    match cur {
        Value::Null => {
            let mut m = Map::new();
            m.insert((*last).to_owned(), value);
            *cur = Value::Object(m);
        }
        Value::Object(m) => {
            m.insert((*last).to_owned(), value);
        }
        Value::Array(a) => match index(last) {
            Some(i) if i < a.len() => a[i] = value,
            Some(i) if i == a.len() => a.push(value),
            _ => return Err(bad_index(path, last, a.len())),
        },
        other => return Err(not_container(path, &keys[..keys.len() - 1], other)),
    }
    Ok(())
}

fn child_mut<'a>(cur: &'a mut Value, k: &str, so_far: &[&str]) -> ApiResult<&'a mut Value> {
    if cur.is_null() {
        *cur = Value::Object(Map::new());
    }
    match cur {
        Value::Object(m) => Ok(m.entry(k.to_owned()).or_insert(Value::Null)),
        Value::Array(a) => {
            let len = a.len();
            match index(k) {
                Some(i) if i < len => Ok(&mut a[i]),
                Some(i) if i == len => {
                    a.push(Value::Null);
                    Ok(&mut a[i])
                }
                _ => Err(bad_index(&so_far.join("."), k, len)),
            }
        }
        other => Err(not_container(
            &so_far.join("."),
            &so_far[..so_far.len() - 1],
            other,
        )),
    }
}

fn bad_index(path: &str, key: &str, len: usize) -> String {
    format!("{path:?}: {key:?} is not an index of an array of {len} (0 to {len} to append)")
}

fn not_container(path: &str, parent: &[&str], v: &Value) -> String {
    let what = match v {
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        _ => "not an object",
    };
    format!(
        "{path:?}: {:?} is {what}, not an object or array",
        parent.join(".")
    )
}

/// Removes the member or array element at a path; `false` when there was none.
pub(crate) fn remove(root: &mut Value, path: &str) -> bool {
    let keys: Vec<&str> = keys(path).collect();
    let Some((last, parents)) = keys.split_last() else {
        *root = Value::Null;
        return true;
    };
    let mut cur = root;
    for k in parents {
        let next = match cur {
            Value::Object(m) => m.get_mut(*k),
            Value::Array(a) => index(k).and_then(|i| a.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match cur {
        Value::Object(m) => m.remove(*last).is_some(),
        Value::Array(a) => match index(last) {
            Some(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gets_by_dotted_path() {
        let v = json!({"a": {"b": [{"c": 1}, {"c": 2}]}, "x.y": 3});
        assert_eq!(get(&v, "a.b.1.c"), Some(&json!(2)));
        assert_eq!(get(&v, "a.b.2.c"), None);
        assert_eq!(get(&v, "a.b.x"), None);
        assert_eq!(get(&v, ""), Some(&v));
        assert_eq!(get(&v, "x.y"), None);
    }

    #[test]
    fn sets_creating_objects() {
        let mut v = json!({"a": {"b": [1]}});
        set(&mut v, "a.b.0", json!(5)).unwrap();
        set(&mut v, "a.b.1", json!(6)).unwrap();
        set(&mut v, "n.m", json!("x")).unwrap();
        set(&mut v, "a.b.2.k", json!(true)).unwrap();
        assert_eq!(v, json!({"a": {"b": [5, 6, {"k": true}]}, "n": {"m": "x"}}));
        assert!(
            set(&mut v, "a.b.9", json!(0))
                .unwrap_err()
                .contains("index")
        );
        assert!(
            set(&mut v, "n.m.z", json!(0))
                .unwrap_err()
                .contains("a string")
        );
        set(&mut v, "", json!([1])).unwrap();
        assert_eq!(v, json!([1]));
        let mut n = Value::Null;
        set(&mut n, "a", json!(1)).unwrap();
        assert_eq!(n, json!({"a": 1}));
    }

    #[test]
    fn removes() {
        let mut v = json!({"a": {"b": [1, 2, 3]}});
        assert!(remove(&mut v, "a.b.1"));
        assert!(!remove(&mut v, "a.c"));
        assert!(!remove(&mut v, "z.c"));
        assert_eq!(v, json!({"a": {"b": [1, 3]}}));
        assert!(remove(&mut v, "a"));
        assert_eq!(v, json!({}));
    }
}
