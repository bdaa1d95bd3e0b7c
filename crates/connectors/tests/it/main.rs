//! Integration tests: every connector over real sockets, files and PostgreSQL, checked by
//! independent peers (Python's http.client and http.server, curl).

#![allow(clippy::unwrap_used)]

mod common;
mod database;
mod docs;
mod file_reader;
mod file_writer;
mod http_listener;
mod http_sender;
