//! Outcomes, error locations, limits and what the sandbox leaves out.

mod common;

use std::time::{Duration, Instant};

use common::{adt, sandbox, segment, transform};
use script::{Context, Data, Limits, Outcome, Sandbox, ScriptErrorKind, ScriptKind};

#[test]
fn filter_accepts_on_truthy_and_rejects_otherwise() {
    let (mut sb, id) = sandbox(
        r#"return msg.get("MSH-9-2") === channelMap.want;"#,
        ScriptKind::Filter,
    );
    let mut cx = Context::new(adt());
    cx.channel_map.insert("want".into(), "A01".into());
    assert_eq!(sb.run(id, &mut cx).unwrap(), Outcome::Accept);
    cx.channel_map.insert("want".into(), "A08".into());
    assert_eq!(sb.run(id, &mut cx).unwrap(), Outcome::Reject);
    for (source, expected) in [
        ("return 1;", Outcome::Accept),
        ("return 'yes';", Outcome::Accept),
        ("return {};", Outcome::Accept),
        ("return 0;", Outcome::Reject),
        ("return '';", Outcome::Reject),
        ("return null;", Outcome::Reject),
        ("var x = 1;", Outcome::Reject),
    ] {
        let (mut sb, id) = sandbox(source, ScriptKind::Filter);
        assert_eq!(
            sb.run(id, &mut Context::new(adt())).unwrap(),
            expected,
            "{source}"
        );
    }
    // a transformer accepts whatever it returns
    let (mut sb, id) = sandbox("return false;", ScriptKind::Transformer);
    assert_eq!(
        sb.run(id, &mut Context::new(adt())).unwrap(),
        Outcome::Accept
    );
}

#[test]
fn exceptions_report_the_users_line() {
    let source = "var pid = msg.get('PID-3-1');\nvar zpi = null;\nvar v = zpi.field;\n";
    let (_, r) = transform(source, adt());
    let e = r.unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Exception);
    assert_eq!(e.line, Some(3));
    assert_eq!(e.column, Some(9));
    assert_eq!(e.script, "test");
    assert_eq!(
        e.to_string(),
        "script 'test' line 3: TypeError: cannot read property 'field' of null"
    );

    // thrown from a function defined elsewhere: the line of the throw
    let source =
        "function check(v) {\n  if (!v) throw new Error('no value');\n}\ncheck(msg.get('ZZZ-1'));";
    let (_, r) = transform(source, adt());
    let e = r.unwrap_err();
    assert_eq!((e.line, e.message.as_str()), (Some(2), "Error: no value"));

    // columns on line 1 are the user's own
    let (_, r) = transform("  null.x;", adt());
    assert_eq!(r.unwrap_err().column, Some(3));

    // a thrown string has no line
    let (_, r) = transform("throw 'plain text';", adt());
    let e = r.unwrap_err();
    assert_eq!((e.kind, e.line), (ScriptErrorKind::Exception, None));
    assert_eq!(e.to_string(), "script 'test': plain text");
}

#[test]
fn compile_errors_name_the_script_and_line() {
    let mut sb = Sandbox::new(Limits::default()).unwrap();
    let e = sb
        .compile(
            "adt/filter",
            "var a = 1;\nvar b = 2;\nvar c = ;\n",
            ScriptKind::Filter,
        )
        .unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Compile);
    assert_eq!(e.script, "adt/filter");
    assert_eq!(e.line, Some(3));
    assert!(e.message.starts_with("SyntaxError: "), "{e}");
    assert!(
        e.to_string()
            .starts_with("script 'adt/filter' line 3: SyntaxError")
    );

    // an unclosed block is reported on the last line, not in the wrapper
    let e = sb
        .compile("open", "if (true) {\n  var x = 1;\n", ScriptKind::Filter)
        .unwrap_err();
    assert_eq!((e.kind, e.line), (ScriptErrorKind::Compile, Some(2)));

    // closing the wrapper function is refused
    let e = sb
        .compile("escape", "}); (function () {", ScriptKind::Filter)
        .unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Compile);

    // strict mode: undeclared variables are errors, not globals
    let id = sb
        .compile("strict", "leak = 1;", ScriptKind::Filter)
        .unwrap();
    let e = sb.run(id, &mut Context::new(adt())).unwrap_err();
    assert!(e.message.starts_with("ReferenceError"), "{e}");
    assert!(sb.compile("ok", "return true;", ScriptKind::Filter).is_ok());
}

fn limits() -> Limits {
    Limits {
        memory_bytes: 16 << 20,
        time: Duration::from_millis(300),
    }
}

