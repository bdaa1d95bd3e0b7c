//! FHIR R4 `AuditEvent`s for the audit trail, following the IHE Basic Audit Log Patterns
//! (BALP).
//!
//! A caller describes what happened in an [`AuditFacts`] — usually made by one of its
//! constructors ([`AuditFacts::fhir_interaction`], [`AuditFacts::login`], …) and adjusted with
//! its setters — and [`record`] turns it into the [`store::audit::NewAuditRecord`] the store
//! appends: the searchable columns and the full `AuditEvent`.
//!
//! What the events hold, per BALP:
//!
//! - `type`/`subtype`: FHIR REST interactions are type `rest`
//!   (`http://terminology.hl7.org/CodeSystem/audit-event-type`) with the interaction
//!   (`http://hl7.org/fhir/restful-interaction`) as subtype; logins and logouts are DICOM
//!   `110114` User Authentication with `110122` Login / `110123` Logout; token issuance is a
//!   login of the client, with a second, Plexus subtype `token`; message views and
//!   reprocessing are DICOM `110110` Patient Record; exports `110106` Export; configuration
//!   and security changes `110113` Security Alert (`110131` Software Configuration,
//!   `110136` Security Roles Changed); reading the audit trail is `110101` Audit Log Used.
//! - `agent`: the requestor (a user — type `humanuser` — or a client application, DICOM
//!   `110153` Source Role ID), identified by name with `requestor = true` and the peer's IP
//!   address as `network`; the OAuth client the user went through, when there is one; and
//!   this server as DICOM `110152` Destination Role ID.
//! - `source.observer`: this Plexus node, source type `4` Application Server.
//! - `entity`: the resource touched as a `what` reference; the patient as its own entity with
//!   role `1` Patient (`http://terminology.hl7.org/CodeSystem/object-role`). A search records
//!   the resource type and the NAMES of its parameters (in `entity.detail`), never their values
//!   and never `entity.query`: search values are often patient data (names, birth dates).
//! - `outcomeDesc`: a reason for a failure, given by the caller; it must not contain PHI.
//!
//! ```
//! use auth::audit::{self, AuditFacts, Interaction, Outcome, What, Who};
//!
//! let facts = AuditFacts::fhir_interaction(
//!     Who::Name("dr-smith"),
//!     Interaction::Read,
//!     What::Resource { resource_type: "Observation", id: Some("5"), version: None },
//! )
//! .patient(Some("123"))
//! .from_addr(Some("10.1.2.3"))
//! .observer("plexus-1");
//! let rec = audit::record(&facts);
//! assert_eq!((rec.action.as_str(), rec.type_code.as_str()), ("R", "rest"));
//! assert_eq!(rec.patient.as_deref(), Some("Patient/123"));
//! assert_eq!(rec.entity.as_deref(), Some("Observation/5"));
//! assert_eq!(rec.event["resourceType"], "AuditEvent");
//! ```

use serde_json::{Value, json};
use store::Timestamp;
use store::audit::NewAuditRecord;

use crate::events::{AuthEvent, AuthEventKind};
use crate::principal::{AdminAction, Principal};

/// `AuditEvent.type` system for `rest`.
pub const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
/// FHIR RESTful interactions (subtypes of `rest`).
pub const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
/// DICOM controlled terminology (event types, subtypes and agent roles).
pub const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// Object roles of entities (`1` Patient, `4` Domain Resource, `24` Query).
pub const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
/// Entity types (`1` Person, `2` System Object).
pub const AUDIT_ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
/// Source types (`4` Application Server).
pub const SECURITY_SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
/// Agent type of a person (`humanuser`).
pub const EXTRA_SECURITY_ROLE_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/extra-security-role-type";
/// Plexus' own subtypes, where no standard code fits (`token`, `message-view`, …).
pub const PLEXUS_SUBTYPE: &str = "urn:plexus:audit-subtype";
/// Identifier system of Plexus user names.
pub const PLEXUS_USER: &str = "urn:plexus:user";
/// Identifier system of OAuth client ids.
pub const PLEXUS_CLIENT: &str = "urn:plexus:client";
/// Identifier system of journal message ids.
pub const PLEXUS_MESSAGE: &str = "urn:plexus:message";
/// Identifier system of configuration objects (channels, listeners, users).
pub const PLEXUS_CONFIG: &str = "urn:plexus:config";

/// A FHIR RESTful interaction (`http://hl7.org/fhir/restful-interaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Interaction {
    Read,
    Vread,
    Update,
    Patch,
    Delete,
    History,
    HistoryInstance,
    HistoryType,
    HistorySystem,
    Create,
    Search,
    SearchType,
    SearchSystem,
    Capabilities,
    Transaction,
    Batch,
    Operation,
}

