//! OIDC sign-in to the admin API, end to end over real sockets: one `plexus serve` is the
//! external identity provider (its SMART authorization server, with a confidential client
//! registered for the other), a second `plexus serve` has `[security.oidc]` pointing at it.
//! The browser is played by a plain HTTP client: the redirect to the provider, its login
//! and consent forms, the redirect back to the callback. The session token works for the
//! Plexus user's roles only; a tampered state, a replayed callback and a provider user
//! without a Plexus user are refused with 401.

mod common;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Serve, dechunk, fixed_port, plexus_cli};

/// Writes `dir/plexus.toml`: SQLite in `dir/data`, the given ports, an MLLP listener of its
/// own, `extra` appended.
fn write_config(dir: &Path, fhir_port: u16, admin_port: u16, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let config = format!(
        "[store]\nkind = \"sqlite\"\npath = {:?}\n\n[admin]\nbind = \"127.0.0.1:{admin_port}\"\n\n\
         [fhir]\nbind = \"127.0.0.1:{fhir_port}\"\n\n\
         [[listener]]\nchannel = \"oidc-test\"\nbind = \"127.0.0.1:{}\"\n\n{extra}\n",
        dir.join("data").display().to_string(),
        fixed_port(),
    );
    let path = dir.join("plexus.toml");
    std::fs::write(&path, config).expect("write plexus.toml");
    path
}

