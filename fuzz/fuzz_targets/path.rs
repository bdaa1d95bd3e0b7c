//! Parse any text as a path (`PID-3[2]-1`): no panic, and a path that parses prints back as
//! text that parses to the same path.
#![no_main]

use hl7v2::Path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(path) = Path::parse(text) {
        let again = Path::parse(&path.to_string()).expect("a printed path parses");
        assert_eq!(again, path);
    }
});