impl Interaction {
    /// The code (`search-type`).
    pub fn code(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Vread => "vread",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::History => "history",
            Self::HistoryInstance => "history-instance",
            Self::HistoryType => "history-type",
            Self::HistorySystem => "history-system",
            Self::Create => "create",
            Self::Search => "search",
            Self::SearchType => "search-type",
            Self::SearchSystem => "search-system",
            Self::Capabilities => "capabilities",
            Self::Transaction => "transaction",
            Self::Batch => "batch",
            Self::Operation => "operation",
        }
    }

    /// `AuditEvent.action`: `C` create, `R` read/search/history, `U` update/patch, `D` delete,
    /// `E` transaction, batch, operation.
    pub fn action(self) -> Action {
        match self {
            Self::Create => Action::Create,
            Self::Update | Self::Patch => Action::Update,
            Self::Delete => Action::Delete,
            Self::Transaction | Self::Batch | Self::Operation => Action::Execute,
            _ => Action::Read,
        }
    }
}

/// `AuditEvent.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `C`.
    Create,
    /// `R`.
    Read,
    /// `U`.
    Update,
    /// `D`.
    Delete,
    /// `E`.
    Execute,
}

impl Action {
    /// The code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Create => "C",
            Self::Read => "R",
            Self::Update => "U",
            Self::Delete => "D",
            Self::Execute => "E",
        }
    }
}

/// `AuditEvent.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Outcome {
    /// `0`.
    #[default]
    Success,
    /// `4`: the request failed, nothing was done (refused, not found, invalid).
    MinorFailure,
    /// `8`: the action was not completed (an error of the server).
    SeriousFailure,
    /// `12`: a major failure.
    MajorFailure,
}

impl Outcome {
    /// The code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Success => "0",
            Self::MinorFailure => "4",
            Self::SeriousFailure => "8",
            Self::MajorFailure => "12",
        }
    }

    /// The outcome of an HTTP response status: 2xx/3xx success, 4xx minor, 5xx serious.
    pub fn from_http_status(status: u16) -> Self {
        match status {
            0..400 => Self::Success,
            400..500 => Self::MinorFailure,
            _ => Self::SeriousFailure,
        }
    }
}

/// What kind of event: decides `type`, `subtype` and `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// A FHIR REST interaction.
    Rest(Interaction),
    /// A user signed in (console, authorization page).
    Login,
    /// A user signed out.
    Logout,
    /// A token was requested from the token endpoint (issued or refused).
    Token,
    /// A token or a token family was revoked.
    TokenRevoked,
    /// An EHR launch context was created.
    LaunchCreated,
    /// A journal message was read through the admin API or console.
    MessageView,
    /// A message was reprocessed.
    Reprocess,
    /// Data was exported (bulk export, `$everything` download).
    Export,
    /// The configuration changed (channel deployed, settings edited).
    ConfigChange,
    /// Users, roles, API tokens or OAuth clients changed.
    SecurityChange,
    /// The audit trail was read.
    AuditRead,
    /// Another admin API action (channel control, views).
    Admin(AdminAction),
}

/// A coding.
#[derive(Debug, Clone, Copy)]
struct Coding {
    system: &'static str,
    code: &'static str,
    display: &'static str,
}

const fn code(system: &'static str, code: &'static str, display: &'static str) -> Coding {
    Coding {
        system,
        code,
        display,
    }
}

impl Coding {
    fn json(self) -> Value {
        json!({"system": self.system, "code": self.code, "display": self.display})
    }
}

const USER_AUTHENTICATION: Coding = code(DCM, "110114", "User Authentication");
const PATIENT_RECORD: Coding = code(DCM, "110110", "Patient Record");
const SECURITY_ALERT: Coding = code(DCM, "110113", "Security Alert");
const APPLICATION_ACTIVITY: Coding = code(DCM, "110100", "Application Activity");

impl EventType {
    /// `type`, `subtype`s (the first is the one stored in the `subtype` column) and `action`.
    fn codes(self) -> (Coding, Vec<Coding>, Action) {
        match self {
            Self::Rest(i) => (
                code(AUDIT_EVENT_TYPE, "rest", "Restful Operation"),
                vec![code(RESTFUL_INTERACTION, i.code(), i.code())],
                i.action(),
            ),
            Self::Login => (
                USER_AUTHENTICATION,
                vec![code(DCM, "110122", "Login")],
                Action::Execute,
            ),
            Self::Logout => (
                USER_AUTHENTICATION,
                vec![code(DCM, "110123", "Logout")],
                Action::Execute,
            ),
            Self::Token => (
                USER_AUTHENTICATION,
                vec![
                    code(PLEXUS_SUBTYPE, "token", "OAuth token request"),
                    code(DCM, "110122", "Login"),
                ],
                Action::Execute,
            ),
            Self::TokenRevoked => (
                USER_AUTHENTICATION,
                vec![code(PLEXUS_SUBTYPE, "revoke", "Token revoked")],
                Action::Delete,
            ),
            Self::LaunchCreated => (
                APPLICATION_ACTIVITY,
                vec![code(PLEXUS_SUBTYPE, "launch", "EHR launch context created")],
                Action::Create,
            ),
            Self::MessageView => (
                PATIENT_RECORD,
                vec![code(PLEXUS_SUBTYPE, "message-view", "Message viewed")],
                Action::Read,
            ),
            Self::Reprocess => (
                PATIENT_RECORD,
                vec![code(PLEXUS_SUBTYPE, "reprocess", "Message reprocessed")],
                Action::Execute,
            ),
            Self::Export => (
                code(DCM, "110106", "Export"),
                vec![code(PLEXUS_SUBTYPE, "export", "Data exported")],
                Action::Read,
            ),
            Self::ConfigChange => (
                SECURITY_ALERT,
                vec![code(DCM, "110131", "Software Configuration")],
                Action::Update,
            ),
            Self::SecurityChange => (
                SECURITY_ALERT,
                vec![code(DCM, "110136", "Security Roles Changed")],
                Action::Update,
            ),
            Self::AuditRead => (code(DCM, "110101", "Audit Log Used"), vec![], Action::Read),
            Self::Admin(action) => admin_codes(action),
        }
    }
}

