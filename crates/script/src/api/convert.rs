//! JSON values between Rust (`serde_json`) and JavaScript. Containers go through JSON text,
//! which QuickJS parses and prints natively; scalars are converted directly.

use rquickjs::{Ctx, Object, Value};
use serde_json::{Map, Number};

/// A JSON value as a JavaScript value.
pub(crate) fn json_to_js<'js>(
    ctx: &Ctx<'js>,
    v: &serde_json::Value,
) -> rquickjs::Result<Value<'js>> {
    Ok(match v {
        serde_json::Value::Null => Value::new_null(ctx.clone()),
        serde_json::Value::Bool(b) => Value::new_bool(ctx.clone(), *b),
        serde_json::Value::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
            Some(i) => Value::new_int(ctx.clone(), i),
            None => Value::new_number(ctx.clone(), n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => rquickjs::String::from_str(ctx.clone(), s)?.into_value(),
        container => ctx.json_parse(container.to_string())?,
    })
}

/// A JavaScript value as JSON, with the size of its JSON text (roughly, for scalars).
///
/// `undefined` becomes `null` and so do non-finite numbers, as in `JSON.stringify`. A value
/// JSON cannot hold at all (a function, a symbol) is an `Err` message; a BigInt or a cycle
/// throws from `JSON.stringify` itself.
pub(crate) fn js_to_json<'js>(
    ctx: &Ctx<'js>,
    v: Value<'js>,
) -> rquickjs::Result<Result<(serde_json::Value, usize), String>> {
    let scalar = if v.is_null() || v.is_undefined() {
        Some(serde_json::Value::Null)
    } else if let Some(b) = v.as_bool() {
        Some(serde_json::Value::Bool(b))
    } else if let Some(i) = v.as_int() {
        Some(serde_json::Value::Number(i.into()))
    } else if let Some(f) = v.as_float() {
        Some(float_to_json(f))
    } else if let Some(s) = v.as_string() {
        Some(serde_json::Value::String(s.to_string()?))
    } else {
        None
    };
    if let Some(s) = scalar {
        let len = match &s {
            serde_json::Value::String(t) => t.len() + 2,
            _ => 8,
        };
        return Ok(Ok((s, len)));
    }
    let Some(text) = ctx.json_stringify(v)? else {
        return Ok(Err("the value cannot be represented as JSON".into()));
    };
    let text = text.to_string()?;
    Ok(serde_json::from_str(&text)
        .map(|j| (j, text.len()))
        .map_err(|e| format!("the value's JSON could not be read back: {e}")))
}

/// A JavaScript number as JSON: whole numbers as integers (`3`, not `3.0`, as
/// `JSON.stringify` prints them), non-finite ones as `null`.
#[allow(clippy::cast_precision_loss)]
fn float_to_json(f: f64) -> serde_json::Value {
    // 2^53: beyond it not every integer is a float, and i64 casts would saturate
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if f.fract() == 0.0 && f.abs() <= EXACT {
        return serde_json::Value::Number((f as i64).into());
    }
    Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// A map as a fresh JavaScript object.
pub(crate) fn map_to_js<'js>(
    ctx: &Ctx<'js>,
    map: &Map<String, serde_json::Value>,
) -> rquickjs::Result<Object<'js>> {
    if map.is_empty() {
        return Object::new(ctx.clone());
    }
    let text = serde_json::to_string(map).unwrap_or_else(|_| "{}".into());
    let v = ctx.json_parse(text)?;
    v.into_object()
        .ok_or_else(|| rquickjs::Error::new_from_js("value", "object"))
}

/// A JavaScript object (a map after the script used it) as a JSON map; members JSON cannot
/// hold (functions, `undefined`) are left out, as `JSON.stringify` does.
pub(crate) fn js_to_map<'js>(
    ctx: &Ctx<'js>,
    obj: Object<'js>,
) -> rquickjs::Result<Result<Map<String, serde_json::Value>, String>> {
    let Some(text) = ctx.json_stringify(obj)? else {
        return Ok(Ok(Map::new()));
    };
    let text = text.to_string()?;
    Ok(serde_json::from_str(&text).map_err(|e| e.to_string()))
}
