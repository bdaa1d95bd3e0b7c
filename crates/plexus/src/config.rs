//! `plexus.toml`: the store and the listeners `plexus serve` runs.
//!
//! Without a file, Plexus runs one MLLP listener on 127.0.0.1:2575 (channel `default`) over
//! the SQLite store in `./plexus-data`. See `plexus.example.toml` for every setting.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where messages are kept.
    #[serde(default)]
    pub store: store::StoreConfig,
    /// Plain MLLP listeners that only store (`[[listener]]` tables). Without any, and
    /// without `channels`, one listener on 127.0.0.1:2575 (channel `default`) is started.
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// Folder of channel files (one TOML file per channel), relative to this file.
    pub channels: Option<PathBuf>,
    /// This node's name (queue leases are held in it). Default: the host name. Nodes that
    /// share a PostgreSQL store need distinct names.
    pub node: Option<String>,
    /// The admin API, `/metrics` and health checks.
    #[serde(default)]
    pub admin: AdminConfig,
    /// How often channel retention (pruning) runs. Default: 1 h.
    #[serde(default = "default_retention_interval", with = "mllp::duration")]
    pub retention_interval: std::time::Duration,
    /// Alert rules (`[[alert]]` tables).
    #[serde(default, rename = "alert")]
    pub alerts: Vec<crate::alerts::AlertConfig>,
    /// The FHIR R4 REST API.
    #[serde(default)]
    pub fhir: FhirConfig,
    /// Authorization and the audit trail.
    #[serde(default)]
    pub security: SecurityConfig,
}

/// `[security]`: who may call the FHIR and admin APIs, and the audit trail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Require a bearer token on the FHIR API: a SMART access token of the built-in
    /// authorization server, or a Plexus API token. Default: true.
    #[serde(default = "yes")]
    pub fhir_auth: bool,
    /// Require an API token of a user with a role on the admin API (all but `/healthz`,
    /// `/readyz`, `/metrics` and `/openapi.json`). Default: true.
    #[serde(default = "yes")]
    pub admin_auth: bool,
    /// Record every access to patient data, every sign-in and every configuration change
    /// in the audit trail. Default: true.
    #[serde(default = "yes")]
    pub audit: bool,
    /// The public URL of the authorization server, ending in `/auth` (behind a proxy, the
    /// proxy's). Default: the FHIR listener's scheme, address and `/auth`.
    pub auth_base: Option<String>,
    /// The token signing key (PEM: PKCS#8 P-384, or RSA). Default: a P-384 key generated
    /// once into `key_dir`.
    pub signing_key: Option<PathBuf>,
    /// Where a generated signing key is kept. Default: the SQLite store's folder, or
    /// `./plexus-data` with PostgreSQL (nodes sharing a database need the same key: set
    /// `signing_key`).
    pub key_dir: Option<PathBuf>,
    /// Lifetime of access tokens, 5 to 60 minutes. Default: 15 min.
    #[serde(default = "default_access_token_lifetime", with = "mllp::duration")]
    pub access_token_lifetime: std::time::Duration,
    /// Sign-in to the admin API with an external OpenID Connect provider
    /// (`[security.oidc]`). Default: none.
    pub oidc: Option<crate::oidc::OidcConfig>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            fhir_auth: true,
            admin_auth: true,
            audit: true,
            auth_base: None,
            signing_key: None,
            key_dir: None,
            access_token_lifetime: default_access_token_lifetime(),
            oidc: None,
        }
    }
}

fn default_access_token_lifetime() -> std::time::Duration {
    std::time::Duration::from_mins(15)
}

impl SecurityConfig {
    /// Where a generated signing key lives for `store`.
    pub fn key_dir(&self, store: &store::StoreConfig) -> PathBuf {
        self.key_dir.clone().unwrap_or_else(|| match store {
            store::StoreConfig::Sqlite(s) => s.path.clone(),
            store::StoreConfig::Postgres(_) => PathBuf::from("plexus-data"),
        })
    }
}

/// Where and how the FHIR API is served (`[fhir]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirConfig {
    /// Serve it at all. Default: true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address. Default: 127.0.0.1:8081. The API is at `/fhir` on it.
    #[serde(default = "default_fhir_bind")]
    pub bind: std::net::SocketAddr,
    /// The base URL clients use, for links and `Location` (behind a proxy, the proxy's).
    /// Default: `http://<bind>/fhir`.
    pub base_url: Option<String>,
    /// Page size of searches without `_count`. Default: 20.
    #[serde(default = "default_fhir_count")]
    pub default_count: usize,
    /// Largest page size. Default: 1000.
    #[serde(default = "default_fhir_max_count")]
    pub max_count: usize,
    /// HTTPS: certificate and key, and with `client_ca`, mutual TLS (the same table as an
    /// MLLP listener's). Default: plain HTTP.
    pub tls: Option<mllp::TlsServerConfig>,
    /// Peer addresses and networks allowed to connect. Default: everyone.
    #[serde(default)]
    pub allow: mllp::allow::IpAllowList,
}

