//! The authorization endpoint and its pages: a sign-in form, a patient picker for a
//! standalone `launch/patient`, and a consent page, each a plain HTML form with named
//! inputs (usable by a browser and by a test client), each carrying a transaction id and a
//! CSRF token that are good for one submission.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use store::{Grant, Resources as _, Security as _, Timestamp};

use crate::config::ClientRegistration;
use crate::error::AuthError;
use crate::events::{AuthEvent, AuthEventKind};
use crate::http::{self, Params};
use crate::scopes::ScopeSet;
use crate::secret::{digest, random_token, same_digest, verify_password};
use crate::server::{AuthServer, kind};

/// Failed sign-ins allowed in one authorization before it is refused.
const MAX_LOGIN_FAILURES: u64 = 5;

/// An answer of the authorization endpoint: a page, or a redirect to the client.
enum Outcome {
    Page(StatusCode, String),
    Redirect(String),
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        let mut response = match self {
            Self::Page(status, html) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
            Self::Redirect(location) => match HeaderValue::from_str(&location) {
                Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
                Err(_) => StatusCode::BAD_REQUEST.into_response(),
            },
        };
        let h = response.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        response
    }
}

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{t} — Plexus</title>\
         <style>body{{font-family:sans-serif;max-width:36em;margin:3em auto}}\
         label{{display:block;margin:.5em 0}}.error{{color:#a00}}</style></head>\
         <body><h1>{t}</h1>\n{body}\n</body></html>\n",
        t = esc(title)
    )
}

fn error_page(status: StatusCode, why: &str) -> Outcome {
    Outcome::Page(
        status,
        page(
            "Authorization failed",
            &format!("<p class=\"error\" id=\"error\">{}</p>", esc(why)),
        ),
    )
}

/// The client's redirect URI with `params` added to its query.
fn redirect_to(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{sep}{}", query.finish())
}

fn error_redirect(redirect_uri: &str, state: Option<&str>, code: &str, why: &str) -> Outcome {
    let mut p = vec![("error", code), ("error_description", why)];
    if let Some(s) = state {
        p.push(("state", s));
    }
    Outcome::Redirect(redirect_to(redirect_uri, &p))
}

/// `GET` and `POST /auth/authorize`.
pub(crate) async fn authorize(State(server): State<Arc<AuthServer>>, request: Request) -> Response {
    let source = http::peer(&request);
    let params = if request.method() == Method::POST {
        match http::form(request).await {
            Ok(p) => p,
            Err(e @ AuthError::TooLarge(_)) => return e.into_response(),
            Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()).into_response(),
        }
    } else {
        match Params::parse(request.uri().query().unwrap_or_default().as_bytes()) {
            Ok(p) => p,
            Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()).into_response(),
        }
    };
    let outcome = if params.get("txn").is_some() {
        step(&server, &params, source.as_deref()).await
    } else {
        start(&server, &params, source.as_deref()).await
    };
    match outcome {
        Ok(o) => o.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "authorization endpoint failed");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A new authorization request: checked, then the sign-in page.
