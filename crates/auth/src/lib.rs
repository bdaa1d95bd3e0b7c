//! # auth — who may do what, and the record of what they did
//!
//! This crate holds Plexus's security model: the SMART on FHIR scopes a token carries and
//! what they allow ([`scopes`]), the authenticated caller of a request ([`principal`]).
//! The FHIR server asks it, for every interaction, whether the caller may perform it and on
//! which patient's data.

#![forbid(unsafe_code)]

pub mod principal;
pub mod scopes;

pub use principal::Principal;
pub use scopes::{Decision, Level, Perm, Scope, ScopeError, ScopeSet};
