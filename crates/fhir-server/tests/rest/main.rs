//! End-to-end tests of the FHIR REST API over real HTTP, each on SQLite and on PostgreSQL:
//! the interactions (create, read, vread, update, patch, delete, conditional variants,
//! history), errors as OperationOutcomes, search, batch and transaction Bundles, and the
//! operations (`$everything`, `$validate`, `/metadata`).

#![allow(clippy::too_many_lines, clippy::many_single_char_names)]

mod access;
mod attacks;
mod bundles;
mod common;
mod convert;
mod crud;
mod errors;
mod search;