impl Default for FhirConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: default_fhir_bind(),
            base_url: None,
            default_count: default_fhir_count(),
            max_count: default_fhir_max_count(),
            tls: None,
            allow: mllp::allow::IpAllowList::default(),
        }
    }
}

impl FhirConfig {
    /// The server settings for a listener bound to `addr` (the actual address, when the
    /// configured port was 0).
    pub fn server_config(&self, addr: std::net::SocketAddr) -> fhir_server::FhirConfig {
        let base = self.base_url.clone().unwrap_or_else(|| {
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{addr}/fhir")
        });
        let mut c = fhir_server::FhirConfig::new(base);
        c.default_count = self.default_count.max(1);
        c.max_count = self.max_count.max(c.default_count);
        c
    }
}

fn default_fhir_bind() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 8081))
}

fn default_fhir_count() -> usize {
    20
}

fn default_fhir_max_count() -> usize {
    1000
}

/// Where the admin API listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve it at all. Default: true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address. Default: 127.0.0.1:8080.
    #[serde(default = "default_admin_bind")]
    pub bind: std::net::SocketAddr,
    /// HTTPS (and mutual TLS with `client_ca`). Default: plain HTTP.
    pub tls: Option<mllp::TlsServerConfig>,
    /// Peer addresses and networks allowed to connect. Default: everyone.
    #[serde(default)]
    pub allow: mllp::allow::IpAllowList,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: default_admin_bind(),
            tls: None,
            allow: mllp::allow::IpAllowList::default(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_admin_bind() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_retention_interval() -> std::time::Duration {
    std::time::Duration::from_hours(1)
}

/// One MLLP listener: the channel its messages belong to, and the MLLP server settings
/// (`bind`, `tls`, limits and timeouts) in the same table.
#[derive(Debug, Clone, Deserialize)]
pub struct ListenerConfig {
    /// Channel name recorded with every message received here.
    #[serde(default = "default_channel")]
    pub channel: String,
    /// When to send the accept acknowledgment of an enhanced-mode message: `always` (the
    /// default — MLLP senders wait for a reply, whatever MSH-15 says) or `as-requested`
    /// (follow MSH-15: none for `NE`, only on errors for `ER`, only on success for `SU`).
    #[serde(default)]
    pub accept_ack: AcceptAck,
    /// The MLLP server settings.
    #[serde(flatten)]
    pub mllp: mllp::ServerConfig,
}

/// See [`ListenerConfig::accept_ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcceptAck {
    /// Always answer.
    #[default]
    Always,
    /// Answer as MSH-15 asks.
    AsRequested,
}

fn default_channel() -> String {
    "default".into()
}

fn default_listeners() -> Vec<ListenerConfig> {
    vec![ListenerConfig {
        channel: default_channel(),
        accept_ack: AcceptAck::Always,
        mllp: mllp::ServerConfig::default(),
    }]
}

impl Default for Config {
    fn default() -> Self {
        Self {
            store: store::StoreConfig::default(),
            listeners: default_listeners(),
            channels: None,
            node: None,
            admin: AdminConfig::default(),
            retention_interval: default_retention_interval(),
            alerts: Vec::new(),
            fhir: FhirConfig::default(),
            security: SecurityConfig::default(),
        }
    }
}

