//! `plexus user`, `plexus token` and `plexus client`: users and roles, API tokens, and the
//! OAuth clients (SMART apps and backend services) of the built-in authorization server,
//! written to the store of the configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use auth::principal::Role;
use auth::{AuthServer, ClientKind, ClientRegistration};
use clap::{Args, Subcommand, ValueEnum};
use store::{AnyStore, Audit as _, Security as _, Store as _};

use crate::config::Config;

/// `plexus user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (or replace one of the same name).
    Add(UserAddArgs),
    /// List the users and their roles.
    List,
}

/// `plexus user add`.
#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The user name.
    pub name: String,
    /// A role: admin, developer, operator, auditor or read-only (repeat for several).
    #[arg(long = "role", required = true)]
    pub roles: Vec<String>,
    /// The user's FHIR resource (`Practitioner/123`), for SMART's `fhirUser`.
    #[arg(long)]
    pub fhir_user: Option<String>,
    /// Read the password from this environment variable (never from the command line).
    #[arg(long, conflicts_with = "password_stdin")]
    pub password_env: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `plexus token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user; prints it once (only its hash is stored).
    Create(TokenCreateArgs),
}

/// `plexus token create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// The user the token acts as (its roles apply on the admin API).
    #[arg(long)]
    pub user: String,
    /// A name to recognise the token by.
    #[arg(long, default_value = "cli")]
    pub name: String,
    /// SMART scopes for the FHIR API (e.g. `user/*.cruds`); empty: no FHIR access.
    #[arg(long, default_value = "")]
    pub scope: String,
    /// Days until it expires.
    #[arg(long, default_value_t = 90)]
    pub days: u64,
}

/// `plexus client …`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a SMART app or backend service (replaces one of the same id); prints the
    /// secret of a confidential-symmetric client once.
    Register(ClientArgs),
}

/// How a client authenticates.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// No credentials; PKCE protects its codes.
    Public,
    /// A client secret.
    ConfidentialSymmetric,
    /// A signed JWT assertion (private_key_jwt, backend services).
    ConfidentialAsymmetric,
}

/// `plexus client register`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The client id.
    #[arg(long)]
    pub id: String,
    /// How it authenticates.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// A redirect URI (repeat for several), matched exactly.
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// The scopes it may be granted, space-separated.
    #[arg(long)]
    pub scope: String,
    /// A display name for the consent page.
    #[arg(long)]
    pub name: Option<String>,
    /// A file with its JWK Set (asymmetric clients).
    #[arg(long, conflicts_with = "jwks_url")]
    pub jwks: Option<PathBuf>,
    /// The URL of its JWK Set (asymmetric clients).
    #[arg(long)]
    pub jwks_url: Option<String>,
}

/// Opens the store and the authorization server of the configuration.
async fn open(config_path: Option<&Path>) -> Result<(Arc<AnyStore>, Arc<AuthServer>)> {
    let (config, _) = Config::resolve(config_path)?;
    let store = Arc::new(
        AnyStore::open(&config.store)
            .await
            .context("opening the store")?,
    );
    let fhir = config.fhir.server_config(config.fhir.bind);
    let auth_base = config
        .security
        .auth_base
        .clone()
        .unwrap_or_else(|| format!("http://{}/auth", config.fhir.bind));
    let auth = crate::security::auth_server(
        &config,
        Arc::clone(&store),
        &fhir.base_url,
        &auth_base,
        Arc::new(auth::NoEvents),
    )?;
    Ok((store, auth))
}

/// Records a configuration change made from the command line (who: the operating-system
/// user running it).
async fn audit_change(store: &AnyStore, object: &str) -> Result<()> {
    let who = std::env::var("USER").unwrap_or_else(|_| "cli".to_owned());
    let agent = format!("cli:{who}");
    let facts = auth::audit::AuditFacts::config_change(auth::audit::Who::Name(&agent), object);
    store
        .audit_append(vec![auth::audit::record(&facts)])
        .await
        .context("writing the audit record")
}

fn password(args: &UserAddArgs) -> Result<Option<String>> {
    if let Some(var) = &args.password_env {
        let p =
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?;
        return Ok(Some(p));
    }
    if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        return Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()));
    }
    Ok(None)
}

/// Runs `plexus user …`.
pub async fn user(config: Option<PathBuf>, cmd: UserCommand) -> Result<ExitCode> {
    let (store, auth) = open(config.as_deref()).await?;
    match cmd {
        UserCommand::Add(args) => {
            let roles = args
                .roles
                .iter()
                .map(|r| r.parse::<Role>().map_err(anyhow::Error::msg))
                .collect::<Result<Vec<_>>>()?;
            let password = password(&args)?;
            if password.as_deref().is_some_and(|p| p.len() < 12) {
                bail!("passwords have at least 12 characters");
            }
            auth.add_user(
                &args.name,
                password.as_deref(),
                &roles,
                args.fhir_user.as_deref(),
            )
            .await?;
            audit_change(&store, &format!("user/{}", args.name)).await?;
            println!("user {} saved", args.name);
        }
        UserCommand::List => {
            for u in store.users().await? {
                println!(
                    "{}\t{}\t{}{}",
                    u.name,
                    u.roles.join(","),
                    u.fhir_user.as_deref().unwrap_or("-"),
                    if u.disabled { "\tdisabled" } else { "" }
                );
            }
        }
    }
    store.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `plexus token …`.
pub async fn token(config: Option<PathBuf>, cmd: TokenCommand) -> Result<ExitCode> {
    let (store, auth) = open(config.as_deref()).await?;
    match cmd {
        TokenCommand::Create(args) => {
            let lifetime = Duration::from_secs(args.days.max(1) * 86_400);
            let token = auth
                .create_api_token(&args.user, &args.name, &args.scope, lifetime)
                .await?;
            audit_change(&store, &format!("token/{}", args.user)).await?;
            println!("{token}");
        }
    }
    store.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `plexus client …`.
pub async fn client(config: Option<PathBuf>, cmd: ClientCommand) -> Result<ExitCode> {
    let (store, auth) = open(config.as_deref()).await?;
    match cmd {
        ClientCommand::Register(args) => {
            let jwks = match &args.jwks {
                Some(path) => Some(
                    serde_json::from_slice(
                        &std::fs::read(path)
                            .with_context(|| format!("reading {}", path.display()))?,
                    )
                    .with_context(|| format!("{}: not a JSON JWK Set", path.display()))?,
                ),
                None => None,
            };
            let registration = ClientRegistration {
                client_id: args.id.clone(),
                name: args.name,
                kind: match args.kind {
                    Kind::Public => ClientKind::Public,
                    Kind::ConfidentialSymmetric => ClientKind::ConfidentialSymmetric,
                    Kind::ConfidentialAsymmetric => ClientKind::ConfidentialAsymmetric,
                },
                redirect_uris: args.redirect_uris,
                scopes: args.scope,
                jwks,
                jwks_uri: args.jwks_url,
            };
            let secret = auth.register_client(registration).await?;
            audit_change(&store, &format!("client/{}", args.id)).await?;
            match secret {
                Some(secret) => println!("client {} registered; secret: {secret}", args.id),
                None => println!("client {} registered", args.id),
            }
        }
    }
    store.close().await?;
    Ok(ExitCode::SUCCESS)
}
