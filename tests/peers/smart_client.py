#!/usr/bin/env python3
"""An independent SMART on FHIR client (requests + PyJWT + cryptography) for Plexus.

It discovers the server through {fhir_base}/.well-known/smart-configuration and runs one of:

  keygen      generate an RS384 (RSA 2048) and an ES384 (P-384) key pair into --out-dir:
              rs384.pem, es384.pem and jwks.json (public keys, kids "py-rs384", "py-es384")
  standalone  standalone launch: authorize (PKCE S256), sign in on the login form, search and
              pick the patient, approve, exchange the code; checks the access and ID tokens
              with the server's JWKS; refreshes (rotation) and checks that replaying the old
              refresh token is refused; then reads Patient/{patient} from --fhir, or else
              introspects the token as a confidential client
  ehr         EHR launch: creates a launch context through {auth}/launch with an API token,
              authorizes with launch=, checks patient and encounter in the token response
  backend     SMART Backend Services: signs a client assertion with --key (RS384 or ES384),
              gets a system/ token, introspects it (client authenticated by a new assertion)
              and checks that the same assertion (same jti) is refused a second time

Every step prints one line; the last line is "OK <mode>". Exit status 0 on success, 1 on
any failure (with the reason).

Example against `plexus serve` (FHIR at http://127.0.0.1:8080/fhir):
  .venv/bin/python tests/peers/smart_client.py --fhir-base http://127.0.0.1:8080/fhir \\
      standalone --client-id my-app --redirect-uri https://app.example/cb \\
      --username alice --password secret --patient-query smith --fhir http://127.0.0.1:8080/fhir
"""

import argparse
import base64
import hashlib
import html.parser
import json
import os
import secrets
import sys
import time
import urllib.parse
import uuid

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def say(*parts):
    print(*parts, flush=True)


