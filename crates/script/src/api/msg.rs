//! `msg`: the message as the script sees it. Every method calls into Rust on the working
//! [`Data`]; nothing is copied into JavaScript unless the script asks for it (`msg.json()`).

use rquickjs::function::Opt;
use rquickjs::object::Accessor;
use rquickjs::{Coerced, Ctx, FromJs, IntoJs, Object, Value};

use super::convert::{js_to_json, json_to_js};
use super::{Shared, hl7, json_path, method, throw, with_state};
use crate::data::{Data, DataType};

fn only(types: &str, actual: DataType) -> String {
    format!("works on {types} data only; this message is {actual}")
}

fn string_arg<'js>(
    ctx: &Ctx<'js>,
    v: &Value<'js>,
    op: &str,
    what: &str,
) -> rquickjs::Result<String> {
    match v.as_string() {
        Some(s) => s.to_string(),
        None => Err(throw(
            ctx,
            &format!("{op}: {what} must be a string, not {}", v.type_name()),
        )),
    }
}

#[allow(clippy::cast_sign_loss)]
fn index_arg<'js>(ctx: &Ctx<'js>, v: &Value<'js>, op: &str) -> rquickjs::Result<usize> {
    match v.as_number() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n < 1e9 => Ok(n as usize),
        _ => Err(throw(
            ctx,
            &format!(
                "{op}: expected a segment index (0 is MSH), not {}",
                v.type_name()
            ),
        )),
    }
}

/// A value for an HL7 field: text as is, numbers and booleans as JavaScript prints them,
/// `null`/`undefined` as "clear".
fn hl7_text<'js>(ctx: &Ctx<'js>, v: Value<'js>, op: &str) -> rquickjs::Result<Option<String>> {
    if v.is_null() || v.is_undefined() {
        return Ok(None);
    }
    if let Some(s) = v.as_string() {
        return s.to_string().map(Some);
    }
    if v.is_number() || v.is_bool() {
        return Ok(Some(Coerced::<String>::from_js(ctx, v)?.0));
    }
    Err(throw(
        ctx,
        &format!(
            "{op}: an HL7 value must be a string or a number, not {}; to copy a composite \
             value use msg.getRaw/msg.setRaw",
            v.type_name()
        ),
    ))
}

fn opt_string<'js>(ctx: &Ctx<'js>, s: Option<String>) -> rquickjs::Result<Value<'js>> {
    match s {
        Some(s) => s.into_js(ctx),
        None => Ok(Value::new_null(ctx.clone())),
    }
}

fn data_type(shared: &Shared) -> DataType {
    shared
        .try_borrow()
        .map_or(DataType::Raw, |st| st.data.data_type())
}

