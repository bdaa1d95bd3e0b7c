//! Property tests: parse ∘ encode is the identity on well-formed messages, every generated value
//! reads back by path, escaping round-trips, and no input makes the library panic.

use hl7v2::ack::{AckCode, AckOptions, build_ack};
use hl7v2::escape::{escape, unescape};
use hl7v2::{Charset, Delimiters, Message, MessageBuf};
use proptest::prelude::*;

/// Five distinct delimiter characters (field, component, repetition, escape, subcomponent).
fn delimiters() -> impl Strategy<Value = Delimiters> {
    let pool: Vec<u8> = b"|^~\\&#*:!%$@/+=;,?".to_vec();
    Just(pool).prop_shuffle().prop_map(|p| Delimiters {
        field: p[0],
        component: p[1],
        repetition: p[2],
        escape: Some(p[3]),
        subcomponent: Some(p[4]),
        truncation: None,
    })
}

/// Text with no delimiter and no terminator, possibly non-ASCII.
fn leaf(d: Delimiters) -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .,'()éü中-]{0,8}".prop_map(move |s: String| {
        s.chars()
            .filter(|c| {
                u8::try_from(u32::from(*c)).map_or(true, |b| {
                    ![
                        d.field,
                        d.component,
                        d.repetition,
                        d.escape.unwrap_or(0),
                        d.subcomponent.unwrap_or(0),
                    ]
                    .contains(&b)
                })
            })
            .collect()
    })
}

type Field = Vec<Vec<Vec<String>>>;

fn field(d: Delimiters) -> impl Strategy<Value = Field> {
    prop::collection::vec(
        prop::collection::vec(prop::collection::vec(leaf(d), 1..3), 1..4),
        1..3,
    )
}

fn segment(d: Delimiters) -> impl Strategy<Value = (String, Vec<Field>)> {
    (
        "Z[A-Z0-9]{2}|PID|OBX|NTE|PV1",
        prop::collection::vec(field(d), 0..6),
    )
}

fn encode_field(f: &Field, d: Delimiters) -> String {
    let join = |parts: Vec<String>, sep: u8| parts.join(&char::from(sep).to_string());
    join(
        f.iter()
            .map(|r| {
                join(
                    r.iter()
                        .map(|c| join(c.clone(), d.subcomponent.unwrap_or(b'&')))
                        .collect(),
                    d.component,
                )
            })
            .collect(),
        d.repetition,
    )
}

