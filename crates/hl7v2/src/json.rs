//! A JSON view of a message, for scripts and the CLI.
//!
//! ```json
//! {
//!   "delimiters": "|^~\\&",
//!   "charset": "UNICODE UTF-8",
//!   "segments": [
//!     {"id": "MSH", "fields": ["|", "^~\\&", "LAB", "", "", "", "20240101", "", ["ORU", "R01"], "C42", "P", "2.5.1"]},
//!     {"id": "PID", "fields": ["1", "", [["12345", "", "", "HOSP", "MR"], ["999", "", "", "SSA", "SS"]], "", ["DOE", "JANE"]]}
//!   ]
//! }
//! ```
//!
//! `fields[i]` is field `i + 1`. Each level is a plain string when it holds a single value,
//! else a list one level down:
//! - a field is a string, or a list of components (one repetition), or — when it repeats — a
//!   list of repetitions under `{"repetitions": [...]}`;
//! - a repetition is a string or a list of components;
//! - a component is a string or a list of subcomponents.
//!
//! Values are decoded: escape sequences resolved, text in UTF-8.

use serde_json::{Map, Value, json};

use crate::error::Result;
use crate::message::{Element, Message};

/// The JSON view of a message.
pub fn to_json(msg: &Message<'_>) -> Result<Value> {
    let mut segments = Vec::with_capacity(msg.segment_count());
    for seg in msg.segments() {
        let mut fields = Vec::new();
        for (_, f) in seg.fields() {
            fields.push(field(&f)?);
        }
        let mut obj = Map::new();
        obj.insert("id".into(), Value::String(seg.id().to_owned()));
        obj.insert("fields".into(), Value::Array(fields));
        segments.push(Value::Object(obj));
    }
    let d = msg.delimiters();
    let mut delims = vec![d.field];
    delims.extend(d.encoding_characters());
    Ok(json!({
        "delimiters": String::from_utf8_lossy(&delims),
        "charset": msg.charset().code(),
        "segments": segments,
    }))
}

fn field(f: &Element<'_>) -> Result<Value> {
    let reps: Vec<Element<'_>> = f.children().collect();
    if reps.len() > 1 {
        let list = reps.iter().map(leaf_or_list).collect::<Result<Vec<_>>>()?;
        return Ok(json!({ "repetitions": list }));
    }
    leaf_or_list(&reps[0])
}

/// A string when the element holds no lower delimiter, else the list of its children (a
/// subcomponent-only value `A&B` is `[["A","B"]]`: one component of two subcomponents).
fn leaf_or_list(e: &Element<'_>) -> Result<Value> {
    if !e.is_composite() {
        return Ok(Value::String(e.text()?.into_owned()));
    }
    e.children()
        .map(|c| leaf_or_list(&c))
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let raw = b"MSH|^~\\&|LAB\rPID|1||12345^^^HOSP^MR~999^^^SSA^SS||DOE^JANE&X\\T\\Y\r";
        let v = to_json(&Message::parse(raw).unwrap()).unwrap();
        assert_eq!(v["segments"][0]["fields"][0], "|");
        assert_eq!(v["segments"][0]["fields"][1], "^~\\&");
        assert_eq!(v["segments"][1]["fields"][2]["repetitions"][1][3], "SSA");
        assert_eq!(v["segments"][1]["fields"][4][1][1], "X&Y");
        assert_eq!(v["segments"][1]["fields"][0], "1");
        let v = to_json(&Message::parse(b"MSH|^~\\&\rZZ1|A&B").unwrap()).unwrap();
        assert_eq!(v["segments"][1]["fields"][0], json!([["A", "B"]]));
    }
}
