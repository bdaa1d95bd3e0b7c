//! Every TOML example in `docs/connectors.md` is a valid configuration of the type its first
//! line names, and every connector has one.

use std::path::Path;

use connectors::database::PgWriterConfig;
use connectors::file::{FileReaderConfig, FileWriterConfig};
use connectors::http::{HttpListenerConfig, HttpSenderConfig};

#[test]
fn examples_in_the_connector_docs_parse() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/connectors.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let mut seen = Vec::new();
    let mut rest = doc.as_str();
    while let Some(start) = rest.find("```toml\n") {
        let block = &rest[start + 8..];
        let end = block.find("```").expect("unclosed toml block");
        let (example, after) = block.split_at(end);
        rest = after;
        let kind = example
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# "))
            .unwrap_or_else(|| panic!("example without a `# Type` first line:\n{example}"));
        let checked = match kind {
            "HttpListenerConfig" => toml::from_str::<HttpListenerConfig>(example).map(drop),
            "HttpSenderConfig" => toml::from_str::<HttpSenderConfig>(example).map(drop),
            "FileReaderConfig" => toml::from_str::<FileReaderConfig>(example).map(drop),
            "FileWriterConfig" => toml::from_str::<FileWriterConfig>(example).map(drop),
            "PgWriterConfig" => toml::from_str::<PgWriterConfig>(example).map(drop),
            other => panic!("unknown configuration type {other}"),
        };
        if let Err(e) = checked {
            panic!("the {kind} example does not parse: {e}\n{example}");
        }
        seen.push(kind.to_owned());
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "FileReaderConfig",
            "FileWriterConfig",
            "HttpListenerConfig",
            "HttpSenderConfig",
            "PgWriterConfig"
        ]
    );
}