#[test]
fn infinite_loop_times_out_and_the_sandbox_goes_on() {
    let mut sb = Sandbox::new(limits()).unwrap();
    let spin = sb
        .compile(
            "spin",
            "var i = 0;\nwhile (true) { i++; }",
            ScriptKind::Transformer,
        )
        .unwrap();
    let catcher = sb
        .compile(
            "catcher",
            "while (true) { try { while (true) {} } catch (e) {} }",
            ScriptKind::Transformer,
        )
        .unwrap();
    let ok = sb
        .compile(
            "ok",
            "msg.set('PID-5-1', 'AFTER'); return true;",
            ScriptKind::Filter,
        )
        .unwrap();
    for id in [spin, catcher, spin] {
        let mut cx = Context::new(adt());
        let started = Instant::now();
        let e = sb.run(id, &mut cx).unwrap_err();
        let took = started.elapsed();
        assert_eq!(e.kind, ScriptErrorKind::Timeout, "{e}");
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(e.to_string().contains("timed out"), "{e}");
        assert_eq!(cx.data, adt(), "the data comes back");
        let mut cx = Context::new(adt());
        assert_eq!(sb.run(ok, &mut cx).unwrap(), Outcome::Accept);
        assert!(segment(&cx.data, "PID").contains("|AFTER^"));
    }
    let (mut sb2, id) = sandbox("while(true){}", ScriptKind::Filter);
    let e = sb2.run(id, &mut Context::new(adt())).unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Timeout);
    assert_eq!(
        e.to_string(),
        "script 'test': timed out: the run took longer than 1s"
    );
}

/// Runs each source in one sandbox; each must fail with `expected`, and a small script must
/// work after each (its id unchanged, across the rebuilds that follow running out of memory).
fn hogs(sources: &[&str], time: Duration, expected: ScriptErrorKind) {
    let mut sb = Sandbox::new(Limits {
        memory_bytes: 16 << 20,
        time,
    })
    .expect("sandbox");
    let ok = sb
        .compile(
            "ok",
            "channelMap.n = (globalThis.n = (globalThis.n || 0) + 1); return true;",
            ScriptKind::Filter,
        )
        .expect("compiles");
    for source in sources {
        let id = sb
            .compile("hog", source, ScriptKind::Transformer)
            .expect("compiles");
        let mut cx = Context::new(adt());
        let e = sb.run(id, &mut cx).expect_err("must fail");
        assert_eq!(e.kind, expected, "{source}: {e}");
        assert_eq!(cx.data, adt());
        let mut cx = Context::new(adt());
        assert_eq!(
            sb.run(ok, &mut cx).expect("runs"),
            Outcome::Accept,
            "after {source}"
        );
        assert_eq!(sb.name(ok), Some("ok"));
    }
}

#[test]
fn unbounded_allocation_runs_out_of_memory_and_the_sandbox_goes_on() {
    // a generous deadline, so that a loaded machine still hits the memory limit first
    hogs(
        &[
            "var a = []; while (true) a.push(new Array(1e6));",
            "var o = {}; var i = 0; while (true) { o['k' + i] = 'v' + i; i++; }",
            "var s = []; while (true) s.push('x'.repeat(1e5) + s.length);",
            // keeps the garbage in a global, so only a rebuilt runtime can recover
            "globalThis.keep = []; while (true) keep.push(new Array(1e5).fill(1));",
        ],
        Duration::from_secs(20),
        ScriptErrorKind::OutOfMemory,
    );
}

#[test]
fn catching_out_of_memory_errors_in_a_loop_still_times_out() {
    // memory stays full, every allocation fails and is caught: only the deadline stops these
    hogs(
        &[
            "var a = []; while (true) { try { a.push(new Array(1e6)); } catch (e) { } }",
            // memory filled to the last bytes: QuickJS must still be able to allocate its
            // uncatchable "interrupted" error
            "var k = []; try { while (true) k.push({}); } catch (e) { }\n\
             while (true) { try { k.push({ x: [k.length] }); } catch (e) { } }",
        ],
        Duration::from_millis(500),
        ScriptErrorKind::Timeout,
    );
}

#[test]
fn the_message_cannot_grow_past_the_memory_limit() {
    let small = Limits {
        memory_bytes: 4 << 20,
        time: Duration::from_secs(5),
    };
    let mut sb = Sandbox::new(small).unwrap();
    let grow = sb
        .compile(
            "grow",
            "var big = 'x'.repeat(1 << 16);\nwhile (true) msg.addSegment('ZZZ|' + big);",
            ScriptKind::Transformer,
        )
        .unwrap();
    let e = sb.run(grow, &mut Context::new(adt())).unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::OutOfMemory, "{e}");
    assert!(e.message.contains("the message grew past"), "{e}");
    // setting the same field many times is not growth
    let reset = sb
        .compile(
            "reset",
            "var big = 'x'.repeat(1 << 16);\nfor (var i = 0; i < 100; i++) msg.set('PID-5-1', big + i);",
            ScriptKind::Transformer,
        )
        .unwrap();
    sb.run(reset, &mut Context::new(adt())).unwrap();
}

#[test]
fn deep_recursion_is_a_range_error() {
    let (_, r) = transform("function f(n) { return f(n + 1) + 1; }\nf(0);", adt());
    let e = r.unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Exception);
    assert!(e.message.starts_with("RangeError"), "{e}");
}

