//! Integration tests: the MLLP server and client over real sockets on 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod client;
mod common;
mod server;
mod tls;
