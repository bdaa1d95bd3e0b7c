//! Split any bytes into messages with a small size limit: no panic, and every message handed
//! out is a slice of the input.
#![no_main]

use hl7v2::MessageReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = MessageReader::with_max_message(std::io::BufReader::with_capacity(16, data), 256);
    while let Some(item) = reader.next_message() {
        if let Ok(m) = item {
            let start = usize::try_from(m.offset).expect("offset");
            assert_eq!(&data[start..start + m.bytes.len()], m.bytes);
        }
    }
});