#[test]
fn nothing_outside_the_api_is_reachable() {
    for source in [
        "require('fs');",
        "std.loadFile('/etc/passwd');",
        "os.exec(['ls']);",
        "console.log('x');",
        "print('x');",
        "process.exit(1);",
        "fetch('http://localhost/');",
        "new XMLHttpRequest();",
        "scriptArgs.length;",
    ] {
        let (_, r) = transform(source, adt());
        let e = r.unwrap_err();
        assert_eq!(e.kind, ScriptErrorKind::Exception, "{source}");
        assert!(e.message.starts_with("ReferenceError"), "{source}: {e}");
    }
    // static and dynamic imports
    let mut sb = Sandbox::new(Limits::default()).unwrap();
    let e = sb
        .compile("import", "import * as std from 'std';", ScriptKind::Filter)
        .unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Compile);
    let (cx, r) = transform(
        "import('std').then(function () { channelMap.r = 'loaded'; },\n\
         function (e) { channelMap.r = String(e); });",
        adt(),
    );
    r.unwrap();
    let refused = cx.channel_map["r"].as_str().unwrap();
    assert!(refused.contains("could not load module"), "{refused}");

    // the globals are the standard built-ins only
    let (cx, r) = transform(
        "channelMap.g = Object.getOwnPropertyNames(globalThis).sort();",
        adt(),
    );
    r.unwrap();
    let globals: Vec<String> = serde_json::from_value(cx.channel_map["g"].clone()).unwrap();
    for name in [
        "require",
        "std",
        "os",
        "console",
        "print",
        "scriptArgs",
        "msg",
        "logger",
        "performance",
    ] {
        assert!(!globals.iter().any(|g| g == name), "{name} is a global");
    }
    for name in ["JSON", "Math", "Date", "RegExp", "Map", "Promise", "eval"] {
        assert!(globals.iter().any(|g| g == name), "{name} is missing");
    }
}

#[test]
fn scripts_do_not_share_globals() {
    let mut sb = Sandbox::new(Limits::default()).unwrap();
    let a = sb
        .compile(
            "a",
            "String.prototype.trim = function () { return 'pwned'; }; globalThis.shared = 1;",
            ScriptKind::Transformer,
        )
        .unwrap();
    let b = sb
        .compile(
            "b",
            "channelMap.trim = ' x '.trim(); channelMap.shared = typeof shared;",
            ScriptKind::Transformer,
        )
        .unwrap();
    let mut cx = Context::new(adt());
    sb.run(a, &mut cx).unwrap();
    sb.run(b, &mut cx).unwrap();
    assert_eq!(cx.channel_map["trim"], "x");
    assert_eq!(cx.channel_map["shared"], "undefined");
}

#[test]
fn a_bad_script_id_is_an_api_error() {
    let (mut sb, _) = sandbox("return 1;", ScriptKind::Filter);
    let mut other = Sandbox::new(Limits::default()).unwrap();
    let a = other.compile("a", "1", ScriptKind::Filter).unwrap();
    let b = other.compile("b", "1", ScriptKind::Filter).unwrap();
    assert!(sb.run(a, &mut Context::new(adt())).is_ok());
    let e = sb
        .run(b, &mut Context::new(Data::Raw(String::new())))
        .unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Api);
}

#[test]
fn odd_sources_and_reentrant_calls_fail_cleanly() {
    let mut sb = Sandbox::new(Limits {
        memory_bytes: 16 << 20,
        time: Duration::from_millis(500),
    })
    .unwrap();
    // a NUL byte cannot reach QuickJS
    let e = sb
        .compile("nul", "var a = '\0';", ScriptKind::Filter)
        .unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Compile);
    // control characters in the name do not break error locations
    let id = sb
        .compile("two\nlines", "\nnull.x;", ScriptKind::Filter)
        .unwrap();
    let e = sb.run(id, &mut Context::new(adt())).unwrap_err();
    assert_eq!((e.script.as_str(), e.line), ("two\nlines", Some(2)));
    // an API call from inside a value's toJSON while another call converts it
    let id = sb
        .compile(
            "reentrant",
            "msg.set('a', { toJSON: function () { msg.set('b', 1); return 2; } });",
            ScriptKind::Transformer,
        )
        .unwrap();
    let mut cx = Context::new(Data::Json(serde_json::json!({})));
    sb.run(id, &mut cx).unwrap();
    assert_eq!(cx.data, Data::Json(serde_json::json!({"a": 2, "b": 1})));
    // a getter that never returns, met while copying the maps back
    let id = sb
        .compile(
            "getter",
            "Object.defineProperty(channelMap, 'x', { enumerable: true, get: function () { while (true) {} } });",
            ScriptKind::Transformer,
        )
        .unwrap();
    let e = sb.run(id, &mut Context::new(adt())).unwrap_err();
    assert_eq!(e.kind, ScriptErrorKind::Timeout);
    // and the sandbox still works
    let id = sb
        .compile("ok", "return true;", ScriptKind::Filter)
        .unwrap();
    assert_eq!(
        sb.run(id, &mut Context::new(adt())).unwrap(),
        Outcome::Accept
    );
}
