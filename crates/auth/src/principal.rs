//! The authenticated caller of a request, and the roles of the admin API.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::scopes::{Decision, Perm, ScopeSet};

/// Who is calling, as established from a bearer token (SMART access token or API token) or
/// a console session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name, or the client id of a backend service.
    pub subject: String,
    /// The OAuth client the token was issued to, if any.
    pub client_id: Option<String>,
    /// The FHIR resource of the user (`Practitioner/123`), if known.
    pub fhir_user: Option<String>,
    /// The granted scopes.
    pub scopes: ScopeSet,
    /// The patient of the launch context (an id of a Patient).
    pub patient: Option<String>,
    /// The encounter of the launch context.
    pub encounter: Option<String>,
    /// The token's id (`jti`), for revocation and audit.
    pub token_id: Option<String>,
    /// Admin roles (for API tokens and console sessions; empty for SMART tokens).
    pub roles: Vec<Role>,
}

impl Principal {
    /// What this caller may do with `perm` on `resource_type`.
    pub fn access(&self, resource_type: &str, perm: Perm) -> Decision {
        self.scopes
            .access(resource_type, perm, self.patient.as_deref())
    }

    /// Whether any of the caller's roles allows `action`.
    pub fn may(&self, action: AdminAction) -> bool {
        self.roles.iter().any(|r| r.allows(action))
    }
}

/// A role of the admin API and console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything, including users and roles.
    Admin,
    /// Builds channels: deploy and control them, read and reprocess messages.
    Developer,
    /// Runs channels: start, stop, pause; read and reprocess messages.
    Operator,
    /// Reads the audit trail; sees channel status but no message content.
    Auditor,
    /// Sees channel status and statistics only.
    ReadOnly,
}

/// Something the admin API lets a caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminAction {
    /// List channels, their status, statistics and queue depths.
    ViewChannels,
    /// Deploy, undeploy or redeploy channels (a configuration change).
    DeployChannels,
    /// Start, stop, pause and resume channels and queues.
    ControlChannels,
    /// Read messages and their content (patient data).
    ViewMessages,
    /// Reprocess messages.
    Reprocess,
    /// Search the audit trail.
    ViewAudit,
    /// Manage users, roles, API tokens and OAuth clients.
    ManageSecurity,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Developer,
        Role::Operator,
        Role::Auditor,
        Role::ReadOnly,
    ];

    /// Whether this role allows `action`.
    pub fn allows(self, action: AdminAction) -> bool {
        use AdminAction as A;
        match self {
            Role::Admin => true,
            Role::Developer => matches!(
                action,
                A::ViewChannels
                    | A::DeployChannels
                    | A::ControlChannels
                    | A::ViewMessages
                    | A::Reprocess
            ),
            Role::Operator => matches!(
                action,
                A::ViewChannels | A::ControlChannels | A::ViewMessages | A::Reprocess
            ),
            Role::Auditor => matches!(action, A::ViewChannels | A::ViewAudit),
            Role::ReadOnly => matches!(action, A::ViewChannels),
        }
    }

    /// The name used in configuration and tokens (`read-only`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::ReadOnly => "read-only",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role `{s}` (admin, developer, operator, auditor, read-only)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_matrix() {
        use AdminAction as A;
        let all = [
            A::ViewChannels,
            A::DeployChannels,
            A::ControlChannels,
            A::ViewMessages,
            A::Reprocess,
            A::ViewAudit,
            A::ManageSecurity,
        ];
        let expect = |role: Role| -> Vec<bool> { all.iter().map(|a| role.allows(*a)).collect() };
        assert_eq!(expect(Role::Admin), [true; 7]);
        assert_eq!(
            expect(Role::Developer),
            [true, true, true, true, true, false, false]
        );
        assert_eq!(
            expect(Role::Operator),
            [true, false, true, true, true, false, false]
        );
        assert_eq!(
            expect(Role::Auditor),
            [true, false, false, false, false, true, false]
        );
        assert_eq!(
            expect(Role::ReadOnly),
            [true, false, false, false, false, false, false]
        );
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