/// An HTTP response: status, head (lower-cased header names) and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn location(&self) -> &str {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location: {} {}", self.head, self.body))
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One request to `url` (`http://127.0.0.1:PORT/…`) on a new connection; `form` is sent
/// as `application/x-www-form-urlencoded`.
fn request(method: &str, url: &str, token: Option<&str>, form: &[(&str, &str)]) -> Answer {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = std::net::TcpStream::connect(authority).expect("connect");
    s.set_read_timeout(Some(Duration::from_mins(1)))
        .expect("timeout");
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let body = if form.is_empty() {
        String::new()
    } else {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish()
    };
    let kind = if form.is_empty() {
        ""
    } else {
        "Content-Type: application/x-www-form-urlencoded\r\n"
    };
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n{auth}{kind}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(text.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Answer {
        status,
        head: head.to_owned(),
        body,
    }
}

/// The `value` of the input named `name` in an HTML page.
fn input(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no input {name} in {page}"));
    let rest = &page[at..];
    let v = rest.find("value=\"").expect("value") + 7;
    let end = rest[v..].find('"').expect("quote");
    rest[v..v + end].to_owned()
}

/// The form's `action` URL.
fn action(page: &str) -> String {
    let at = page.find("action=\"").expect("a form") + 8;
    let end = page[at..].find('"').expect("quote");
    page[at..at + end].replace("&amp;", "&")
}

/// Plays the browser from `GET /api/oidc/login` on the relying party to the provider's
/// redirect back: the callback URL (with `code` and `state`).
fn browser(rp_admin: &str, user: &str, password: &str) -> String {
    let start = request("GET", &format!("{rp_admin}/api/oidc/login"), None, &[]);
    assert_eq!(start.status, 302, "{}", start.body);
    let authorize = start.location().to_owned();
    for p in [
        "response_type=code",
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
    ] {
        assert!(authorize.contains(p), "{p} missing in {authorize}");
    }
    let page = request("GET", &authorize, None, &[]);
    assert_eq!(page.status, 200, "authorize: {}", page.body);
    let login = request(
        "POST",
        &action(&page.body),
        None,
        &[
            ("txn", &input(&page.body, "txn")),
            ("csrf", &input(&page.body, "csrf")),
            ("action", "login"),
            ("username", user),
            ("password", password),
        ],
    );
    assert_eq!(login.status, 200, "login: {}", login.body);
    assert!(
        login.body.to_lowercase().contains("allow"),
        "expected the consent page: {}",
        login.body
    );
    let approve = request(
        "POST",
        &action(&login.body),
        None,
        &[
            ("txn", &input(&login.body, "txn")),
            ("csrf", &input(&login.body, "csrf")),
            ("action", "approve"),
        ],
    );
    assert!(
        matches!(approve.status, 302 | 303),
        "approve: {} {}",
        approve.status,
        approve.body
    );
    let callback = approve.location().to_owned();
    assert!(
        callback.starts_with(&format!("{rp_admin}/api/oidc/callback?")),
        "{callback}"
    );
    callback
}

/// The `state` parameter of a URL.
fn state_of(url: &str) -> String {
    let query = url.split_once('?').expect("query").1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(n, _)| n == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state")
}

const PASSWORD: &str = "correct horse battery staple";

fn add_user(config: &Path, name: &str, password: bool) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plexus"));
    cmd.arg("--config")
        .arg(config)
        .args(["user", "add", name, "--role", "read-only"]);
    if password {
        cmd.args(["--fhir-user", "Practitioner/pr1", "--password-env", "PW"])
            .env("PW", PASSWORD);
    }
    let out = cmd.output().expect("user add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The provider serves OIDC discovery under its issuer; without `[security.oidc]`, the
/// endpoints answer 409.
fn provider_checks(issuer: &str, idp_admin: u16) {
    // The provider serves OIDC discovery under its issuer.
    let discovery = request(
        "GET",
        &format!("{issuer}/.well-known/openid-configuration"),
        None,
        &[],
    );
    assert_eq!(discovery.status, 200, "{}", discovery.body);
    assert_eq!(discovery.json()["issuer"], issuer);

    // Without [security.oidc] the endpoints answer 409.
    let off = request(
        "GET",
        &format!("http://127.0.0.1:{idp_admin}/api/oidc/login"),
        None,
        &[],
    );
    assert_eq!(off.status, 409, "{}", off.body);
}

/// Every sign-in is in the relying party's audit trail: alice's two successes, the failures
/// of bob and of the unknown callers (tampered, replayed, bare).
fn check_audit(rp_config: &Path) {
    let logins = |agent: &str, outcome: &str| -> usize {
        let out = plexus_cli(
            rp_config,
            &[
                "audit",
                "search",
                "--type",
                "110114",
                "--subtype",
                "110122",
                "--agent",
                agent,
                "--outcome",
                outcome,
                "--json",
            ],
        );
        let list: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        list.as_array().map_or(0, Vec::len)
    };
    assert_eq!(logins("alice", "0"), 2);
    assert_eq!(logins("bob", "4"), 1);
    assert_eq!(logins("unknown", "4"), 3);
}

#[test]
fn oidc_sign_in_against_another_plexus_as_identity_provider() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (idp_fhir, idp_admin, rp_fhir, rp_admin) =
        (fixed_port(), fixed_port(), fixed_port(), fixed_port());
    let rp_url = format!("http://127.0.0.1:{rp_admin}");
    let issuer = format!("http://127.0.0.1:{idp_fhir}/fhir");

    // The identity provider: alice and bob sign in with passwords; the relying party is a
    // confidential client of it.
    let idp_dir = tmp.path().join("idp");
    let idp_config = write_config(&idp_dir, idp_fhir, idp_admin, "");
    add_user(&idp_config, "alice", true);
    add_user(&idp_config, "bob", true);
    let registered = plexus_cli(
        &idp_config,
        &[
            "client",
            "register",
            "--id",
            "plexus-admin",
            "--kind",
            "confidential-symmetric",
            "--redirect-uri",
            &format!("{rp_url}/api/oidc/callback"),
            "--scope",
            "openid fhirUser",
        ],
    );
    let secret = registered
        .split("secret: ")
        .nth(1)
        .expect("a client secret")
        .trim()
        .to_owned();
    let idp = Serve::start(&idp_dir, &[]);

    // The relying party: alice exists there (read-only, no password); bob does not.
    let rp_dir = tmp.path().join("rp");
    let rp_config = write_config(
        &rp_dir,
        rp_fhir,
        rp_admin,
        &format!(
            "[security.oidc]\nissuer = \"{issuer}\"\nclient_id = \"plexus-admin\"\n\
             client_secret_env = \"OIDC_SECRET\"\n\
             redirect_uri = \"{rp_url}/api/oidc/callback\"\n\
             scopes = [\"openid\", \"fhirUser\"]\n\
             authorize_params = {{ aud = \"{issuer}\" }}\n"
        ),
    );
    add_user(&rp_config, "alice", false);
    let rp = Serve::start(&rp_dir, &[("OIDC_SECRET", &secret)]);

    provider_checks(&issuer, idp_admin);
    let mut rp = rp;
    assert!(
        matches!(rp.child.try_wait(), Ok(None)),
        "the relying party exited: {}",
        rp.log_text()
    );
    // alice signs in; her token carries the Plexus roles (read-only), not the provider's.
    let callback = browser(&rp_url, "alice", PASSWORD);
    let signed_in = request("GET", &callback, None, &[]);
    assert_eq!(signed_in.status, 200, "callback: {}", signed_in.body);
    let answer = signed_in.json();
    let token = answer["token"].as_str().expect("a token");
    assert_eq!(answer["expires_in"], 8 * 3600);
    let channels = request("GET", &format!("{rp_url}/api/channels"), Some(token), &[]);
    assert_eq!(channels.status, 200, "{}", channels.body);
    let messages = request("GET", &format!("{rp_url}/api/messages"), Some(token), &[]);
    assert_eq!(messages.status, 403, "{}", messages.body);

    // The same callback again: its state was taken.
    let replayed = request("GET", &callback, None, &[]);
    assert_eq!(replayed.status, 401, "{}", replayed.body);
    assert!(replayed.json()["error"].as_str().is_some());

    // A tampered state is refused (and the code is not exchanged).
    let callback = browser(&rp_url, "alice", PASSWORD);
    let state = state_of(&callback);
    let tampered = callback.replace(&format!("state={state}"), &format!("state={state}x"));
    assert_ne!(tampered, callback);
    let refused = request("GET", &tampered, None, &[]);
    assert_eq!(refused.status, 401, "{}", refused.body);
    // The untampered callback still signs in: the forged state consumed nothing.
    assert_eq!(request("GET", &callback, None, &[]).status, 200);

    // bob is known to the provider but not to Plexus.
    let callback = browser(&rp_url, "bob", PASSWORD);
    let stranger = request("GET", &callback, None, &[]);
    assert_eq!(stranger.status, 401, "{}", stranger.body);
    assert!(
        stranger.body.contains("no enabled Plexus user"),
        "{}",
        stranger.body
    );

    // A callback without code and state.
    let bare = request("GET", &format!("{rp_url}/api/oidc/callback"), None, &[]);
    assert_eq!(bare.status, 401, "{}", bare.body);

    check_audit(&rp_config);

    // The secret never shows in the relying party's log.
    let log = rp.log_text();
    assert!(!log.contains(&secret), "client secret in the log");
    rp.stop();
    idp.stop();
}
