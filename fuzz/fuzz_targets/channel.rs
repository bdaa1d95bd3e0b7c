//! Parse any text as a channel file: no panic, only located errors.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = engine::ChannelConfig::parse(text, std::path::Path::new("fuzz/c.toml")) {
        // every error names the file
        assert!(e.to_string().starts_with("fuzz/c.toml"), "{e}");
    }
});