async fn start(
    server: &AuthServer,
    params: &Params,
    source: Option<&str>,
) -> Result<Outcome, AuthError> {
    let refuse = |why: &str| {
        server.refused("authorize", None, params.get("client_id"), source, why);
    };
    // Until client and redirect URI are known good, errors are shown, never redirected.
    let Some(client_id) = params.get("client_id") else {
        refuse("client_id missing");
        return Ok(error_page(StatusCode::BAD_REQUEST, "client_id is missing"));
    };
    let Some(client) = server.stored_client(client_id).await? else {
        refuse("unknown client");
        return Ok(error_page(StatusCode::BAD_REQUEST, "unknown client"));
    };
    let registration = &client.registration;
    let Some(redirect_uri) = params.get("redirect_uri") else {
        refuse("redirect_uri missing");
        return Ok(error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri is missing",
        ));
    };
    // Exact match: no normalisation, no prefix, no case folding.
    if !registration.redirect_uris.iter().any(|r| r == redirect_uri) {
        refuse("redirect_uri not registered");
        return Ok(error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri is not registered for this client",
        ));
    }
    let state = params.get("state");
    let fail = |code: &str, why: &str| {
        refuse(why);
        Ok(error_redirect(redirect_uri, state, code, why))
    };
    let (challenge, granted, nonce) = match check_request(server, params, registration) {
        Ok(checked) => checked,
        Err((code, why)) => return fail(code, &why),
    };
    let mut context = (None::<String>, None::<String>);
    if let Some(launch) = params.get("launch") {
        let taken = if launch.len() <= 256 {
            server
                .store
                .take_grant(kind::LAUNCH, &digest(launch), Timestamp::now())
                .await?
        } else {
            None
        };
        let Some(g) = taken else {
            return fail("invalid_request", "unknown, expired or used launch");
        };
        context = (
            g.payload["patient"].as_str().map(str::to_owned),
            g.payload["encounter"].as_str().map(str::to_owned),
        );
    }
    let pending = json!({
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "scope": granted.to_string(),
        "code_challenge": challenge,
        "nonce": nonce,
        "patient": context.0,
        "encounter": context.1,
        "stage": "login",
        "failures": 0,
    });
    let login = login_page(registration, None);
    show(server, pending, login, StatusCode::OK).await
}

/// The checks of an authorization request once client and redirect URI are known good:
/// the code challenge, the granted scopes and the nonce, or the error to redirect with.
fn check_request<'a>(
    server: &AuthServer,
    params: &'a Params,
    registration: &ClientRegistration,
) -> Result<(&'a str, ScopeSet, Option<&'a str>), (&'static str, String)> {
    let fail = |code: &'static str, why: &str| Err((code, why.to_owned()));
    if params.get("state").is_some_and(|s| s.len() > 1024) {
        return fail("invalid_request", "state is too long");
    }
    if params.get("response_type") != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    match params.get("code_challenge_method") {
        Some("S256") => {}
        Some("plain") => {
            return fail(
                "invalid_request",
                "PKCE method plain is not supported; use S256",
            );
        }
        _ => {
            return fail(
                "invalid_request",
                "PKCE is required: code_challenge_method=S256",
            );
        }
    }
    let challenge = params.get("code_challenge").unwrap_or_default();
    if challenge.len() != 43
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return fail(
            "invalid_request",
            "code_challenge must be a base64url SHA-256",
        );
    }
    if params.get("aud") != Some(server.config.issuer.as_str()) {
        return fail("invalid_request", "aud must be this server's FHIR base URL");
    }
    let requested = match ScopeSet::parse(params.get("scope").unwrap_or_default()) {
        Ok(s) => s,
        Err(e) => return fail("invalid_scope", &e.to_string()),
    };
    let allowed = ScopeSet::parse(&registration.scopes).unwrap_or_default();
    let granted = allowed.grantable(&requested);
    if granted.resources.is_empty() && !granted.has("openid") {
        return fail(
            "invalid_scope",
            "none of the requested scopes may be granted to this client",
        );
    }
    let nonce = params.get("nonce");
    if nonce.is_some_and(|n| n.len() > 512) {
        return fail("invalid_request", "nonce is too long");
    }
    Ok((challenge, granted, nonce))
}

/// Stores the pending authorization under a fresh transaction id and CSRF token, and
/// renders `form` (the inputs of one stage) with them.
async fn show(
    server: &AuthServer,
    mut pending: Value,
    form: (String, String),
    status: StatusCode,
) -> Result<Outcome, AuthError> {
    let txn = random_token(24)?;
    let csrf = random_token(24)?;
    pending["csrf"] = digest(&csrf).into();
    let expires = Timestamp::now().saturating_add(server.config.login_lifetime);
    server
        .store
        .put_grant(Grant {
            kind: kind::PENDING.into(),
            key: digest(&txn),
            subject: pending["user"].as_str().unwrap_or("anonymous").to_owned(),
            family: None,
            payload: pending,
            expires,
        })
        .await?;
    let (title, inner) = form;
    let html = page(
        &title,
        &format!(
            "<form method=\"post\" action=\"{action}\" id=\"form\">\n\
             <input type=\"hidden\" name=\"txn\" value=\"{txn}\">\n\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n{inner}</form>",
            action = esc(&format!("{}/authorize", server.config.auth_base)),
        ),
    );
    Ok(Outcome::Page(status, html))
}

