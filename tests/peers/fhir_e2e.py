#!/usr/bin/env python3
"""An independent FHIR R4 client for the Plexus FHIR API.

Usage: fhir_e2e.py BASE_URL [--patients N]

Exercises create, read, vread, update, patch, delete, search (with paging, _include,
_summary, _elements), history, transaction, batch, $everything, $validate and errors over
HTTP with `requests`, and parses EVERY resource the server returns (each Bundle entry's
resource and outcome too) with the `fhir.resources` 6.4.0 (FHIR R4 4.0.1) class of its
resourceType. With --patients N, expects N synthetic patients (loaded by `plexus fhir
synth`) to be there already and pages through them.

Exits 0 and prints `N passed, 0 failed` when everything holds; on the first failure prints
`FAIL: <what>` with the request and the answer, and exits 1.
"""

import argparse
import json
import sys
import uuid

import requests


def _load_fhir_resources():
    """Imports fhir.resources 6.4.0 (R4), which is written for pydantic 1. The venv has
    pydantic 2 (openapi-spec-validator needs it), which ships the pydantic 1 API as
    `pydantic.v1`: in this process `pydantic` and its submodules are that API (nothing
    else here uses pydantic; fhir.resources imports its resource modules lazily, so the
    redirection stays). With pydantic 1 installed, nothing is redirected."""
    import importlib
    import pkgutil

    import pydantic

    if not pydantic.VERSION.startswith("1."):
        import pydantic.v1 as v1

        # Load the whole v1 API first (its modules import each other as pydantic.v1.*).
        v1_modules = {}
        for info in pkgutil.iter_modules(v1.__path__):
            try:
                v1_modules[info.name] = importlib.import_module(f"pydantic.v1.{info.name}")
            except ImportError:
                pass
        for k in [k for k in sys.modules if k.startswith("pydantic.") and not k.startswith("pydantic.v1")]:
            del sys.modules[k]
        sys.modules["pydantic"] = v1
        for name, module in v1_modules.items():
            sys.modules[f"pydantic.{name}"] = module
    from fhir.resources import construct_fhir_element as construct

    return construct


construct_fhir_element = _load_fhir_resources()

FHIR_JSON = "application/fhir+json"


class Failure(Exception):
    """A check that did not hold."""


class Client:
    def __init__(self, base):
        self.base = base.rstrip("/")
        self.session = requests.Session()
        self.checks = 0
        self.validated = 0

    # -- checks -----------------------------------------------------------------------

    def check(self, cond, what, resp=None):
        self.checks += 1
        if not cond:
            detail = ""
            if resp is not None:
                detail = f"\n  request: {resp.request.method} {resp.request.url}\n  answer: {resp.status_code} {resp.text[:2000]}"
            raise Failure(f"{what}{detail}")

    def validate(self, resource, where):
        """Parses a resource with the fhir.resources R4 class of its type (recursively
        for Bundles, whose entries are parsed again on their own)."""
        self.check(isinstance(resource, dict), f"{where}: not a JSON object: {resource!r}"[:500])
        rtype = resource.get("resourceType")
        self.check(isinstance(rtype, str), f"{where}: no resourceType: {json.dumps(resource)[:500]}")
        try:
            construct_fhir_element(rtype, resource)
        except Exception as e:  # pydantic.ValidationError, KeyError for unknown types, ...
            raise Failure(
                f"{where}: the server returned an invalid FHIR R4 {rtype}: {e}\n  resource: {json.dumps(resource)[:2000]}"
            ) from e
        self.validated += 1
        if rtype == "Bundle":
            for i, entry in enumerate(resource.get("entry", [])):
                if "resource" in entry:
                    self.validate(entry["resource"], f"{where} entry[{i}].resource")
                outcome = entry.get("response", {}).get("outcome")
                if outcome is not None:
                    self.validate(outcome, f"{where} entry[{i}].response.outcome")
        return resource

    # -- requests -----------------------------------------------------------------------

    def url(self, path):
        if path.startswith("http://") or path.startswith("https://"):
            return path
        return f"{self.base}/{path.lstrip('/')}" if path else self.base

    def request(self, method, path, body=None, headers=None, raw=None):
        h = {"Accept": FHIR_JSON}
        if body is not None or raw is not None:
            h["Content-Type"] = FHIR_JSON
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        resp = self.session.request(method, self.url(path), data=data, headers=h, timeout=60)
        where = f"{method} {path or '/'} ({resp.status_code})"
        if resp.content:
            ctype = resp.headers.get("Content-Type", "")
            self.check(ctype.startswith(FHIR_JSON), f"{where}: Content-Type {ctype!r}", resp)
            try:
                value = resp.json()
            except ValueError:
                raise Failure(f"{where}: the body is not JSON: {resp.text[:500]}")
            self.validate(value, where)
            if resp.status_code >= 400:
                self.check(value.get("resourceType") == "OperationOutcome", f"{where}: an error that is no OperationOutcome", resp)
                self.check(len(value.get("issue", [])) > 0, f"{where}: an OperationOutcome without issues", resp)
        else:
            self.check(resp.status_code < 400, f"{where}: an error without an OperationOutcome", resp)
        return resp

    def expect(self, status, method, path, body=None, headers=None, raw=None):
        resp = self.request(method, path, body, headers, raw)
        self.check(resp.status_code == status, f"{method} {path}: expected {status}, got {resp.status_code}", resp)
        return resp

    def search(self, path):
        resp = self.expect(200, "GET", path)
        b = resp.json()
        self.check(b.get("resourceType") == "Bundle" and b.get("type") == "searchset", f"GET {path}: not a searchset", resp)
        return b

    def page_all(self, path):
        """Follows every next link; returns the match entries' resources."""
        found, pages, b = [], 0, self.search(path)
        while True:
            pages += 1
            found += [e["resource"] for e in b.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]
            nxt = [l["url"] for l in b.get("link", []) if l.get("relation") == "next"]
            if not nxt:
                return found
            self.check(pages < 1000, f"{path}: the next links do not end")
            b = self.search(nxt[0])


