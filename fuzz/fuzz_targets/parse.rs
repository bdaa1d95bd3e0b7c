//! Parse any bytes; whatever parses must survive every reader, the validator, the JSON view,
//! the ACK builder, and encode back to the same bytes.
#![no_main]

use hl7v2::ack::{AckCode, AckOptions, build_ack, salvage_header};
use hl7v2::{Message, MessageBuf};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(data) else {
        let _ = salvage_header(data);
        return;
    };
    for path in ["MSH-9-2", "PID-3[2]-1", "PID-5-1-2", "OBX[3]-5", "MSH-1", "MSH-2", "ZZZ-2[3]-4-5"] {
        let _ = msg.value(path);
    }
    for seg in msg.segments() {
        for (_, field) in seg.fields() {
            for rep in field.children() {
                for comp in rep.children() {
                    let _ = comp.text();
                }
            }
        }
    }
    let _ = hl7v2::validate::validate(&msg);
    let _ = hl7v2::json::to_json(&msg);
    let opts = AckOptions { code: AckCode::ApplicationError, text: Some("fuzz"), errors: vec![], control_id: "F", timestamp: "2024" };
    if let Ok(ack) = build_ack(&msg, &opts) {
        assert!(Message::parse(&ack.encode()).is_ok());
    }
    assert_eq!(MessageBuf::from(&msg).encode(), data);
});