class Forms(html.parser.HTMLParser):
    """Collects the inputs of the page's form: hidden/text values and radio options."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.fields = {}
        self.radios = {}
        self.title = ""
        self._in_h1 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input" and a.get("name"):
            if a.get("type") == "radio":
                self.radios.setdefault(a["name"], []).append(a.get("value", ""))
            else:
                self.fields[a["name"]] = a.get("value", "")
        elif tag == "h1":
            self._in_h1 = True

    def handle_endtag(self, tag):
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data):
        if self._in_h1:
            self.title += data


def parse_page(response):
    forms = Forms()
    forms.feed(response.text)
    return forms


class Smart:
    def __init__(self, fhir_base, timeout=30):
        self.fhir_base = fhir_base.rstrip("/")
        self.http = requests.Session()
        self.timeout = timeout
        url = f"{self.fhir_base}/.well-known/smart-configuration"
        r = self.http.get(url, timeout=timeout)
        check(r.status_code == 200, f"smart-configuration: HTTP {r.status_code}")
        self.conf = r.json()
        check(self.conf.get("code_challenge_methods_supported") == ["S256"], "S256 only")
        for cap in ["launch-ehr", "launch-standalone", "client-confidential-asymmetric"]:
            check(cap in self.conf.get("capabilities", []), f"capability {cap} missing")
        self.jwks = jwt.PyJWKClient(self.conf["jwks_uri"])
        say("discovered", self.conf["token_endpoint"])

    @property
    def auth_base(self):
        return self.conf["token_endpoint"].rsplit("/", 1)[0]

    def verify(self, token, audience):
        key = self.jwks.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=["ES384", "RS384"],
            audience=audience,
            issuer=self.fhir_base,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )

    def post_form(self, page, fields):
        data = {"txn": page.fields["txn"], "csrf": page.fields["csrf"]}
        data.update(fields)
        return self.http.post(page.action, data=data, allow_redirects=False, timeout=self.timeout)

    def authorize(self, args, scope, launch=None, patient_query=None):
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(12)
        nonce = secrets.token_urlsafe(12)
        params = {
            "response_type": "code",
            "client_id": args.client_id,
            "redirect_uri": args.redirect_uri,
            "scope": scope,
            "state": state,
            "nonce": nonce,
            "aud": self.fhir_base,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if launch:
            params["launch"] = launch
        r = self.http.get(self.conf["authorization_endpoint"], params=params, allow_redirects=False, timeout=self.timeout)
        check(r.status_code == 200, f"authorize: HTTP {r.status_code}: {r.text[:200]}")
        page = parse_page(r)
        check("username" in page.fields, "no login form")
        r = self.post_form(page, {"action": "login", "username": args.username, "password": args.password})
        check(r.status_code == 200, f"login: HTTP {r.status_code}")
        page = parse_page(r)
        say("signed in:", page.title.strip())
        if "patient" in page.title.lower():
            check(patient_query, "the server asks for a patient but no --patient-query was given")
            r = self.post_form(page, {"action": "search", "q": patient_query})
            page = parse_page(r)
            options = page.radios.get("patient", [])
            check(options, f"no patient found for {patient_query!r}")
            r = self.post_form(page, {"action": "pick", "patient": options[0]})
            check(r.status_code == 200, f"pick: HTTP {r.status_code}")
            page = parse_page(r)
            say("picked patient", options[0])
        check("allow" in page.title.lower(), f"expected the consent page, got {page.title!r}")
        r = self.post_form(page, {"action": "approve"})
        check(r.status_code in (302, 303), f"approve: HTTP {r.status_code}")
        location = r.headers["Location"]
        check(location.startswith(args.redirect_uri), "redirected elsewhere")
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
        check(query.get("state") == state, "state not echoed")
        check("code" in query, f"no code: {query}")
        r = self.http.post(
            self.conf["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": query["code"],
                "redirect_uri": args.redirect_uri,
                "code_verifier": verifier,
                "client_id": args.client_id,
            },
            timeout=self.timeout,
        )
        check(r.status_code == 200, f"token: HTTP {r.status_code}: {r.text}")
        check(r.headers.get("Cache-Control") == "no-store", "token response may be cached")
        tokens = r.json()
        claims = self.verify(tokens["access_token"], self.fhir_base)
        check(claims["client_id"] == args.client_id, "access token client_id")
        check(claims.get("patient") == tokens.get("patient"), "patient claim differs from the response")
        if "id_token" in tokens:
            id_claims = self.verify(tokens["id_token"], args.client_id)
            check(id_claims.get("nonce") == nonce, "ID token nonce")
            say("id_token fhirUser", id_claims.get("fhirUser"))
        say("token scope:", tokens["scope"], "patient:", tokens.get("patient"))
        return tokens

    def introspect(self, token, auth=None, data=None):
        body = {"token": token}
        body.update(data or {})
        r = self.http.post(self.conf["introspection_endpoint"], data=body, auth=auth, timeout=self.timeout)
        check(r.status_code == 200, f"introspect: HTTP {r.status_code}: {r.text}")
        return r.json()

    def use(self, args, tokens):
        if args.fhir:
            url = f"{args.fhir.rstrip('/')}/Patient/{tokens['patient']}"
            r = self.http.get(url, headers={"Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/fhir+json"}, timeout=self.timeout)
            check(r.status_code == 200, f"GET Patient: HTTP {r.status_code}")
            check(r.json().get("id") == tokens["patient"], "read another patient")
            say("read", url)
        elif args.introspect_client:
            client, secret = args.introspect_client.split(":", 1)
            info = self.introspect(tokens["access_token"], auth=(client, secret))
            check(info.get("active") is True, f"token not active: {info}")
            check(info.get("patient") == tokens.get("patient"), "introspected patient")
            say("introspected: active, scope", info["scope"])


def standalone(smart, args):
    tokens = smart.authorize(args, args.scope, patient_query=args.patient_query)
    check(tokens.get("patient"), "no patient in the token response")
    smart.use(args, tokens)
    if "refresh_token" in tokens:
        old = tokens["refresh_token"]
        r = smart.http.post(smart.conf["token_endpoint"], data={"grant_type": "refresh_token", "refresh_token": old, "client_id": args.client_id}, timeout=smart.timeout)
        check(r.status_code == 200, f"refresh: HTTP {r.status_code}: {r.text}")
        new = r.json()
        check(new["refresh_token"] != old, "refresh token not rotated")
        smart.verify(new["access_token"], smart.fhir_base)
        say("refreshed")
        r = smart.http.post(smart.conf["token_endpoint"], data={"grant_type": "refresh_token", "refresh_token": old, "client_id": args.client_id}, timeout=smart.timeout)
        check(r.status_code == 400 and r.json().get("error") == "invalid_grant", "a used refresh token was accepted")
        if args.introspect_client:
            client, secret = args.introspect_client.split(":", 1)
            info = smart.introspect(new["access_token"], auth=(client, secret))
            check(info.get("active") is False, "the family was not revoked after the replay")
        say("refresh replay refused, family revoked")


def ehr(smart, args):
    body = {"patient": args.patient}
    if args.encounter:
        body["encounter"] = args.encounter
    r = smart.http.post(f"{smart.auth_base}/launch", json=body, headers={"Authorization": f"Bearer {args.api_token}"}, timeout=smart.timeout)
    check(r.status_code == 200, f"launch: HTTP {r.status_code}: {r.text}")
    launch = r.json()["launch"]
    say("launch created")
    tokens = smart.authorize(args, args.scope, launch=launch)
    check(tokens.get("patient") == args.patient, "patient of the launch context")
    if args.encounter:
        check(tokens.get("encounter") == args.encounter, "encounter of the launch context")
    smart.use(args, tokens)


def assertion(smart, client_id, key_pem, alg, kid):
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": smart.conf["token_endpoint"],
        "exp": now + 240,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, key_pem, algorithm=alg, headers={"kid": kid})


def backend(smart, args):
    check(args.alg in smart.conf["token_endpoint_auth_signing_alg_values_supported"], f"{args.alg} not supported")
    with open(args.key, "rb") as f:
        key_pem = f.read()
    signed = assertion(smart, args.client_id, key_pem, args.alg, args.kid)
    data = {
        "grant_type": "client_credentials",
        "scope": args.scope,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": signed,
    }
    r = smart.http.post(smart.conf["token_endpoint"], data=data, timeout=smart.timeout)
    check(r.status_code == 200, f"client_credentials ({args.alg}): HTTP {r.status_code}: {r.text}")
    tokens = r.json()
    claims = smart.verify(tokens["access_token"], smart.fhir_base)
    check(claims["sub"] == args.client_id, "sub of a backend token")
    check("refresh_token" not in tokens, "backend services get no refresh token")
    say(f"backend token ({args.alg}) scope:", tokens["scope"])
    r = smart.http.post(smart.conf["token_endpoint"], data=data, timeout=smart.timeout)
    check(r.status_code == 400 and r.json().get("error") == "invalid_client", "a replayed assertion (jti) was accepted")
    say("replayed assertion refused")
    info = smart.introspect(
        tokens["access_token"],
        data={
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(smart, args.client_id, key_pem, args.alg, args.kid),
        },
    )
    check(info.get("active") is True and info.get("client_id") == args.client_id, f"introspection: {info}")
    say("introspected: active")


def keygen(args):
    os.makedirs(args.out_dir, exist_ok=True)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP384R1())
    keys = []
    for name, key, alg in [("rs384", rsa_key, "RS384"), ("es384", ec_key, "ES384")]:
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        with open(os.path.join(args.out_dir, f"{name}.pem"), "wb") as f:
            f.write(pem)
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
        jwk.update({"kid": f"py-{name}", "alg": alg, "use": "sig"})
        keys.append(jwk)
    with open(os.path.join(args.out_dir, "jwks.json"), "w") as f:
        json.dump({"keys": keys}, f)
    say("wrote", os.path.join(args.out_dir, "jwks.json"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fhir-base", help="the FHIR base URL (issuer and aud)")
    sub = p.add_subparsers(dest="mode", required=True)
    g = sub.add_parser("keygen")
    g.add_argument("--out-dir", required=True)
    for name in ["standalone", "ehr"]:
        s = sub.add_parser(name)
        s.add_argument("--client-id", required=True)
        s.add_argument("--redirect-uri", required=True)
        s.add_argument("--username", required=True)
        s.add_argument("--password", required=True)
        s.add_argument("--fhir", help="read Patient/{patient} from this FHIR base with the token")
        s.add_argument("--introspect-client", help="client_id:secret of a confidential client, to introspect with")
        if name == "standalone":
            s.add_argument("--scope", default="launch/patient openid fhirUser offline_access patient/*.rs")
            s.add_argument("--patient-query", help="name to search in the patient picker")
        else:
            s.add_argument("--scope", default="launch openid fhirUser patient/*.rs")
            s.add_argument("--api-token", required=True, help="an API token of an admin or developer")
            s.add_argument("--patient", required=True)
            s.add_argument("--encounter")
    b = sub.add_parser("backend")
    b.add_argument("--client-id", required=True)
    b.add_argument("--key", required=True, help="private key PEM")
    b.add_argument("--alg", choices=["RS384", "ES384"], required=True)
    b.add_argument("--kid", required=True)
    b.add_argument("--scope", default="system/*.rs")
    args = p.parse_args()
    try:
        if args.mode == "keygen":
            keygen(args)
        else:
            if not args.fhir_base:
                raise Failure("--fhir-base is required")
            smart = Smart(args.fhir_base)
            {"standalone": standalone, "ehr": ehr, "backend": backend}[args.mode](smart, args)
    except (Failure, requests.RequestException, jwt.PyJWTError, KeyError) as e:
        print(f"FAILED {args.mode}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    say("OK", args.mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
