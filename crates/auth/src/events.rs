//! What the authorization server tells the audit trail: sign-ins, tokens issued and
//! refused, revocations, launch contexts. Never secrets, never PHI beyond the patient id.

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthEventKind {
    /// A user signed in on the authorization page.
    LoginSucceeded,
    /// A sign-in failed (unknown user, wrong password, disabled user).
    LoginFailed,
    /// A token was issued (by the token endpoint) or an API token created.
    TokenIssued,
    /// A token request, an authorization request or a bearer token was refused.
    TokenRefused,
    /// A token or a token family was revoked (by request, or because a used code or refresh
    /// token was replayed).
    Revoked,
    /// An EHR launch context was created.
    LaunchCreated,
}

impl AuthEventKind {
    /// A short name (`login`, `login-failed`, `token`, `token-refused`, `revoke`, `launch`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login",
            Self::LoginFailed => "login-failed",
            Self::TokenIssued => "token",
            Self::TokenRefused => "token-refused",
            Self::Revoked => "revoke",
            Self::LaunchCreated => "launch",
        }
    }

    /// Whether the event reports a success.
    pub fn is_success(self) -> bool {
        !matches!(self, Self::LoginFailed | Self::TokenRefused)
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    /// What happened.
    pub kind: AuthEventKind,
    /// Who: a user name, a client id, or `anonymous`.
    pub agent: String,
    /// The OAuth client concerned.
    pub client_id: Option<String>,
    /// The peer address, when the server knows it.
    pub source_addr: Option<String>,
    /// The grant type or endpoint (`authorization_code`, `refresh_token`,
    /// `client_credentials`, `authorize`, `bearer`, `introspect`, `revoke`, `launch`, `api-token`).
    pub action: String,
    /// The patient id of the launch context, when there is one.
    pub patient: Option<String>,
    /// Granted scopes, or the reason of a refusal (never a secret).
    pub detail: Option<String>,
}

/// Receives the events (the binary writes them to the audit trail).
pub trait AuthEvents: Send + Sync {
    /// Called once per event; must not block for long (queue the write).
    fn record(&self, event: AuthEvent);
}

/// Ignores events (tests, or before the audit trail is wired).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl AuthEvents for NoEvents {
    fn record(&self, _event: AuthEvent) {}
}
