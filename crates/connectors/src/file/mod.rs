//! Files: a [`FileReader`] source that polls a directory, and a [`FileWriter`] destination.
//!
//! Both are careful with data: the reader moves or deletes a file only after the engine
//! accepted it, and never overwrites a file when moving; the writer writes to a temporary name,
//! syncs, renames and syncs the directory, and refuses names that would leave its directory.

mod fsops;
mod pattern;
mod reader;
mod writer;

pub use pattern::NamePattern;
pub use reader::{AfterRead, FileReader, FileReaderConfig};
pub use writer::{FileWriter, FileWriterConfig};