def link(bundle, relation):
    for l in bundle.get("link", []):
        if l.get("relation") == relation:
            return l.get("url")
    return None


def run(c, patients):
    tag = uuid.uuid4().hex[:12]
    mrn_system = f"urn:e2e:{tag}"

    # /metadata
    cs = c.expect(200, "GET", "metadata").json()
    c.check(cs["resourceType"] == "CapabilityStatement" and cs.get("fhirVersion") == "4.0.1", "metadata is an R4 CapabilityStatement")
    types = {r["type"] for r in cs["rest"][0]["resource"]}
    c.check({"Patient", "Observation", "Encounter"} <= types, "metadata lists Patient, Observation, Encounter")

    # create, read, vread, update, patch
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": mrn_system, "value": "A1"}],
        "name": [{"family": "Nguyễn", "given": ["Thị", "Minh"]}],
        "gender": "female",
        "birthDate": "1984-02-29",
        "telecom": [{"system": "phone", "value": "+1 555 0100"}],
        "address": [{"line": ["1 Main St"], "city": "Springfield", "postalCode": "62701"}],
    }
    r = c.expect(201, "POST", "Patient", patient)
    created = r.json()
    pid = created["id"]
    c.check(r.headers.get("Location", "").endswith(f"/Patient/{pid}/_history/1"), "create: Location", r)
    c.check(r.headers.get("ETag") == 'W/"1"', "create: ETag", r)
    c.check(created["meta"]["versionId"] == "1", "create: meta.versionId", r)
    c.check(created["name"][0]["family"] == "Nguyễn", "create: the name round-trips (UTF-8)", r)
    read = c.expect(200, "GET", f"Patient/{pid}").json()
    c.check(read == created, "read returns what create returned")
    read["active"] = True
    r = c.expect(200, "PUT", f"Patient/{pid}", read, {"If-Match": 'W/"1"'})
    c.check(r.json()["meta"]["versionId"] == "2", "update: version 2", r)
    c.expect(412, "PUT", f"Patient/{pid}", read, {"If-Match": 'W/"1"'})
    r = c.expect(200, "PATCH", f"Patient/{pid}", raw=json.dumps([{"op": "replace", "path": "/gender", "value": "other"}]),
                 headers={"Content-Type": "application/json-patch+json"})
    c.check(r.json()["gender"] == "other" and r.json()["meta"]["versionId"] == "3", "patch: applied as version 3", r)
    v1 = c.expect(200, "GET", f"Patient/{pid}/_history/1").json()
    c.check(v1["meta"]["versionId"] == "1" and "active" not in v1, "vread of version 1")
    c.expect(304, "GET", f"Patient/{pid}", headers={"If-None-Match": 'W/"3"'})

    # history
    h = c.expect(200, "GET", f"Patient/{pid}/_history").json()
    c.check(h["type"] == "history" and h.get("total") == 3 and len(h["entry"]) == 3, f"instance history has 3 versions: {json.dumps(h)[:800]}")
    h = c.expect(200, "GET", f"Patient/{pid}/_history?_count=1").json()
    c.check(len(h["entry"]) == 1 and link(h, "next"), "history _count=1 has a next link")
    c.expect(200, "GET", link(h, "next"))
    c.expect(200, "GET", "Patient/_history?_count=5")
    c.expect(200, "GET", "_history?_count=5")

    # transaction with urn:uuid references
    p_url, o_url, e_url = (f"urn:uuid:{uuid.uuid4()}" for _ in range(3))
    tx = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": p_url, "request": {"method": "POST", "url": "Patient"},
             "resource": {"resourceType": "Patient", "identifier": [{"system": mrn_system, "value": "T1"}],
                          "name": [{"family": "Transaction"}], "birthDate": "2001-01-01"}},
            {"fullUrl": e_url, "request": {"method": "POST", "url": "Encounter"},
             "resource": {"resourceType": "Encounter", "status": "finished",
                          "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                          "subject": {"reference": p_url},
                          "period": {"start": "2025-03-01T10:00:00Z", "end": "2025-03-01T10:20:00Z"}}},
            {"fullUrl": o_url, "request": {"method": "POST", "url": "Observation"},
             "resource": {"resourceType": "Observation", "status": "final",
                          "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0", "display": "Glucose"}]},
                          "subject": {"reference": p_url}, "encounter": {"reference": e_url},
                          "effectiveDateTime": "2025-03-01T10:10:00Z",
                          "valueQuantity": {"value": 123, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}},
        ],
    }
    r = c.expect(200, "POST", "", tx)
    resp = r.json()
    c.check(resp["type"] == "transaction-response" and len(resp["entry"]) == 3, "transaction-response with 3 entries", r)
    c.check(all(e["response"]["status"].startswith("201") for e in resp["entry"]), "every transaction entry 201", r)
    tx_pid = resp["entry"][0]["response"]["location"].split("Patient/")[1].split("/")[0]
    obs = c.expect(200, "GET", resp["entry"][2]["response"]["location"]).json()
    c.check(obs["subject"]["reference"] == f"Patient/{tx_pid}", f"urn:uuid reference rewritten: {obs['subject']}")

    # a transaction that fails stores nothing
    bad = json.loads(json.dumps(tx))
    bad["entry"][0]["resource"]["identifier"][0]["value"] = "T2"
    del bad["entry"][2]["resource"]["status"]
    r = c.request("POST", "", bad)
    c.check(400 <= r.status_code < 500, "an invalid transaction is a 4xx", r)
    b = c.search(f"Patient?identifier={mrn_system}|T2")
    c.check(len(b.get("entry", [])) == 0, "nothing of a failed transaction is stored")

    # batch: entries fail on their own
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "POST", "url": "Patient"}, "resource": {"resourceType": "Patient", "gender": "bogus"}},
        {"request": {"method": "GET", "url": f"Patient/{pid}"}},
    ]}
    r = c.expect(200, "POST", "", batch)
    e = r.json()["entry"]
    c.check(e[0]["response"]["status"].startswith("4") and e[1]["response"]["status"].startswith("200"), "batch statuses", r)

    # search
    b = c.search(f"Patient?identifier={mrn_system}|A1")
    c.check([e["resource"]["id"] for e in b.get("entry", [])] == [pid], "search by identifier", None)
    b = c.search("Patient?name=nguyen&_count=50")
    c.check(pid in [e["resource"]["id"] for e in b.get("entry", [])], "accent-folded name search finds Nguyễn")
    b = c.search(f"Observation?subject=Patient/{tx_pid}&_include=Observation:subject&_include=Observation:encounter")
    kinds = sorted(e["resource"]["resourceType"] for e in b.get("entry", []))
    c.check(kinds == ["Encounter", "Observation", "Patient"], f"_include: {kinds}")
    b = c.search(f"Patient?_id={tx_pid}&_revinclude=Observation:subject")
    c.check(len(b.get("entry", [])) == 2, "_revinclude")
    b = c.search("Observation?value-quantity=gt100|http://unitsofmeasure.org|mg/dL&_summary=count")
    c.check(b.get("total", 0) >= 1 and not b.get("entry"), "_summary=count")
    b = c.search(f"Patient?_id={pid}&_elements=name")
    tags = b["entry"][0]["resource"].get("meta", {}).get("tag", [])
    c.check(any(t.get("code") == "SUBSETTED" for t in tags), "_elements marks SUBSETTED")
    b = c.search("Encounter?date=2025-03-01")
    c.check(len(b.get("entry", [])) >= 1, "date search on Encounter.period")
    r = c.expect(200, "POST", "Patient/_search", raw=f"identifier={mrn_system}|A1",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    c.check(len(r.json().get("entry", [])) == 1, "POST _search", r)

    # $everything, $validate
    ev = c.expect(200, "GET", f"Patient/{tx_pid}/$everything").json()
    kinds = sorted(e["resource"]["resourceType"] for e in ev.get("entry", []))
    c.check(kinds == ["Encounter", "Observation", "Patient"], f"$everything: {kinds}")
    oo = c.expect(200, "POST", "Patient/$validate", {"resourceType": "Patient", "birthDate": "1999-13-45"}).json()
    c.check(any(i["severity"] == "error" for i in oo["issue"]), "$validate reports the bad birthDate")

    # errors
    c.expect(404, "GET", "NoSuchType/1")
    c.expect(404, "GET", f"Patient/{uuid.uuid4().hex[:20]}")
    c.expect(400, "POST", "Patient", raw="{not json")
    c.expect(400, "POST", "Patient", {"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    r = c.expect(422, "POST", "Patient", {"resourceType": "Patient", "gender": "bogus"})
    c.check(any("Patient.gender" in " ".join(i.get("expression", [])) for i in r.json()["issue"]), "422 names Patient.gender", r)
    c.expect(422, "POST", "Observation", {"resourceType": "Observation", "code": {"text": "no status"}})
    c.expect(400, "GET", "Patient?no-such-param=1")
    c.expect(406, "GET", "Patient?_format=xml")
    c.expect(406, "GET", "metadata", headers={"Accept": "application/fhir+xml"})
    c.expect(400, "GET", "Patient/bad_id!")

    # delete
    r = c.request("DELETE", f"Patient/{pid}")
    c.check(r.status_code in (200, 204), "delete", r)
    c.expect(410, "GET", f"Patient/{pid}")
    c.expect(200, "GET", f"Patient/{pid}/_history/1")

    # the synthetic patients
    if patients:
        found = c.page_all(f"Patient?identifier=urn:oid:2.16.840.1.113883.19.5.99999.1|&_count=7")
        ids = [p["id"] for p in found]
        c.check(len(ids) == patients and len(set(ids)) == patients,
                f"paging finds each of the {patients} synthetic patients once (found {len(ids)}, {len(set(ids))} distinct)")
        b = c.search("Patient?identifier=urn:oid:2.16.840.1.113883.19.5.99999.1|&_summary=count")
        c.check(b.get("total") == patients, f"_summary=count of the synthetic patients: {b.get('total')}")
        obs = c.page_all("Observation?_count=100&_sort=-date")
        c.check(len(obs) >= 2 * patients, f"at least two observations per synthetic patient ({len(obs)})")
        dates = [o.get("effectiveDateTime", "") for o in obs]
        c.check(dates == sorted(dates, reverse=True), "_sort=-date orders observations newest first")
        first = found[0]["id"]
        ev = c.expect(200, "GET", f"Patient/{first}/$everything").json()
        c.check(len(ev.get("entry", [])) >= 3, "$everything of a synthetic patient")
        c.search("Condition?code=http://snomed.info/sct|44054006&_include=Condition:subject")
        c.search("MedicationRequest?status=active&_count=3")
        c.search("Observation?category=laboratory&_count=5&_include=Observation:encounter")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base_url")
    ap.add_argument("--patients", type=int, default=0, help="synthetic patients loaded before")
    args = ap.parse_args()
    c = Client(args.base_url)
    try:
        run(c, args.patients)
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        print(f"{c.checks - 1} passed, 1 failed")
        return 1
    except requests.RequestException as e:
        print(f"FAIL: cannot talk to {args.base_url}: {e}", file=sys.stderr)
        print(f"{c.checks} passed, 1 failed")
        return 1
    print(f"validated {c.validated} resources with fhir.resources (R4)", file=sys.stderr)
    print(f"{c.checks} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
