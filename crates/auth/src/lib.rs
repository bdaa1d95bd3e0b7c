//! # auth — who may do what, and the record of what they did
//!
//! This crate holds Plexus's security model: the SMART on FHIR scopes a token carries and
//! what they allow ([`scopes`]), the authenticated caller of a request ([`principal`]),
//! and the built-in SMART on FHIR authorization server ([`AuthServer`]): App Launch 2.x
//! (authorization code with PKCE S256, standalone and EHR launch, refresh-token rotation,
//! `offline_access`/`online_access`, OpenID Connect ID tokens), Backend Services
//! (`client_credentials` with RS384/ES384 client assertions), introspection (RFC 7662) and
//! revocation (RFC 7009). Tokens are ES384 (or RS384) JWTs signed with ring ([`jwt`]);
//! users, clients and single-use grants live in the store ([`store::Security`]), secrets
//! only as SHA-256 hashes, passwords as argon2id.
//!
//! The FHIR server asks [`AuthServer::verify_bearer`], for every request, who the caller
//! is, and [`Principal::access`] whether it may perform an interaction and on which
//! patient's data.
//!
//! ```no_run
//! # async fn run(store: std::sync::Arc<store::AnyStore>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let config = auth::AuthConfig::new("https://ehr.example/fhir", "https://ehr.example/auth", "/var/lib/plexus");
//! let server = auth::AuthServer::new(config, store, Arc::new(auth::NoEvents))?;
//! let app = axum::Router::new()
//!     .merge(server.router())
//!     .nest("/fhir", server.smart_router());
//! let principal = server.verify_bearer("eyJ…").await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod audit;
mod authorize;
mod clients;
pub mod config;
pub mod error;
pub mod events;
mod http;
pub mod jwks_fetch;
pub mod jwt;
mod manage;
pub mod principal;
mod routes;
pub mod scopes;
pub mod secret;
mod server;
mod token;

pub use config::{AuthConfig, ClientKind, ClientRegistration};
pub use error::{AuthError, OAuthCode};
pub use events::{AuthEvent, AuthEventKind, AuthEvents, NoEvents};
pub use principal::Principal;
pub use scopes::{Decision, Level, Perm, Scope, ScopeError, ScopeSet};
pub use server::{API_TOKEN_PREFIX, AuthServer, JWT_BEARER, LEEWAY_SECS, MAX_ASSERTION_SECS};
