//! Parse any text as a connector template (`${PID-3-1}_${date:%Y%m%d}.hl7`): no panic; a
//! template that parses renders without panicking, and its source text parses again to a
//! template that renders the same.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use connectors::{Fields, Template};
use libfuzzer_sys::fuzz_target;

/// Every field has a value made from its name, so rendering exercises every placeholder.
struct Echo;

impl Fields for Echo {
    fn field(&self, name: &str) -> Option<String> {
        (name.len() % 3 != 0).then(|| format!("<{name}>"))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(t) = Template::parse(text) {
        let now = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let once = t.render(&Echo, now);
        let again = Template::parse(t.source()).expect("a template's own source parses");
        assert_eq!(again.render(&Echo, now), once);
    }
});