impl Config {
    /// Reads a configuration file; errors name the file, line, column and key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut config =
            Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if let Some(dir) = &config.channels
            && dir.is_relative()
            && let Some(parent) = path.parent()
        {
            config.channels = Some(parent.join(dir));
        }
        Ok(config)
    }

    /// This node's name: `node`, else the host name, else `local`.
    pub fn node_name(&self) -> String {
        self.node.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "local".into())
        })
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> Result<Self> {
        // each listener key alone first: serde's flatten neither keeps positions nor rejects
        // misspelt keys
        if let Some(e) = locate_listener_error(text) {
            bail!("{e}");
        }
        let mut config: Self =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", describe(&e, text)))?;
        if config.listeners.is_empty() && config.channels.is_none() {
            config.listeners = default_listeners();
        }
        config.check()?;
        Ok(config)
    }

    /// The configuration named on the command line, else `./plexus.toml` if it exists, else the
    /// defaults.
    pub fn resolve(path: Option<&Path>) -> Result<(Self, Option<PathBuf>)> {
        if let Some(p) = path {
            return Ok((Self::load(p)?, Some(p.to_path_buf())));
        }
        let p = PathBuf::from("plexus.toml");
        if p.exists() {
            Ok((Self::load(&p)?, Some(p)))
        } else {
            Ok((Self::default(), None))
        }
    }

    fn check(&self) -> Result<()> {
        if self.listeners.is_empty() && self.channels.is_none() {
            bail!("no [[listener]] and no channels configured: plexus serve would receive nothing");
        }
        let mut binds = std::collections::HashSet::new();
        for l in &self.listeners {
            if l.channel.trim().is_empty() {
                bail!("a [[listener]] has an empty channel name");
            }
            if l.mllp.bind.port() != 0 && !binds.insert(l.mllp.bind) {
                bail!("two listeners bind {}", l.mllp.bind);
            }
        }
        let mut alerts = std::collections::HashSet::new();
        for a in &self.alerts {
            if a.name.trim().is_empty() {
                bail!("an [[alert]] has an empty name");
            }
            if !alerts.insert(a.name.as_str()) {
                bail!(
                    "two [[alert]] rules are named {:?}; each needs its own name",
                    a.name
                );
            }
        }
        Ok(())
    }
}

/// Checks each key of each `[[listener]]` alone against the MLLP settings, so that a bad or
/// misspelt key is reported with its line (the listener is read through `#[serde(flatten)]`,
/// which would lose the position and accept unknown keys).
fn locate_listener_error(text: &str) -> Option<String> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    let listeners = doc.get("listener")?.as_array()?;
    for (n, listener) in listeners.iter().enumerate() {
        for (key, value) in listener.as_table()? {
            if matches!(key.as_str(), "channel" | "accept_ack") {
                continue;
            }
            let mut one = toml::Table::new();
            one.insert(key.clone(), value.clone());
            if let Err(e) = toml::Value::Table(one).try_into::<mllp::ServerConfig>() {
                let line =
                    line_of_key(text, n, key).map_or_else(String::new, |l| format!("line {l}, "));
                return Some(format!(
                    "{line}[[listener]] #{}: `{key}`: {}",
                    n + 1,
                    e.message().trim()
                ));
            }
        }
    }
    None
}

/// The line of `key` inside the `n`-th `[[listener]]` table.
fn line_of_key(text: &str, n: usize, key: &str) -> Option<usize> {
    let mut seen = 0;
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            inside = t == "[[listener]]" && {
                seen += 1;
                seen == n + 1
            };
            continue;
        }
        if inside && t.split('=').next().is_some_and(|k| k.trim() == key) {
            return Some(i + 1);
        }
    }
    None
}

/// A TOML error with its line and column.
fn describe(e: &toml::de::Error, text: &str) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let col = span.start
                - text[..span.start.min(text.len())]
                    .rfind('\n')
                    .map_or(0, |i| i + 1)
                + 1;
            format!("line {line}, column {col}: {}", e.message())
        }
        None => e.message().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_a_file() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].mllp.bind.port(), 2575);
        assert!(matches!(c.store, store::StoreConfig::Sqlite(_)));
    }

    #[test]
    fn reads_listeners_and_store() {
        let c = Config::parse(
            r#"
            [store]
            kind = "postgres"
            url = "postgres://postgres@127.0.0.1:5432/test"

            [[listener]]
            channel = "adt-in"
            bind = "0.0.0.0:2575"
            read_timeout = "10s"

            [[listener]]
            channel = "lab-in"
            bind = "0.0.0.0:2576"
            "#,
        )
        .unwrap();
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.listeners[1].channel, "lab-in");
        assert_eq!(
            c.listeners[0].mllp.read_timeout,
            std::time::Duration::from_secs(10)
        );
    }

    #[test]
    fn the_documented_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plexus.example.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.listeners[0].channel, "adt-in");
        let tls = c.listeners[1].mllp.tls.as_ref().unwrap();
        assert!(tls.client_ca.is_some());
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = Config::parse("[[listener]]\nchannel = \"a\"\nbind = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("`bind`"), "{e}");
        let e = Config::parse("[[listener]]\nchanel = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("chanel"), "{e}");
        let e = Config::parse(
            "[[listener]]\nbind = \"127.0.0.1:2575\"\n[[listener]]\nbind = \"127.0.0.1:2575\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("two listeners"), "{e}");
        let alert = "[[alert]]\nname = \"a\"\nwhen = \"stopped\"\n";
        let e = Config::parse(&format!("{alert}{alert}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("two [[alert]] rules are named \"a\""), "{e}");
    }
}