/// What an admin action records (the security-relevant ones map to their own event types).
fn admin_codes(action: AdminAction) -> (Coding, Vec<Coding>, Action) {
    match action {
        AdminAction::ViewMessages => EventType::MessageView.codes(),
        AdminAction::Reprocess => EventType::Reprocess.codes(),
        AdminAction::ViewAudit => EventType::AuditRead.codes(),
        AdminAction::DeployChannels => EventType::ConfigChange.codes(),
        AdminAction::ManageSecurity => EventType::SecurityChange.codes(),
        AdminAction::ControlChannels => (
            APPLICATION_ACTIVITY,
            vec![code(
                PLEXUS_SUBTYPE,
                "channel-control",
                "Channel started, stopped or paused",
            )],
            Action::Execute,
        ),
        AdminAction::ViewChannels => (
            APPLICATION_ACTIVITY,
            vec![code(
                PLEXUS_SUBTYPE,
                "channel-view",
                "Channel status viewed",
            )],
            Action::Read,
        ),
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy)]
pub enum Who<'a> {
    /// An authenticated caller.
    Principal(&'a Principal),
    /// A user name (a login attempt, a console user).
    Name(&'a str),
    /// An OAuth client acting for itself (backend services, a token request).
    Client(&'a str),
    /// Nobody known (a request without credentials).
    Anonymous,
}

/// What was touched.
#[derive(Debug, Clone, Copy)]
pub enum What<'a> {
    /// Nothing in particular (a login, a capabilities read).
    Nothing,
    /// A FHIR resource, or a resource type when `id` is `None` (a create before the id is
    /// known, a type-level history).
    Resource {
        /// The type (`Observation`).
        resource_type: &'a str,
        /// The logical id.
        id: Option<&'a str>,
        /// The version (vread).
        version: Option<&'a str>,
    },
    /// A search: its type (`None` for a system search) and its parameter NAMES only
    /// (`code`, `patient`, `_include`) — never their values.
    Search {
        /// The type searched.
        resource_type: Option<&'a str>,
        /// The parameter names.
        params: &'a [&'a str],
    },
    /// A journal message, by id.
    Message(&'a str),
    /// A configuration object: `channel/adt-in`, `user/alice`, `client/app-1`.
    Config(&'a str),
}

/// Everything an audit record is made from.
#[derive(Debug, Clone)]
pub struct AuditFacts<'a> {
    /// When it happened (default: now).
    pub recorded: Timestamp,
    /// What kind of event.
    pub event: EventType,
    /// Who.
    pub who: Who<'a>,
    /// The OAuth client, when not given by `who` already.
    pub client_id: Option<&'a str>,
    /// The peer's IP address.
    pub source_addr: Option<&'a str>,
    /// This Plexus node (`source.observer`; default `plexus`).
    pub observer: &'a str,
    /// How it went.
    pub outcome: Outcome,
    /// Why it failed (never PHI).
    pub outcome_desc: Option<&'a str>,
    /// What was touched.
    pub what: What<'a>,
    /// The patient concerned: an id (`123`) or a reference (`Patient/123`).
    pub patient: Option<&'a str>,
}

impl<'a> AuditFacts<'a> {
    /// Facts of an event of `event` by `who` on `what`, a success, now.
    pub fn new(event: EventType, who: Who<'a>, what: What<'a>) -> Self {
        Self {
            recorded: Timestamp::now(),
            event,
            who,
            client_id: None,
            source_addr: None,
            observer: "plexus",
            outcome: Outcome::Success,
            outcome_desc: None,
            what,
            patient: None,
        }
    }

    /// A FHIR REST interaction (BALP RESTful patterns).
    pub fn fhir_interaction(who: Who<'a>, interaction: Interaction, what: What<'a>) -> Self {
        Self::new(EventType::Rest(interaction), who, what)
    }

    /// A sign-in of `user`, successful or not.
    pub fn login(user: &'a str, success: bool) -> Self {
        let facts = Self::new(EventType::Login, Who::Name(user), What::Nothing);
        if success {
            facts
        } else {
            facts.failed(Outcome::MinorFailure, "authentication failed")
        }
    }

    /// A sign-out of `user`.
    pub fn logout(user: &'a str) -> Self {
        Self::new(EventType::Logout, Who::Name(user), What::Nothing)
    }

    /// A token request at the token endpoint by `client_id` (for `user`, if a user
    /// authorized it), issued or refused.
    pub fn token(client_id: &'a str, user: Option<&'a str>, issued: bool) -> Self {
        let who = user.map_or(Who::Client(client_id), Who::Name);
        let mut facts = Self::new(EventType::Token, who, What::Nothing);
        facts.client_id = Some(client_id);
        if issued {
            facts
        } else {
            facts.failed(Outcome::MinorFailure, "token request refused")
        }
    }

    /// An admin API action.
    pub fn admin_action(who: Who<'a>, action: AdminAction, what: What<'a>) -> Self {
        Self::new(EventType::Admin(action), who, what)
    }

    /// A journal message read through the admin API.
    pub fn message_view(who: Who<'a>, message_id: &'a str) -> Self {
        Self::new(EventType::MessageView, who, What::Message(message_id))
    }

    /// A message reprocessed.
    pub fn reprocess(who: Who<'a>, message_id: &'a str) -> Self {
        Self::new(EventType::Reprocess, who, What::Message(message_id))
    }

    /// A configuration change of `object` (`channel/adt-in`).
    pub fn config_change(who: Who<'a>, object: &'a str) -> Self {
        Self::new(EventType::ConfigChange, who, What::Config(object))
    }

    /// Facts of an event of the authorization server (what the binary's
    /// [`crate::AuthEvents`] sink records): sign-ins, token requests, revocations, launches.
    pub fn auth_event(e: &'a AuthEvent) -> Self {
        let event = match e.kind {
            AuthEventKind::LoginSucceeded | AuthEventKind::LoginFailed => EventType::Login,
            AuthEventKind::TokenIssued | AuthEventKind::TokenRefused => EventType::Token,
            AuthEventKind::Revoked => EventType::TokenRevoked,
            AuthEventKind::LaunchCreated => EventType::LaunchCreated,
        };
        let who = match (e.agent.as_str(), e.client_id.as_deref()) {
            ("anonymous" | "", _) => Who::Anonymous,
            (agent, Some(client)) if agent == client => Who::Client(client),
            (agent, _) => Who::Name(agent),
        };
        let mut facts = Self::new(event, who, What::Nothing)
            .from_addr(e.source_addr.as_deref())
            .patient(e.patient.as_deref());
        facts.client_id = e.client_id.as_deref();
        if !e.kind.is_success() {
            facts = facts.failed(
                Outcome::MinorFailure,
                e.detail.as_deref().unwrap_or("refused"),
            );
        }
        facts
    }

    /// Sets the patient (an id or `Patient/id`).
    #[must_use]
    pub fn patient(mut self, patient: Option<&'a str>) -> Self {
        self.patient = patient;
        self
    }

    /// Sets the peer's address.
    #[must_use]
    pub fn from_addr(mut self, addr: Option<&'a str>) -> Self {
        self.source_addr = addr;
        self
    }

    /// Sets this node's name.
    #[must_use]
    pub fn observer(mut self, node: &'a str) -> Self {
        self.observer = node;
        self
    }

    /// Marks a failure, with a reason that holds no PHI.
    #[must_use]
    pub fn failed(mut self, outcome: Outcome, reason: &'a str) -> Self {
        self.outcome = outcome;
        self.outcome_desc = Some(reason);
        self
    }

    /// Sets the time.
    #[must_use]
    pub fn at(mut self, recorded: Timestamp) -> Self {
        self.recorded = recorded;
        self
    }
}

/// Whether `id` is a valid FHIR id (`[A-Za-z0-9\-\.]{1,64}`).
fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Whether `t` looks like a resource type name.
fn is_type_name(t: &str) -> bool {
    t.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && t.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The patient as `Patient/id`, from an id or a reference.
fn patient_reference(patient: &str) -> String {
    let id = patient.strip_prefix("Patient/").unwrap_or(patient);
    format!("Patient/{id}")
}

/// Types `agent.who` may reference.
const AGENT_TARGETS: [&str; 6] = [
    "PractitionerRole",
    "Practitioner",
    "Organization",
    "Device",
    "Patient",
    "RelatedPerson",
];

/// `who` of an agent: an identifier in `system`, and a reference to `fhir_user` when it is a
/// relative reference of a type the element allows.
fn who_json(system: &str, name: &str, fhir_user: Option<&str>) -> Value {
    let mut who = json!({
        "identifier": {"system": system, "value": name},
        "display": name,
    });
    if let Some((t, id)) = fhir_user.and_then(|u| u.split_once('/'))
        && AGENT_TARGETS.contains(&t)
        && is_fhir_id(id)
    {
        who["reference"] = json!(format!("{t}/{id}"));
    }
    who
}

/// The agents: requestor, the client application it went through, this server.
fn agents(facts: &AuditFacts<'_>) -> (String, Option<String>, Vec<Value>) {
    let human = code(EXTRA_SECURITY_ROLE_TYPE, "humanuser", "human user");
    let source_role = code(DCM, "110153", "Source Role ID");
    let network = facts
        .source_addr
        .map(|a| json!({"address": a, "type": "2"}));
    let (name, client, requestor) = match facts.who {
        Who::Principal(p) => {
            let client = p.client_id.as_deref().or(facts.client_id);
            // a backend service's subject is its client id: one agent, the application
            let is_app = client == Some(p.subject.as_str());
            let mut agent = json!({
                "type": {"coding": [if is_app { source_role } else { human }.json()]},
                "who": who_json(if is_app { PLEXUS_CLIENT } else { PLEXUS_USER }, &p.subject, p.fhir_user.as_deref()),
                "requestor": true,
            });
            if !p.roles.is_empty() {
                agent["role"] = Value::Array(
                    p.roles
                        .iter()
                        .map(|r| json!({"text": r.as_str()}))
                        .collect(),
                );
            }
            if let Some(jti) = p
                .token_id
                .as_deref()
                .filter(|j| !j.is_empty() && !j.chars().any(char::is_whitespace))
            {
                // BALP: the token's identifier as the agent's policy
                agent["policy"] = json!([jti]);
            }
            (p.subject.clone(), if is_app { None } else { client }, agent)
        }
        Who::Name(n) => (
            n.to_owned(),
            facts.client_id,
            json!({
                "type": {"coding": [human.json()]},
                "who": who_json(PLEXUS_USER, n, None),
                "requestor": true,
            }),
        ),
        Who::Client(c) => (
            c.to_owned(),
            facts.client_id.filter(|id| *id != c),
            json!({
                "type": {"coding": [source_role.json()]},
                "who": who_json(PLEXUS_CLIENT, c, None),
                "requestor": true,
            }),
        ),
        Who::Anonymous => (
            "anonymous".to_owned(),
            facts.client_id,
            json!({
                "type": {"coding": [human.json()]},
                "who": {"display": "anonymous"},
                "requestor": true,
            }),
        ),
    };
    let mut requestor = requestor;
    if let Some(n) = network.clone() {
        requestor["network"] = n;
    }
    let mut list = vec![requestor];
    if let Some(c) = client {
        let mut app = json!({
            "type": {"coding": [source_role.json()]},
            "who": who_json(PLEXUS_CLIENT, c, None),
            "requestor": false,
        });
        if let Some(n) = network {
            app["network"] = n;
        }
        list.push(app);
    }
    list.push(json!({
        "type": {"coding": [code(DCM, "110152", "Destination Role ID").json()]},
        "who": {"identifier": {"system": "urn:plexus:node", "value": facts.observer}, "display": facts.observer},
        "requestor": false,
    }));
    let client_id = match facts.who {
        Who::Principal(p) => p.client_id.clone().or(facts.client_id.map(str::to_owned)),
        Who::Client(c) => Some(c.to_owned()),
        _ => facts.client_id.map(str::to_owned),
    };
    (name, client_id, list)
}

fn entity_type_json(code: &str, display: &str) -> Value {
    json!({"system": AUDIT_ENTITY_TYPE, "code": code, "display": display})
}

fn entity_role_json(code: &str, display: &str) -> Value {
    json!({"system": OBJECT_ROLE, "code": code, "display": display})
}

/// The entity of `what`, and the `entity` column.
fn what_entity(what: What<'_>) -> (Option<Value>, Option<String>) {
    let object = entity_type_json("2", "System Object");
    match what {
        What::Nothing => (None, None),
        What::Resource {
            resource_type,
            id,
            version,
        } => {
            let column = match id {
                Some(id) => format!("{resource_type}/{id}"),
                None => resource_type.to_owned(),
            };
            let role = if resource_type == "Patient" {
                entity_role_json("1", "Patient")
            } else {
                entity_role_json("4", "Domain Resource")
            };
            let mut entity = json!({"type": object, "role": role});
            match id {
                Some(id) if is_type_name(resource_type) && is_fhir_id(id) => {
                    let reference = match version.filter(|v| is_fhir_id(v)) {
                        Some(v) => format!("{resource_type}/{id}/_history/{v}"),
                        None => format!("{resource_type}/{id}"),
                    };
                    entity["what"] = json!({"reference": reference});
                }
                _ => entity["name"] = json!(column),
            }
            (Some(entity), Some(column))
        }
        What::Search {
            resource_type,
            params,
        } => {
            // names only: a name is a search parameter's code, never a value
            let names: Vec<&str> = params
                .iter()
                .map(|p| p.split_once('=').map_or(*p, |(n, _)| n))
                .filter(|p| !p.is_empty())
                .collect();
            let column = format!("{}?{}", resource_type.unwrap_or(""), names.join(","));
            let mut entity = json!({
                "type": object,
                "role": entity_role_json("24", "Query"),
                "name": resource_type.map_or_else(|| "search".to_owned(), |t| format!("search of {t}")),
            });
            if !names.is_empty() {
                entity["detail"] =
                    json!([{"type": "parameter-names", "valueString": names.join(",")}]);
            }
            (Some(entity), Some(column))
        }
        What::Message(id) => (
            Some(json!({
                "what": {"identifier": {"system": PLEXUS_MESSAGE, "value": id}},
                "type": object,
                "role": entity_role_json("4", "Domain Resource"),
            })),
            Some(format!("message/{id}")),
        ),
        What::Config(name) => (
            Some(json!({
                "what": {"identifier": {"system": PLEXUS_CONFIG, "value": name}},
                "type": object,
                "role": entity_role_json("13", "Security Resource"),
            })),
            Some(format!("config/{name}")),
        ),
    }
}

/// Builds the record the store appends: its columns and the `AuditEvent`.
pub fn record(facts: &AuditFacts<'_>) -> NewAuditRecord {
    let (type_code, subtypes, action) = facts.event.codes();
    let (agent, client_id, agents) = agents(facts);
    let (what, mut entity_column) = what_entity(facts.what);
    let patient = facts
        .patient
        .filter(|p| !p.is_empty())
        .map(patient_reference);
    let mut entities: Vec<Value> = what.into_iter().collect();
    if let Some(p) = &patient {
        let id = p.trim_start_matches("Patient/");
        let already = entity_column.as_deref() == Some(p.as_str());
        if !already && is_fhir_id(id) {
            entities.push(json!({
                "what": {"reference": p},
                "type": entity_type_json("1", "Person"),
                "role": entity_role_json("1", "Patient"),
            }));
        }
    }
    // an entity column with `=` would be refused by the store: keep names only
    if let Some(e) = &entity_column
        && e.contains('=')
    {
        entity_column = Some(e.replace('=', ""));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "type": type_code.json(),
        "action": action.code(),
        "recorded": facts.recorded.to_string(),
        "outcome": facts.outcome.code(),
        "agent": agents,
        "source": {
            "observer": {"display": facts.observer},
            "type": [{"system": SECURITY_SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
    });
    if !subtypes.is_empty() {
        event["subtype"] = Value::Array(subtypes.iter().map(|c| c.json()).collect());
    }
    if let Some(desc) = facts.outcome_desc.filter(|d| !d.is_empty()) {
        event["outcomeDesc"] = json!(desc);
    }
    if !entities.is_empty() {
        event["entity"] = Value::Array(entities);
    }
    NewAuditRecord {
        recorded: facts.recorded,
        action: action.code().to_owned(),
        outcome: facts.outcome.code().to_owned(),
        type_code: type_code.code.to_owned(),
        subtype: subtypes.first().map(|c| c.code.to_owned()),
        agent,
        client_id,
        source_addr: facts.source_addr.map(str::to_owned),
        patient,
        entity: entity_column,
        detail: facts.outcome_desc.map(str::to_owned),
        event,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::principal::Role;
    use crate::scopes::ScopeSet;

    fn valid(rec: &NewAuditRecord) {
        if let Err(issues) = fhir::validate::validate(&rec.event) {
            panic!(
                "invalid AuditEvent {}:\n{}",
                serde_json::to_string_pretty(&rec.event).unwrap(),
                issues
                    .iter()
                    .map(|i| i.message.clone())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        rec.validate().unwrap();
    }

    fn principal() -> Principal {
        Principal {
            subject: "dr-smith".into(),
            client_id: Some("growth-chart".into()),
            fhir_user: Some("Practitioner/77".into()),
            scopes: ScopeSet::default(),
            patient: Some("123".into()),
            encounter: None,
            token_id: Some("jti-1".into()),
            roles: vec![],
        }
    }

    #[test]
    fn every_interaction_makes_a_valid_audit_event() {
        let p = principal();
        let all = [
            Interaction::Read,
            Interaction::Vread,
            Interaction::Update,
            Interaction::Patch,
            Interaction::Delete,
            Interaction::History,
            Interaction::HistoryInstance,
            Interaction::HistoryType,
            Interaction::HistorySystem,
            Interaction::Create,
            Interaction::Search,
            Interaction::SearchType,
            Interaction::SearchSystem,
            Interaction::Capabilities,
            Interaction::Transaction,
            Interaction::Batch,
            Interaction::Operation,
        ];
        for i in all {
            let what = What::Resource {
                resource_type: "Observation",
                id: Some("5"),
                version: Some("2"),
            };
            let rec = record(
                &AuditFacts::fhir_interaction(Who::Principal(&p), i, what)
                    .patient(p.patient.as_deref())
                    .from_addr(Some("10.1.2.3")),
            );
            valid(&rec);
            assert_eq!(rec.subtype.as_deref(), Some(i.code()));
            assert_eq!(rec.action, i.action().code());
            assert_eq!(rec.event["subtype"][0]["system"], RESTFUL_INTERACTION);
        }
    }

    #[test]
    fn read_records_who_what_patient_and_where() {
        let p = principal();
        let rec = record(
            &AuditFacts::fhir_interaction(
                Who::Principal(&p),
                Interaction::Vread,
                What::Resource {
                    resource_type: "Observation",
                    id: Some("5"),
                    version: Some("2"),
                },
            )
            .patient(Some("Patient/123"))
            .from_addr(Some("10.1.2.3"))
            .observer("node-a"),
        );
        valid(&rec);
        assert_eq!(rec.agent, "dr-smith");
        assert_eq!(rec.client_id.as_deref(), Some("growth-chart"));
        assert_eq!(rec.patient.as_deref(), Some("Patient/123"));
        assert_eq!(rec.entity.as_deref(), Some("Observation/5"));
        let e = &rec.event;
        assert_eq!(e["type"]["code"], "rest");
        assert_eq!(e["agent"][0]["requestor"], true);
        assert_eq!(e["agent"][0]["who"]["reference"], "Practitioner/77");
        assert_eq!(e["agent"][0]["who"]["identifier"]["value"], "dr-smith");
        assert_eq!(e["agent"][0]["network"]["address"], "10.1.2.3");
        assert_eq!(e["agent"][0]["policy"][0], "jti-1");
        assert_eq!(e["agent"][1]["who"]["identifier"]["value"], "growth-chart");
        assert_eq!(e["agent"][1]["requestor"], false);
        assert_eq!(e["agent"][2]["type"]["coding"][0]["code"], "110152");
        assert_eq!(e["source"]["observer"]["display"], "node-a");
        assert_eq!(
            e["entity"][0]["what"]["reference"],
            "Observation/5/_history/2"
        );
        assert_eq!(e["entity"][1]["what"]["reference"], "Patient/123");
        assert_eq!(e["entity"][1]["role"]["code"], "1");
        assert_eq!(e["entity"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_search_records_parameter_names_never_values() {
        let params = ["name=SMITH", "birthdate=1970-01-01", "_count"];
        let rec = record(
            &AuditFacts::fhir_interaction(
                Who::Name("alice"),
                Interaction::SearchType,
                What::Search {
                    resource_type: Some("Patient"),
                    params: &params,
                },
            )
            .failed(Outcome::MinorFailure, "insufficient scope"),
        );
        valid(&rec);
        let text = format!("{rec:?}");
        for phi in ["SMITH", "1970"] {
            assert!(!text.contains(phi), "{phi} leaked: {text}");
            assert!(!rec.event.to_string().contains(phi));
        }
        assert_eq!(rec.entity.as_deref(), Some("Patient?name,birthdate,_count"));
        assert_eq!(rec.outcome, "4");
        assert_eq!(rec.event["outcomeDesc"], "insufficient scope");
        assert_eq!(rec.event["entity"][0]["role"]["code"], "24");
        assert!(rec.event["entity"][0].get("query").is_none());
        assert_eq!(
            rec.event["entity"][0]["detail"][0]["valueString"],
            "name,birthdate,_count"
        );
    }

    #[test]
    #[allow(clippy::too_many_lines)] // one table of cases
    fn logins_tokens_and_admin_actions_are_valid() {
        let mut admin = principal();
        admin.client_id = None;
        admin.fhir_user = None;
        admin.roles = vec![Role::Admin, Role::Auditor];
        let backend = Principal {
            subject: "backend-1".into(),
            client_id: Some("backend-1".into()),
            ..principal()
        };
        let cases = [
            (
                AuditFacts::login("alice", true),
                "110114",
                Some("110122"),
                "0",
            ),
            (
                AuditFacts::login("mallory", false),
                "110114",
                Some("110122"),
                "4",
            ),
            (AuditFacts::logout("alice"), "110114", Some("110123"), "0"),
            (
                AuditFacts::token("app-1", Some("alice"), true),
                "110114",
                Some("token"),
                "0",
            ),
            (
                AuditFacts::token("app-1", None, false),
                "110114",
                Some("token"),
                "4",
            ),
            (
                AuditFacts::message_view(Who::Principal(&admin), "01ARZ3NDEKTSV4RRFFQ69G5FAV"),
                "110110",
                Some("message-view"),
                "0",
            ),
            (
                AuditFacts::reprocess(Who::Principal(&admin), "01ARZ3NDEKTSV4RRFFQ69G5FAV"),
                "110110",
                Some("reprocess"),
                "0",
            ),
            (
                AuditFacts::config_change(Who::Principal(&admin), "channel/adt-in"),
                "110113",
                Some("110131"),
                "0",
            ),
            (
                AuditFacts::admin_action(
                    Who::Principal(&admin),
                    AdminAction::ViewAudit,
                    What::Nothing,
                ),
                "110101",
                None,
                "0",
            ),
            (
                AuditFacts::admin_action(
                    Who::Principal(&admin),
                    AdminAction::ManageSecurity,
                    What::Config("user/bob"),
                ),
                "110113",
                Some("110136"),
                "0",
            ),
            (
                AuditFacts::admin_action(
                    Who::Principal(&admin),
                    AdminAction::ControlChannels,
                    What::Config("channel/adt-in"),
                ),
                "110100",
                Some("channel-control"),
                "0",
            ),
            (
                AuditFacts::new(
                    EventType::Export,
                    Who::Principal(&backend),
                    What::Search {
                        resource_type: None,
                        params: &["_type", "_since"],
                    },
                )
                .from_addr(Some("::1")),
                "110106",
                Some("export"),
                "0",
            ),
            (
                AuditFacts::fhir_interaction(
                    Who::Anonymous,
                    Interaction::Read,
                    What::Resource {
                        resource_type: "Patient",
                        id: Some("1"),
                        version: None,
                    },
                )
                .failed(Outcome::MinorFailure, "no token"),
                "rest",
                Some("read"),
                "4",
            ),
        ];
        for (facts, type_code, subtype, outcome) in cases {
            let rec = record(&facts);
            valid(&rec);
            assert_eq!(rec.type_code, type_code, "{facts:?}");
            assert_eq!(rec.subtype.as_deref(), subtype, "{facts:?}");
            assert_eq!(rec.outcome, outcome, "{facts:?}");
        }
        // a token request names the client and the user
        let rec = record(&AuditFacts::token("app-1", Some("alice"), true));
        assert_eq!(
            (rec.agent.as_str(), rec.client_id.as_deref()),
            ("alice", Some("app-1"))
        );
        // a backend service is one application agent, not a user plus an app
        let rec = record(&AuditFacts::fhir_interaction(
            Who::Principal(&backend),
            Interaction::SearchSystem,
            What::Search {
                resource_type: None,
                params: &[],
            },
        ));
        valid(&rec);
        assert_eq!(rec.event["agent"].as_array().unwrap().len(), 2);
        assert_eq!(rec.event["agent"][0]["type"]["coding"][0]["code"], "110153");
        // roles are listed on the agent
        let rec = record(&AuditFacts::message_view(Who::Principal(&admin), "m1"));
        assert_eq!(rec.event["agent"][0]["role"][1]["text"], "auditor");
        assert_eq!(rec.entity.as_deref(), Some("message/m1"));
    }

    #[test]
    fn authorization_server_events_map_to_logins_and_tokens() {
        let event = |kind, agent: &str, client: Option<&str>, detail: Option<&str>| AuthEvent {
            kind,
            agent: agent.into(),
            client_id: client.map(Into::into),
            source_addr: Some("192.0.2.1".into()),
            action: "authorization_code".into(),
            patient: Some("123".into()),
            detail: detail.map(Into::into),
        };
        let cases = [
            (
                event(AuthEventKind::LoginSucceeded, "alice", None, None),
                "110122",
                "0",
                "alice",
            ),
            (
                event(
                    AuthEventKind::LoginFailed,
                    "alice",
                    None,
                    Some("wrong password"),
                ),
                "110122",
                "4",
                "alice",
            ),
            (
                event(
                    AuthEventKind::TokenIssued,
                    "alice",
                    Some("app"),
                    Some("patient/*.rs"),
                ),
                "token",
                "0",
                "alice",
            ),
            (
                event(
                    AuthEventKind::TokenRefused,
                    "svc",
                    Some("svc"),
                    Some("jti replayed"),
                ),
                "token",
                "4",
                "svc",
            ),
            (
                event(AuthEventKind::Revoked, "anonymous", Some("app"), None),
                "revoke",
                "0",
                "anonymous",
            ),
            (
                event(AuthEventKind::LaunchCreated, "admin", None, None),
                "launch",
                "0",
                "admin",
            ),
        ];
        for (e, subtype, outcome, agent) in cases {
            let rec = record(&AuditFacts::auth_event(&e));
            valid(&rec);
            assert_eq!(rec.subtype.as_deref(), Some(subtype), "{e:?}");
            assert_eq!(rec.outcome, outcome, "{e:?}");
            assert_eq!(rec.agent, agent, "{e:?}");
            assert_eq!(rec.source_addr.as_deref(), Some("192.0.2.1"));
            assert_eq!(rec.patient.as_deref(), Some("Patient/123"));
            // granted scopes are not a failure reason
            assert_eq!(rec.detail.is_some(), outcome != "0", "{e:?}");
        }
    }

    #[test]
    fn odd_ids_never_make_invalid_references() {
        let rec = record(
            &AuditFacts::fhir_interaction(
                Who::Name("a b"),
                Interaction::Read,
                What::Resource {
                    resource_type: "Observation",
                    id: Some("x/y z"),
                    version: None,
                },
            )
            .patient(Some("not an id!")),
        );
        valid(&rec);
        assert_eq!(rec.patient.as_deref(), Some("Patient/not an id!"));
        assert_eq!(rec.event["entity"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn http_status_outcomes() {
        assert_eq!(Outcome::from_http_status(200), Outcome::Success);
        assert_eq!(Outcome::from_http_status(304), Outcome::Success);
        assert_eq!(Outcome::from_http_status(403), Outcome::MinorFailure);
        assert_eq!(Outcome::from_http_status(500), Outcome::SeriousFailure);
    }
}