fn client_label(r: &ClientRegistration) -> String {
    esc(r.name.as_deref().unwrap_or(&r.client_id))
}

fn login_page(r: &ClientRegistration, error: Option<&str>) -> (String, String) {
    let error = error
        .map(|e| format!("<p class=\"error\" id=\"error\">{}</p>\n", esc(e)))
        .unwrap_or_default();
    (
        "Sign in".into(),
        format!(
            "{error}<p>{} asks to access FHIR data on your behalf.</p>\n\
             <label>User name <input name=\"username\" autocomplete=\"username\" required></label>\n\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\n\
             <button type=\"submit\" name=\"action\" value=\"login\">Sign in</button>\n",
            client_label(r)
        ),
    )
}

fn picker_page(patients: &[(String, String)], query: Option<&str>) -> (String, String) {
    let mut inner = format!(
        "<label>Patient name <input name=\"q\" value=\"{}\"></label>\n\
         <button type=\"submit\" name=\"action\" value=\"search\">Search</button>\n",
        esc(query.unwrap_or_default())
    );
    if query.is_some() {
        if patients.is_empty() {
            inner.push_str("<p id=\"none\">No patient found.</p>\n");
        } else {
            inner.push_str("<ul id=\"patients\">\n");
            for (id, name) in patients {
                let _ = writeln!(
                    inner,
                    "<li><label><input type=\"radio\" name=\"patient\" value=\"{id}\"> {name} ({id})</label></li>",
                    id = esc(id),
                    name = esc(name)
                );
            }
            inner.push_str(
                "</ul>\n<button type=\"submit\" name=\"action\" value=\"pick\">Select patient</button>\n",
            );
        }
    }
    ("Select a patient".into(), inner)
}

fn consent_page(r: &ClientRegistration, pending: &Value) -> (String, String) {
    let scope = pending["scope"].as_str().unwrap_or_default();
    let mut items = String::new();
    for s in scope.split_ascii_whitespace() {
        let _ = writeln!(items, "<li>{}</li>", esc(s));
    }
    let patient = pending["patient"]
        .as_str()
        .map(|p| format!("<p>Patient: <span id=\"patient\">{}</span></p>\n", esc(p)))
        .unwrap_or_default();
    (
        "Allow access?".into(),
        format!(
            "<p>{} asks for:</p>\n<ul id=\"scopes\">\n{items}</ul>\n{patient}\
             <button type=\"submit\" name=\"action\" value=\"approve\">Allow</button>\n\
             <button type=\"submit\" name=\"action\" value=\"deny\">Deny</button>\n",
            client_label(r)
        ),
    )
}

/// A display name of a Patient resource (first `name`'s text, or given and family).
fn patient_name(resource: &Value) -> String {
    let Some(name) = resource["name"].as_array().and_then(|n| n.first()) else {
        return String::new();
    };
    if let Some(text) = name["text"].as_str() {
        return text.to_owned();
    }
    let mut parts: Vec<&str> = name["given"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(f) = name["family"].as_str() {
        parts.push(f);
    }
    parts.join(" ")
}

/// The pending authorization a form names (its `txn`), used up, if its CSRF token
/// matches; else the error page.
async fn take_pending(
    server: &AuthServer,
    params: &Params,
    source: Option<&str>,
) -> Result<Result<Value, Outcome>, AuthError> {
    let txn = params.get("txn").unwrap_or_default();
    let taken = if txn.len() <= 64 {
        server
            .store
            .take_grant(kind::PENDING, &digest(txn), Timestamp::now())
            .await?
    } else {
        None
    };
    let Some(grant) = taken else {
        server.refused(
            "authorize",
            None,
            None,
            source,
            "unknown, expired or used transaction",
        );
        return Ok(Err(error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in page has expired or was submitted already; start again from the app.",
        )));
    };
    let pending = grant.payload;
    let csrf = params.get("csrf").unwrap_or_default();
    if !same_digest(&digest(csrf), pending["csrf"].as_str().unwrap_or_default()) {
        server.refused("authorize", None, None, source, "CSRF token mismatch");
        return Ok(Err(error_page(
            StatusCode::FORBIDDEN,
            "The form is not valid; start again.",
        )));
    }
    Ok(Ok(pending))
}