/// Builds the `msg` object.
#[allow(clippy::too_many_lines)]
pub(super) fn build<'js>(ctx: &Ctx<'js>, shared: &Shared) -> rquickjs::Result<Object<'js>> {
    let msg = Object::new(ctx.clone())?;

    let sh = shared.clone();
    msg.prop(
        "type",
        Accessor::new_get(move || data_type(&sh).as_str()).enumerable(),
    )?;

    let sh = shared.clone();
    method(ctx, &msg, "get", move |ctx: Ctx<'js>, path: Value<'js>| {
        let path = string_arg(&ctx, &path, "msg.get", "the path")?;
        let got = with_state(&ctx, &sh, "msg.get", |st| match &st.data {
            Data::Hl7v2(m) => hl7::get(m, &path).map(Ok),
            Data::Json(v) => Ok(Err(json_path::get(v, &path).cloned())),
            d => Err(only("HL7V2 and JSON", d.data_type())),
        })?;
        match got {
            Ok(text) => opt_string(&ctx, text),
            Err(Some(json)) => json_to_js(&ctx, &json),
            Err(None) => Ok(Value::new_null(ctx.clone())),
        }
    })?;

    let sh = shared.clone();
    method(
        ctx,
        &msg,
        "getRaw",
        move |ctx: Ctx<'js>, path: Value<'js>| {
            let path = string_arg(&ctx, &path, "msg.getRaw", "the path")?;
            let raw = with_state(&ctx, &sh, "msg.getRaw", |st| match &st.data {
                Data::Hl7v2(m) => hl7::get_raw(m, &path),
                d => Err(only("HL7V2", d.data_type())),
            })?;
            opt_string(&ctx, raw)
        },
    )?;

    let sh = shared.clone();
    method(
        ctx,
        &msg,
        "getAll",
        move |ctx: Ctx<'js>, path: Value<'js>| {
            let path = string_arg(&ctx, &path, "msg.getAll", "the path")?;
            with_state(&ctx, &sh, "msg.getAll", |st| match &st.data {
                Data::Hl7v2(m) => hl7::get_all(m, &path),
                d => Err(only("HL7V2", d.data_type())),
            })
        },
    )?;

    let sh = shared.clone();
    method(
        ctx,
        &msg,
        "set",
        move |ctx: Ctx<'js>, path: Value<'js>, value: Value<'js>| {
            let path = string_arg(&ctx, &path, "msg.set", "the path")?;
            match data_type(&sh) {
                DataType::Hl7v2 => {
                    let text = hl7_text(&ctx, value, "msg.set")?;
                    with_state(&ctx, &sh, "msg.set", |st| {
                        let Data::Hl7v2(m) = &mut st.data else {
                            return Err(only("HL7V2", st.data.data_type()));
                        };
                        match &text {
                            Some(t) => hl7::set(m, &path, t)?,
                            None => hl7::clear(m, &path)?,
                        }
                        st.charge(text.map_or(0, |t| t.len()))
                    })
                }
                DataType::Json => {
                    let (json, len) = js_to_json(&ctx, value)?
                        .map_err(|e| throw(&ctx, &format!("msg.set: {e}")))?;
                    with_state(&ctx, &sh, "msg.set", |st| {
                        let Data::Json(v) = &mut st.data else {
                            return Err(only("JSON", st.data.data_type()));
                        };
                        json_path::set(v, &path, json)?;
                        st.charge(len)
                    })
                }
                t => Err(throw(
                    &ctx,
                    &format!("msg.set: {}; use msg.setText", only("HL7V2 and JSON", t)),
                )),
            }
        },
    )?;

    let sh = shared.clone();
    method(
        ctx,
        &msg,
        "setRaw",
        move |ctx: Ctx<'js>, path: Value<'js>, raw: Value<'js>| {
            let path = string_arg(&ctx, &path, "msg.setRaw", "the path")?;
            let raw = string_arg(&ctx, &raw, "msg.setRaw", "the value")?;
            with_state(&ctx, &sh, "msg.setRaw", |st| {
                let Data::Hl7v2(m) = &mut st.data else {
                    return Err(only("HL7V2", st.data.data_type()));
                };
                hl7::set_raw(m, &path, &raw)?;
                st.charge(raw.len())
            })
        },
    )?;

    let sh = shared.clone();
    method(
        ctx,
        &msg,
        "clear",
        move |ctx: Ctx<'js>, path: Value<'js>| {
            let path = string_arg(&ctx, &path, "msg.clear", "the path")?;
            with_state(&ctx, &sh, "msg.clear", |st| match &mut st.data {
                Data::Hl7v2(m) => hl7::clear(m, &path),
                Data::Json(v) => {
                    json_path::remove(v, &path);
                    Ok(())
                }
                d => Err(only("HL7V2 and JSON", d.data_type())),
            })
        },
    )?;

    let sh = shared.clone();
    method(
        ctx,
        &msg,
        "segments",
        move |ctx: Ctx<'js>, id: Value<'js>| {
            let id = string_arg(&ctx, &id, "msg.segments", "the segment id")?;
            with_state(&ctx, &sh, "msg.segments", |st| match &st.data {
                Data::Hl7v2(m) => Ok(hl7::segment_indexes(m, &id)),
                d => Err(only("HL7V2", d.data_type())),
            })
        },
    )?;

    let sh = shared.clone();
    method(ctx, &msg, "segmentIds", move |ctx: Ctx<'js>| {
        with_state(&ctx, &sh, "msg.segmentIds", |st| match &st.data {
            Data::Hl7v2(m) => Ok(hl7::segment_ids(m)),
            d => Err(only("HL7V2", d.data_type())),
        })
    })?;

    let sh = shared.clone();
    method(
        ctx,
        &msg,
        "removeSegments",
        move |ctx: Ctx<'js>, id: Value<'js>| {
            let id = string_arg(&ctx, &id, "msg.removeSegments", "the segment id")?;
            with_state(&ctx, &sh, "msg.removeSegments", |st| match &mut st.data {
                Data::Hl7v2(m) => hl7::remove_segments(m, &id),
                d => Err(only("HL7V2", d.data_type())),
            })
        },
    )?;

    let sh = shared.clone();
    method(
        ctx,
        &msg,
        "removeSegment",
        move |ctx: Ctx<'js>, index: Value<'js>| {
            let index = index_arg(&ctx, &index, "msg.removeSegment")?;
            with_state(&ctx, &sh, "msg.removeSegment", |st| match &mut st.data {
                Data::Hl7v2(m) => hl7::remove_segment(m, index),
                d => Err(only("HL7V2", d.data_type())),
            })
        },
    )?;

    let sh = shared.clone();
    method(
        ctx,
        &msg,
        "addSegment",
        move |ctx: Ctx<'js>, text: Value<'js>, after: Opt<Value<'js>>| {
            let text = string_arg(&ctx, &text, "msg.addSegment", "the segment text")?;
            let after = match after.0 {
                Some(v) if !v.is_undefined() && !v.is_null() => {
                    Some(index_arg(&ctx, &v, "msg.addSegment")?)
                }
                _ => None,
            };
            with_state(&ctx, &sh, "msg.addSegment", |st| {
                let Data::Hl7v2(m) = &mut st.data else {
                    return Err(only("HL7V2", st.data.data_type()));
                };
                let index = hl7::add_segment(m, &text, after)?;
                st.charge(text.len())?;
                Ok(index)
            })
        },
    )?;

    let sh = shared.clone();
    method(ctx, &msg, "toString", move |ctx: Ctx<'js>| {
        with_state(&ctx, &sh, "msg.toString", |st| {
            Ok(match &st.data {
                Data::Hl7v2(m) => hl7::to_text(m),
                Data::Json(v) => v.to_string(),
                Data::Xml(s) | Data::Raw(s) => s.clone(),
            })
        })
    })?;

    for (name, text_ok) in [("json", false), ("toJSON", true)] {
        let sh = shared.clone();
        let op = format!("msg.{name}");
        method(ctx, &msg, name, move |ctx: Ctx<'js>| {
            let json = with_state(&ctx, &sh, &op, |st| match &st.data {
                Data::Hl7v2(m) => hl7::to_json(m),
                Data::Json(v) => Ok(v.clone()),
                Data::Xml(s) | Data::Raw(s) if text_ok => Ok(serde_json::Value::String(s.clone())),
                d => Err(only("HL7V2 and JSON", d.data_type())),
            })?;
            json_to_js(&ctx, &json)
        })?;
    }

    let sh = shared.clone();
    method(
        ctx,
        &msg,
        "setJson",
        move |ctx: Ctx<'js>, value: Value<'js>| {
            let (json, len) =
                js_to_json(&ctx, value)?.map_err(|e| throw(&ctx, &format!("msg.setJson: {e}")))?;
            with_state(&ctx, &sh, "msg.setJson", |st| {
                let Data::Json(v) = &mut st.data else {
                    return Err(format!(
                        "{}; to change the type use msg.replace(value, \"JSON\")",
                        only("JSON", st.data.data_type())
                    ));
                };
                *v = json;
                st.charge(len)
            })
        },
    )?;

    let sh = shared.clone();
    method(
        ctx,
        &msg,
        "setText",
        move |ctx: Ctx<'js>, text: Value<'js>| {
            let text = string_arg(&ctx, &text, "msg.setText", "the text")?;
            with_state(&ctx, &sh, "msg.setText", |st| {
                let t = st.data.data_type();
                st.data = parse_text(t, text)?;
                st.charge(st.data.encode().len())
            })
        },
    )?;

    let sh = shared.clone();
    method(
        ctx,
        &msg,
        "replace",
        move |ctx: Ctx<'js>, value: Value<'js>, data_type: Value<'js>| {
            let name = string_arg(&ctx, &data_type, "msg.replace", "the data type")?;
            let t: DataType = name
                .parse()
                .map_err(|e| throw(&ctx, &format!("msg.replace: {e}")))?;
            let data = if t == DataType::Json && !value.is_string() {
                let (json, _) = js_to_json(&ctx, value)?
                    .map_err(|e| throw(&ctx, &format!("msg.replace: {e}")))?;
                Data::Json(json)
            } else {
                let text = string_arg(&ctx, &value, "msg.replace", "the new data")?;
                parse_text(t, text).map_err(|e| throw(&ctx, &format!("msg.replace: {e}")))?
            };
            with_state(&ctx, &sh, "msg.replace", |st| {
                st.data = data;
                st.charge(st.data.encode().len())
            })
        },
    )?;

    Ok(msg)
}

/// Text read as data of a type.
fn parse_text(t: DataType, text: String) -> Result<Data, String> {
    Ok(match t {
        DataType::Hl7v2 => Data::Hl7v2(hl7::parse(&text)?),
        DataType::Json => {
            Data::Json(serde_json::from_str(&text).map_err(|e| format!("not valid JSON: {e}"))?)
        }
        DataType::Xml => Data::Xml(text),
        DataType::Raw => Data::Raw(text),
    })
}
