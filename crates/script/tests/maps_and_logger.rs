//! channelMap, responseMap, sourceMap and logger.

mod common;

use common::{adt, sandbox};
use script::{Context, LogLevel, LogLine, Outcome, ScriptErrorKind, ScriptKind};
use serde_json::{Map, Value, json};

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

#[test]
fn maps_round_trip() {
    let (mut sb, id) = sandbox(
        r#"
        channelMap.count = (channelMap.count || 0) + 1;
        channelMap.nested.list.push(sourceMap.remoteAddress);
        channelMap.fn = function () {};
        channelMap.undef = undefined;
        delete channelMap.gone;
        responseMap.ack = {code: "AA", at: 1.5};
        "#,
        ScriptKind::Transformer,
    );
    let mut cx = Context::new(adt());
    cx.channel_map = map(json!({"nested": {"list": ["a"]}, "gone": 1}));
    cx.source_map = map(json!({"remoteAddress": "10.0.0.1"}));
    sb.run(id, &mut cx).unwrap();
    assert_eq!(
        Value::Object(cx.channel_map.clone()),
        json!({"nested": {"list": ["a", "10.0.0.1"]}, "count": 1})
    );
    assert_eq!(
        Value::Object(cx.response_map.clone()),
        json!({"ack": {"code": "AA", "at": 1.5}})
    );
    // the next run sees what this one left
    sb.run(id, &mut cx).unwrap();
    assert_eq!(cx.channel_map["count"], 2);
}

#[test]
fn source_map_is_read_only() {
    let (mut sb, id) = sandbox(
        r"
        channelMap.port = sourceMap.listener.port;
        channelMap.frozen = Object.isFrozen(sourceMap) && Object.isFrozen(sourceMap.listener);
        try { sourceMap.listener.port = 1; } catch (e) { channelMap.nested = e.name; }
        sourceMap.extra = 1;
        ",
        ScriptKind::Transformer,
    );
    let mut cx = Context::new(adt());
    cx.source_map = map(json!({"listener": {"port": 2575}}));
    let e = sb.run(id, &mut cx).unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Exception);
    assert_eq!(e.line, Some(5));
    assert!(e.message.starts_with("TypeError"), "{e}");
    assert_eq!(cx.source_map, map(json!({"listener": {"port": 2575}})));
    // a failed run leaves the maps as they were
    assert!(cx.channel_map.is_empty());

    let (mut sb, id) = sandbox(
        r"
        channelMap.port = sourceMap.listener.port;
        channelMap.frozen = Object.isFrozen(sourceMap) && Object.isFrozen(sourceMap.listener);
        try { sourceMap.listener.port = 1; } catch (e) { channelMap.nested = e.name; }
        channelMap.emptyFrozen = Object.isFrozen(sourceMap);
        ",
        ScriptKind::Transformer,
    );
    sb.run(id, &mut cx).unwrap();
    assert_eq!(cx.channel_map["port"], 2575);
    assert_eq!(cx.channel_map["frozen"], true);
    assert_eq!(cx.channel_map["nested"], "TypeError");
    let mut empty = Context::new(adt());
    let (mut sb, id) = sandbox(
        "channelMap.frozen = Object.isFrozen(sourceMap);",
        ScriptKind::Transformer,
    );
    sb.run(id, &mut empty).unwrap();
    assert_eq!(empty.channel_map["frozen"], true);
}

#[test]
fn a_map_value_json_cannot_hold_is_an_api_error() {
    let (mut sb, id) = sandbox("channelMap.big = 10n;", ScriptKind::Transformer);
    let mut cx = Context::new(adt());
    let e = sb.run(id, &mut cx).unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Api);
    assert!(
        e.message
            .starts_with("channelMap holds a value that is not JSON"),
        "{e}"
    );
    let (mut sb, id) = sandbox(
        "var a = {}; a.self = a; responseMap.loop = a;",
        ScriptKind::Transformer,
    );
    let e = sb.run(id, &mut cx).unwrap_err();
    assert!(e.message.starts_with("responseMap holds"), "{e}");
}

#[test]
fn logger_appends_lines() {
    let (mut sb, id) = sandbox(
        r#"
        logger.debug("d", 1, true);
        logger.info("patient", msg.get("PID-3-1"));
        logger.warn({a: [1]});
        logger.error(new Error("boom"));
        "#,
        ScriptKind::Transformer,
    );
    let mut cx = Context::new(adt());
    sb.run(id, &mut cx).unwrap();
    let line = |level, text: &str| LogLine {
        level,
        text: text.into(),
    };
    assert_eq!(
        cx.logs,
        [
            line(LogLevel::Debug, "d 1 true"),
            line(LogLevel::Info, "patient PLX0000001"),
            line(LogLevel::Warn, r#"{"a":[1]}"#),
            line(LogLevel::Error, "Error: boom"),
        ]
    );
}

#[test]
fn logging_is_capped_per_run() {
    let (mut sb, id) = sandbox(
        "for (var i = 0; i < 5000; i++) logger.info('line ' + i); return true;",
        ScriptKind::Filter,
    );
    let mut cx = Context::new(adt());
    assert_eq!(sb.run(id, &mut cx).unwrap(), Outcome::Accept);
    assert_eq!(cx.logs.len(), 1001);
    assert_eq!(cx.logs[999].text, "line 999");
    assert_eq!(cx.logs[1000].level, LogLevel::Warn);
    assert!(
        cx.logs[1000]
            .text
            .starts_with("4000 more log lines were dropped")
    );
}

#[test]
fn logs_of_a_failed_run_are_kept() {
    let (mut sb, id) = sandbox("logger.info('before');\nnull.x;", ScriptKind::Transformer);
    let mut cx = Context::new(adt());
    assert!(sb.run(id, &mut cx).is_err());
    assert_eq!(cx.logs.len(), 1);
}