/// A form submission of a pending authorization.
async fn step(
    server: &AuthServer,
    params: &Params,
    source: Option<&str>,
) -> Result<Outcome, AuthError> {
    let mut pending = match take_pending(server, params, source).await? {
        Ok(p) => p,
        Err(page) => return Ok(page),
    };
    let client_id = pending["client_id"].as_str().unwrap_or_default().to_owned();
    let redirect_uri = pending["redirect_uri"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let state = pending["state"].as_str().map(str::to_owned);
    let Some(client) = server.stored_client(&client_id).await? else {
        return Ok(error_page(StatusCode::BAD_REQUEST, "unknown client"));
    };
    let registration = &client.registration;
    let stage = pending["stage"].as_str().unwrap_or_default().to_owned();
    let action = params
        .get("action")
        .unwrap_or(if stage == "login" { "login" } else { "" });
    match (stage.as_str(), action) {
        ("login", "login") => {
            let who = Who {
                client_id: &client_id,
                redirect_uri: &redirect_uri,
                state: state.as_deref(),
                source,
            };
            login(server, pending, params, registration, &who).await
        }
        ("pick", "search") => {
            let q = params
                .get("q")
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect::<String>();
            let found = search_patients(server, &q).await?;
            show(
                server,
                pending,
                picker_page(&found, Some(&q)),
                StatusCode::OK,
            )
            .await
        }
        ("pick", "pick") => {
            let id = params.get("patient").unwrap_or_default();
            let exists = is_fhir_id(id)
                && server
                    .store
                    .read("Patient", id, None)
                    .await?
                    .is_some_and(|r| !r.deleted);
            if !exists {
                return show(
                    server,
                    pending,
                    picker_page(&[], Some("")),
                    StatusCode::BAD_REQUEST,
                )
                .await;
            }
            pending["patient"] = id.into();
            pending["stage"] = "consent".into();
            let form = consent_page(registration, &pending);
            show(server, pending, form, StatusCode::OK).await
        }
        ("consent", "approve") => approve(server, &pending, &redirect_uri, state.as_deref()).await,
        ("consent", "deny") => {
            server.refused(
                "authorize",
                pending["user"].as_str(),
                Some(&client_id),
                source,
                "the user denied access",
            );
            Ok(error_redirect(
                &redirect_uri,
                state.as_deref(),
                "access_denied",
                "the user denied access",
            ))
        }
        _ => Ok(error_page(
            StatusCode::BAD_REQUEST,
            "unexpected form submission; start again",
        )),
    }
}

/// Where a pending authorization came from, for the sign-in step.
struct Who<'a> {
    client_id: &'a str,
    redirect_uri: &'a str,
    state: Option<&'a str>,
    source: Option<&'a str>,
}

