"""Validates FHIR R4 Bundles with fhir.resources 6.4.0, an implementation independent of
Plexus: reads one Bundle, or a JSON array of Bundles, from stdin; parses each Bundle and then
every entry's resource with the fhir.resources class of its type. Prints one line per
invalid resource and a summary `validated N resources`; exits 1 if any is invalid, 2 on bad
input. Used by crates/convert/tests/peer.rs on every converted corpus message."""

import json
import sys


def _load_fhir_resources():
    """Imports fhir.resources 6.4.0 (R4), written for pydantic 1, on the pydantic 1 API that
    pydantic 2 ships as `pydantic.v1` (the same redirection as tests/peers/fhir_e2e.py)."""
    import importlib
    import pkgutil

    import pydantic

    if not pydantic.VERSION.startswith("1."):
        import pydantic.v1 as v1

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


def validate(resource, where, errors):
    """Parses one resource; returns how many were parsed (entries of Bundles too)."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        errors.append(f"{where}: not a resource")
        return 0
    rtype = resource["resourceType"]
    try:
        construct_fhir_element(rtype, resource)
    except Exception as e:  # pydantic ValidationError, unknown resource types …
        errors.append(f"{where}: invalid FHIR R4 {rtype}: {e}".replace("\n", " | "))
        return 0
    count = 1
    if rtype == "Bundle":
        for i, entry in enumerate(resource.get("entry", [])):
            if "resource" in entry:
                count += validate(entry["resource"], f"{where}.entry[{i}].resource", errors)
    return count


def main():
    try:
        data = json.load(sys.stdin)
    except ValueError as e:
        print(f"stdin is not JSON: {e}")
        return 2
    bundles = data if isinstance(data, list) else [data]
    errors = []
    count = 0
    for i, b in enumerate(bundles):
        where = b.get("id", f"bundle[{i}]") if isinstance(b, dict) else f"bundle[{i}]"
        count += validate(b, str(where), errors)
    for e in errors:
        print(e)
    print(f"validated {count} resources")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