fn build(d: Delimiters, segs: &[(String, Vec<Field>)], term: &str, trailing: bool) -> String {
    let f = char::from(d.field).to_string();
    let mut enc = String::from_utf8(d.encoding_characters()).unwrap_or_default();
    enc.insert(0, char::from(d.field));
    let mut lines = vec![format!(
        "MSH{enc}{f}APP{f}FAC{f}{f}{f}20240101{f}{f}ADT{}A01{f}CTRL{f}P{f}2.5.1",
        char::from(d.component)
    )];
    for (id, fields) in segs {
        let mut line = id.clone();
        for fl in fields {
            line.push_str(&f);
            line.push_str(&encode_field(fl, d));
        }
        lines.push(line);
    }
    let mut out = lines.join(term);
    if trailing {
        out.push_str(term);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn parse_then_encode_is_identity_and_values_read_back(
        (d, segs) in delimiters().prop_flat_map(|d| (Just(d), prop::collection::vec(segment(d), 0..8))),
        term in prop::sample::select(vec!["\r", "\n", "\r\n"]),
        trailing in any::<bool>(),
    ) {
        let text = build(d, &segs, term, trailing);
        let msg = Message::parse(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}: {text:?}")))?;
        prop_assert_eq!(msg.segment_count(), segs.len() + 1);
        prop_assert_eq!(MessageBuf::from(&msg).encode(), text.as_bytes());
        for (i, (id, fields)) in segs.iter().enumerate() {
            let seg = msg.segment_at(i + 1).expect("segment");
            prop_assert_eq!(seg.id(), id.as_str());
            for (fi, f) in fields.iter().enumerate() {
                let el = seg.field(fi + 1).expect("field");
                for (ri, r) in f.iter().enumerate() {
                    for (ci, c) in r.iter().enumerate() {
                        for (si, s) in c.iter().enumerate() {
                            let v = el.child(ri + 1).and_then(|x| x.child(ci + 1)).and_then(|x| x.child(si + 1)).expect("value present");
                            let got = v.text().expect("decodes").into_owned();
                            prop_assert_eq!(got, s.clone());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn escaping_round_trips(d in delimiters(), text in "\\PC{0,40}") {
        let raw = escape(&text, &d, Charset::Utf8).expect("escape");
        prop_assert!(!raw.iter().any(|b| [d.field, d.component, d.repetition, d.subcomponent.unwrap_or(0)].contains(b)), "a delimiter survived escaping");
        let back = unescape(&raw, &d, Charset::Utf8).expect("unescape").into_owned();
        prop_assert_eq!(back, text);
    }

    #[test]
    fn set_then_read_back(rep in 1usize..4, comp in 1usize..6, sub in 1usize..3, field in 1usize..30, text in "\\PC{0,20}") {
        let mut m = MessageBuf::new(Delimiters::default(), Charset::Utf8);
        m.push_segment("PID").expect("segment");
        let path = format!("PID-{field}[{rep}]-{comp}-{sub}");
        m.set(&path, &text).expect("set");
        let bytes = m.encode();
        let msg = Message::parse(&bytes).expect("parse");
        let got = msg.value(&path).expect("path").map(std::borrow::Cow::into_owned);
        prop_assert_eq!(got, Some(text));
    }

    #[test]
    fn paths_print_back_to_themselves(seg in "[A-Z][A-Z0-9]{2}", occ in proptest::option::of(1usize..20), field in 1usize..200, rep in proptest::option::of(1usize..9), comp in proptest::option::of(1usize..30), sub in 1usize..5, with_sub in any::<bool>()) {
        let occ = occ.map(|o| format!("[{o}]")).unwrap_or_default();
        let rep = rep.map(|r| format!("[{r}]")).unwrap_or_default();
        let comp = comp.map(|c| if with_sub { format!("-{c}-{sub}") } else { format!("-{c}") }).unwrap_or_default();
        let text = format!("{seg}{occ}-{field}{rep}{comp}");
        let path = hl7v2::Path::parse(&text).expect("a well-formed path parses");
        prop_assert_eq!(hl7v2::Path::parse(&path.to_string()).expect("printed path parses"), path);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(pos in any::<prop::sample::Index>(), with in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let base = b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01^ORU_R01|X|P|2.5.1|||AL|NE\rPID|1||1^^^H~2||DOE^J\\T\\X|||F\rOBR|1\rOBX|1|NM|A^B||5|u\rZZZ|1\r";
        let mut v = base.to_vec();
        let i = pos.index(v.len());
        v[i] = with;
        v.truncate(cut.index(v.len() + 1));
        exercise(&v);
    }
}

/// Everything a caller might do with a message that parsed.
fn exercise(bytes: &[u8]) {
    let Ok(msg) = Message::parse(bytes) else {
        return;
    };
    for p in [
        "PID-5-1",
        "PID-3[2]-1",
        "OBX[1]-5",
        "MSH-9-2",
        "MSH-1",
        "MSH-2",
        "ZZZ-1-1-1",
    ] {
        let _ = msg.value(p);
    }
    let _ = hl7v2::validate::validate(&msg);
    let _ = hl7v2::json::to_json(&msg);
    let opts = AckOptions {
        code: AckCode::ApplicationAccept,
        text: Some("x"),
        errors: vec![],
        control_id: "1",
        timestamp: "2024",
    };
    if let Ok(ack) = build_ack(&msg, &opts) {
        assert!(
            Message::parse(&ack.encode()).is_ok(),
            "an ACK we built does not parse"
        );
    }
    assert_eq!(MessageBuf::from(&msg).encode(), bytes);
}

/// Inputs the fuzzers found (`fuzz/`), kept so they stay fixed.
#[test]
fn fuzz_regressions() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("regressions dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        exercise(&bytes);
        // as the reader fuzz target checks: every message is the slice of the input at its offset
        let mut reader = hl7v2::MessageReader::with_max_message(
            std::io::BufReader::with_capacity(16, &bytes[..]),
            256,
        );
        while let Some(item) = reader.next_message() {
            if let Ok(m) = item {
                let start = usize::try_from(m.offset).expect("offset");
                assert_eq!(&bytes[start..start + m.bytes.len()], m.bytes);
            }
        }
        n += 1;
    }
    assert!(n > 0);
}