/// The sign-in form's submission: the picker or consent page next, the form again (401)
/// after a wrong password, an `access_denied` redirect after too many.
async fn login(
    server: &AuthServer,
    mut pending: Value,
    params: &Params,
    registration: &ClientRegistration,
    who: &Who<'_>,
) -> Result<Outcome, AuthError> {
    let (client_id, redirect_uri, state, source) =
        (who.client_id, who.redirect_uri, who.state, who.source);
    let username = params.get("username").unwrap_or_default();
    let password = params.get("password").unwrap_or_default();
    let user = if username.len() <= 128 {
        server.store.user(username).await?
    } else {
        None
    };
    let hash = user
        .as_ref()
        .filter(|u| !u.disabled)
        .and_then(|u| u.password_hash.clone());
    let pw = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || verify_password(&pw, hash.as_deref()))
        .await
        .unwrap_or(false)
        && user.as_ref().is_some_and(|u| !u.disabled);
    let event = |kind, detail: Option<String>| AuthEvent {
        kind,
        agent: if username.is_empty() {
            "anonymous".into()
        } else {
            username.chars().take(128).collect()
        },
        client_id: Some(client_id.to_owned()),
        source_addr: source.map(str::to_owned),
        action: "authorize".into(),
        patient: None,
        detail,
    };
    let Some(user) = user.filter(|_| ok) else {
        server.emit(event(
            AuthEventKind::LoginFailed,
            Some("bad user name or password".into()),
        ));
        let failures = pending["failures"].as_u64().unwrap_or(0) + 1;
        if failures >= MAX_LOGIN_FAILURES {
            return Ok(error_redirect(
                redirect_uri,
                state,
                "access_denied",
                "too many failed sign-ins",
            ));
        }
        pending["failures"] = failures.into();
        return show(
            server,
            pending,
            login_page(registration, Some("Wrong user name or password.")),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    };
    server.emit(event(AuthEventKind::LoginSucceeded, None));
    pending["user"] = user.name.clone().into();
    pending["fhir_user"] = user.fhir_user.clone().into();
    let scope = ScopeSet::parse(pending["scope"].as_str().unwrap_or_default()).unwrap_or_default();
    if scope.has("launch/patient") && pending["patient"].is_null() {
        pending["stage"] = "pick".into();
        show(server, pending, picker_page(&[], None), StatusCode::OK).await
    } else {
        pending["stage"] = "consent".into();
        let form = consent_page(registration, &pending);
        show(server, pending, form, StatusCode::OK).await
    }
}

/// Whether `id` is a FHIR logical id.
pub(crate) fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

async fn search_patients(server: &AuthServer, q: &str) -> Result<Vec<(String, String)>, AuthError> {
    if q.trim().is_empty() {
        return Ok(Vec::new());
    }
    let options = fhir::search::SearchOptions {
        default_count: 20,
        max_count: 20,
    };
    let Ok(request) = fhir::search::parse(
        Some("Patient"),
        &[("name".to_owned(), q.to_owned())],
        &options,
    ) else {
        return Ok(Vec::new());
    };
    let page = server.store.search(&request).await?;
    Ok(page
        .matches
        .iter()
        .filter_map(|r| {
            let v: Value = serde_json::from_slice(&r.content).ok()?;
            Some((r.id.clone(), patient_name(&v)))
        })
        .collect())
}

async fn approve(
    server: &AuthServer,
    pending: &Value,
    redirect_uri: &str,
    state: Option<&str>,
) -> Result<Outcome, AuthError> {
    let now = Timestamp::now();
    let scope = ScopeSet::parse(pending["scope"].as_str().unwrap_or_default()).unwrap_or_default();
    let family = random_token(16)?;
    let lifetime: Duration = crate::token::family_lifetime(server, &scope);
    let family_end = now.saturating_add(lifetime);
    let session_end = scope
        .has("online_access")
        .then(|| now.saturating_add(server.config.online_session_lifetime));
    let code = random_token(32)?;
    let user = pending["user"].as_str().unwrap_or_default().to_owned();
    server
        .store
        .put_grant(Grant {
            kind: kind::CODE.into(),
            key: digest(&code),
            subject: user,
            family: Some(family.clone()),
            payload: json!({
                "client_id": pending["client_id"],
                "redirect_uri": redirect_uri,
                "scope": pending["scope"],
                "code_challenge": pending["code_challenge"],
                "patient": pending["patient"],
                "encounter": pending["encounter"],
                "fhir_user": pending["fhir_user"],
                "nonce": pending["nonce"],
                "family": family,
                "family_end": family_end.as_micros(),
                "session_end": session_end.map(Timestamp::as_micros),
            }),
            expires: now.saturating_add(server.config.code_lifetime),
        })
        .await?;
    let mut p = vec![("code", code.as_str())];
    if let Some(s) = state {
        p.push(("state", s));
    }
    Ok(Outcome::Redirect(redirect_to(redirect_uri, &p)))
}
