//! Feed any bytes to the MLLP framer in chunks of any size: no panic, memory bounded by the
//! frame limit, and every frame handed out is free of framing bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mllp::{Event, Framer};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let mut framer = Framer::with_max_frame_bytes(512);
    for piece in rest.chunks(chunk) {
        framer.push(piece);
        while let Some(event) = framer.next_event() {
            if let Event::Frame(payload) = event {
                assert!(payload.len() <= 512);
                assert!(!payload.contains(&0x0B));
            }
            assert!(framer.buffered_len() <= 512 + chunk + 2);
        }
    }
    while framer.finish().is_some() {}
});
