"""Run every HL7 v2 benchmark peer, one after another, and print a Markdown report.

Usage (from the repository root):

    .venv/bin/python bench/compare.py [--inputs DIR] [--seconds N] [--no-build] [--quick]

Steps:

1. Unless --no-build: cargo build --release -p hl7v2 --example hl7bench.
2. Write the inputs with bench/make_inputs.py if any is missing
   (DIR defaults to target/bench-inputs).
3. Measure, each in its own process and strictly one at a time (never two
   measurements at once, so they do not compete for cores or memory
   bandwidth):
   * target/release/examples/hl7bench PEER FILE SECONDS for plexus,
     hl7-parser and rust-hl7 on adt_a01.hl7 and oru_r01.hl7 (SECONDS is
     --seconds, default 3), then plexus-scan, plexus, hl7-parser and
     rust-hl7 on batch_100mb.hl7 (streamed again and again for hl7bench's default 2 s; best pass);
   * bench/python_peers.py (python-hl7, hl7apy, hl7apy-default) with
     --seconds N, or with --quick: --seconds 0.5 --hl7apy-cap-mb 1
     (--quick only shortens the Python run; the Rust runs keep --seconds).
4. Check that every peer read the same three values (PID-3-1, PID-5-1,
   MSH-10) from adt_a01.hl7 as plexus, and that every Rust peer read the same
   values from the first message of the batch. A mismatch, or a peer that
   failed, is reported at the top of the report and on stderr, and the exit
   status is 1.
5. Print the report on stdout (progress goes to stderr) and write the raw
   results to target/bench-results.json.

Standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
HL7BENCH = os.path.join(TARGET, "release", "examples", "hl7bench")
RESULTS_JSON = os.path.join(TARGET, "bench-results.json")

SINGLE_INPUTS = ["adt_a01", "oru_r01"]
BATCH = "batch"
FILES = {"adt_a01": "adt_a01.hl7", "oru_r01": "oru_r01.hl7", BATCH: "batch_100mb.hl7"}
TITLES = {
    "adt_a01": "ADT^A01 (adt_a01.hl7, one message, ~1.2 KB)",
    "oru_r01": "ORU^R01 (oru_r01.hl7, one message with 30 OBX, ~6 KB)",
    BATCH: "Batch (batch_100mb.hl7, ~105 MB, streamed; Rust peers: best of repeated passes)",
}
RUST_SINGLE_PEERS = ["plexus", "hl7-parser", "rust-hl7"]
RUST_BATCH_PEERS = ["plexus-scan", "plexus", "hl7-parser", "rust-hl7"]
RUST_CRATES = ["hl7-parser", "rust-hl7"]  # the Rust peers Plexus is compared with
PYTHON_PEERS = ["python-hl7", "hl7apy", "hl7apy-default"]
SAMPLE_KEYS = ["PID-3-1", "PID-5-1", "MSH-10"]

# Targets
ADT_NS_TARGET = 1000.0  # parse + 3 reads of the ADT in <= 1 us
SCAN_MB_S_TARGET = 1000.0  # >= 1 GB/s, MB = 10^6 bytes
RUST_RATIO_TARGET = 10.0
PYTHON_HL7_RATIO_TARGET = 200.0


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def python_exe():
    venv = os.path.join(ROOT, ".venv", "bin", "python")
    return venv if os.path.exists(venv) else sys.executable


def run_text(cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def crate_versions():
    """Versions of the Rust peer crates, from Cargo.lock."""
    versions = {}
    try:
        with open(os.path.join(ROOT, "Cargo.lock")) as f:
            lock = f.read()
    except OSError:
        return versions
    for name in RUST_CRATES:
        found = re.findall(r'name = "%s"\nversion = "([^"]+)"' % re.escape(name), lock)
        if found:
            versions[name] = ", ".join(found)
    return versions


def environment():
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "uname": run_text(["uname", "-srm"]),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "rustc": run_text(["rustc", "--version"]),
        "python": platform.python_version(),
        "crates": crate_versions(),
    }


def build():
    cmd = ["cargo", "build", "--release", "-p", "hl7v2", "--example", "hl7bench"]
    log("$ " + " ".join(cmd))
    # cargo's output goes to stderr so that stdout stays the report alone
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=sys.stderr)


def ensure_inputs(inputs):
    missing = [f for f in FILES.values() if not os.path.exists(os.path.join(inputs, f))]
    if missing:
        log(f"inputs missing ({', '.join(missing)}): writing them to {inputs}")
        subprocess.run([python_exe(), os.path.join(ROOT, "bench", "make_inputs.py"), inputs],
                       cwd=ROOT, check=True, stdout=sys.stderr)


def warm_page_cache(path):
    """Read the batch once, so the first peer to stream it does not pay for the disk."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def run_hl7bench(peer, path, seconds):
    cmd = [HL7BENCH, peer, path] + ([] if seconds is None else [str(seconds)])
    log("$ " + " ".join(os.path.relpath(c, ROOT) if os.path.isabs(c) else c for c in cmd))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        log(f"  FAILED (exit {proc.returncode}):\n    " + "\n    ".join(tail))
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    log("  " + json.dumps({k: v for k, v in result.items() if k not in ("peer", "file")}))
    return result


def run_python_peers(inputs, seconds, cap_mb):
    cmd = [python_exe(), os.path.join(ROOT, "bench", "python_peers.py"), inputs, "--seconds", str(seconds)]
    if cap_mb is not None:
        cmd += ["--hl7apy-cap-mb", str(cap_mb)]
    log("$ " + " ".join(os.path.relpath(c, ROOT) if os.path.isabs(c) else c for c in cmd))
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # its progress: our stderr
    if proc.returncode != 0:
        log(f"  python_peers.py FAILED (exit {proc.returncode})")
        return {"error": f"python_peers.py exit {proc.returncode}"}
    return json.loads(proc.stdout)


# ---------------------------------------------------------------------------
# collecting the results


def collect(rust, python):
    """results[input][peer] = {ns_per_op | mb_per_s, msgs_per_s, peak_rss_kb, ...} or {"error": ...}."""
    results = {name: {} for name in FILES}
    for key, value in rust.items():
        peer, name = key.split("/")
        results[name][peer] = value
    for peer in PYTHON_PEERS:
        for name in FILES:
            if "error" in python:
                results[name][peer] = {"error": python["error"]}
            else:
                results[name][peer] = python.get(f"{peer}/{name}", {"error": "missing from python_peers.py output"})
    return results


def sample_list(sample):
    if isinstance(sample, dict):
        return [sample.get(k) for k in SAMPLE_KEYS]
    return list(sample) if sample is not None else None


def check_samples(rust, python):
    """Problems: a list of strings, empty when every peer read what plexus read."""
    problems = []
    samples = {"adt_a01": {}, BATCH: {}}
    for key, value in rust.items():
        peer, name = key.split("/")
        if name in samples and "sample" in value:
            samples[name][peer] = sample_list(value["sample"])
    for peer, sample in (python.get("sample") or {}).items():
        samples["adt_a01"][peer] = sample_list(sample)
    for name, peers in (("adt_a01", RUST_SINGLE_PEERS + PYTHON_PEERS), (BATCH, RUST_BATCH_PEERS)):
        expected = samples[name].get("plexus")
        if expected is None:
            problems.append(f"{FILES[name]}: no sample from plexus")
            continue
        for peer in peers:
            got = samples[name].get(peer)
            if got is None:
                problems.append(f"{FILES[name]}: no sample from {peer}")
            elif got != expected:
                problems.append(f"{FILES[name]}: {peer} read {got}, plexus read {expected}")
    return samples, problems


# ---------------------------------------------------------------------------
# formatting


def fmt_ratio(x):
    if x is None:
        return "n/a"
    return f"{x:.1f}×" if x < 10 else f"{x:,.0f}×"


def fmt_rss(entry):
    kb = entry.get("peak_rss_kb")
    return "n/a" if kb is None else f"{kb * 1024 / 1e6:,.1f}"


def fmt_ns(ns):
    return f"{ns:,.1f}" if ns < 100 else f"{ns:,.0f}"


def fmt_mb_s(mb):
    if mb >= 100:
        return f"{mb:,.0f}"
    return f"{mb:.1f}" if mb >= 10 else f"{mb:.3g}"


def ratio(results, name, peer):
    """How many times faster plexus (parse + 3 reads) is than peer on input name."""
    ours, theirs = results[name].get("plexus", {}), results[name].get(peer, {})
    if name == BATCH:
        if theirs.get("mb_per_s") and ours.get("mb_per_s"):
            return ours["mb_per_s"] / theirs["mb_per_s"]
    elif theirs.get("ns_per_op") and ours.get("ns_per_op"):
        return theirs["ns_per_op"] / ours["ns_per_op"]
    return None


def peer_label(peer, env, python_meta):
    crates = env["crates"]
    labels = {
        "plexus": "**Plexus** (parse + 3 reads)",
        "plexus-scan": "Plexus scan (split only, no parse)",
        "hl7-parser": f"hl7-parser {crates.get('hl7-parser', '')} (Rust)",
        "rust-hl7": f"rust-hl7 {crates.get('rust-hl7', '')} (Rust)",
        "python-hl7": f"python-hl7 {python_meta.get('hl7', '')} (Python)",
        "hl7apy": f"hl7apy {python_meta.get('hl7apy', '')} (Python, find_groups=False)",
        "hl7apy-default": f"hl7apy {python_meta.get('hl7apy', '')} (Python, default settings)",
    }
    return re.sub(r"  +", " ", labels[peer])


def table(results, name, env, python_meta):
    lines = []
    if name == BATCH:
        peers = ["plexus", "plexus-scan"] + RUST_CRATES + PYTHON_PEERS
        lines.append("| Peer | MB/s | msgs/s | Plexus is N× faster | Peak RSS (MB) |")
        lines.append("|---|---:|---:|---:|---:|")
    else:
        peers = ["plexus"] + RUST_CRATES + PYTHON_PEERS
        lines.append("| Peer | ns/op | Plexus is N× faster | Peak RSS (MB) |")
        lines.append("|---|---:|---:|---:|")
    for peer in peers:
        entry = results[name].get(peer, {"error": "not measured"})
        label = peer_label(peer, env, python_meta)
        faster = "—" if peer in ("plexus", "plexus-scan") else fmt_ratio(ratio(results, name, peer))
        if "error" in entry:
            cells = ["FAILED"] * (2 if name == BATCH else 1) + ["n/a", "n/a"]
        elif name == BATCH:
            cells = [fmt_mb_s(entry["mb_per_s"]), f"{entry['msgs_per_s']:,.0f}", faster, fmt_rss(entry)]
        else:
            cells = [fmt_ns(entry["ns_per_op"]), faster, fmt_rss(entry)]
        lines.append("| " + " | ".join([label] + cells) + " |")
    return lines


def batch_notes(results):
    notes = []
    for peer in ("hl7apy", "hl7apy-default"):
        entry = results[BATCH].get(peer, {})
        cap = entry.get("capped_at_bytes")
        if cap is not None:
            notes.append(f"{peer} measured only the first {cap / 1e6:g} MB of the batch "
                         f"({entry.get('bytes', 0):,} bytes, {entry.get('messages', 0):,} messages), "
                         f"not the whole file.")
    notes.append("Every Rust peer is fed by Plexus' `MessageReader`, which splits the stream into "
                 "messages (neither hl7-parser nor rust-hl7 reads streams), so their rows include "
                 "Plexus' splitting; the Python peers split the file themselves, line by line.")
    scan = results[BATCH].get("plexus-scan", {})
    if "mb_per_s" in scan:
        notes.append(f"The Plexus scan row is the split alone, without parsing: "
                     f"{fmt_mb_s(scan['mb_per_s'])} MB/s, {scan['msgs_per_s']:,.0f} msgs/s "
                     f"({scan.get('messages', 0):,} messages, {scan.get('bytes', 0):,} bytes).")
    return notes


def targets(results):
    """[(ok, text)]; ok is None when a number is missing."""
    out = []

    def add(ok, text):
        out.append((ok, text))

    adt = results["adt_a01"].get("plexus", {}).get("ns_per_op")
    add(None if adt is None else adt <= ADT_NS_TARGET,
        f"parse + 3 reads of the ADT ≤ 1 µs: {'n/a' if adt is None else fmt_ns(adt) + ' ns'}")
    for peer, what in (("plexus-scan", "single-core scan (split only) of the batch"),
                       ("plexus", "single-core parse + 3 reads of the batch")):
        mb = results[BATCH].get(peer, {}).get("mb_per_s")
        add(None if mb is None else mb >= SCAN_MB_S_TARGET,
            f"{what} ≥ 1 GB/s (1000 MB/s): {'n/a' if mb is None else fmt_mb_s(mb) + ' MB/s'}")
    for name, short in (("adt_a01", "ADT"), ("oru_r01", "ORU"), (BATCH, "batch")):
        ratios = {p: ratio(results, name, p) for p in RUST_CRATES}
        ratios = {p: r for p, r in ratios.items() if r is not None}
        if len(ratios) < len(RUST_CRATES):
            add(None, f"≥ 10× the fastest Rust crate on the {short}: n/a (a Rust peer failed)")
        else:
            fastest = min(ratios, key=ratios.get)
            add(ratios[fastest] >= RUST_RATIO_TARGET,
                f"≥ 10× the fastest Rust crate on the {short}: {fmt_ratio(ratios[fastest])} ({fastest})")
    for name, short in (("adt_a01", "ADT"), ("oru_r01", "ORU"), (BATCH, "batch")):
        r = ratio(results, name, "python-hl7")
        add(None if r is None else r >= PYTHON_HL7_RATIO_TARGET,
            f"≥ 200× python-hl7 on the {short}: {fmt_ratio(r)}")
    return out


def report(env, args, python_seconds, results, problems, python_meta):
    lines = ["# Plexus benchmark comparison", ""]
    if problems:
        lines += ["> **⚠ PROBLEMS — these numbers are not comparable until fixed:**", ">"]
        lines += [f"> - {p}" for p in problems]
        lines.append("")
    lines += [
        f"- Date: {env['date']}",
        f"- System: `{env['uname']}`",
        f"- CPU: {env['cpu']} ({env['cpus']} logical CPUs; every measurement runs alone, single-threaded)",
        f"- rustc: `{env['rustc']}`",
        f"- Python: {python_meta.get('python', env['python'])}",
        f"- Settings: Rust peers {args.seconds:g} s per single-message input; Python peers "
        f"{python_seconds:g} s per single-message input"
        + (f", hl7apy batch capped at {python_meta['hl7apy_batch_cap_bytes'] / 1e6:g} MB"
           if python_meta.get("hl7apy_batch_cap_bytes") else "")
        + (" (--quick)" if args.quick else ""),
        "",
        "The work, per message: parse it, then read PID-3-1, PID-5-1 and MSH-10. Each measurement "
        "runs in its own process, so peak RSS is that process' own (for Python it includes the "
        "interpreter and the imported library). MB = 10^6 bytes. \"Plexus is N× faster\" is the "
        "peer's time per message over Plexus' (batch: Plexus' MB/s over the peer's), both from this run.",
        "",
    ]
    for name in SINGLE_INPUTS + [BATCH]:
        lines += [f"## {TITLES[name]}", ""]
        lines += table(results, name, env, python_meta)
        lines.append("")
        if name == BATCH:
            lines += [f"- {n}" for n in batch_notes(results)]
            lines.append("")
    lines += ["## Targets", ""]
    for ok, text in targets(results):
        mark = "✅" if ok else ("❌" if ok is False else "❔")
        lines.append(f"- {mark} {text}")
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", default=os.path.join(TARGET, "bench-inputs"),
                        help="directory of the inputs (default target/bench-inputs)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="seconds per single-message measurement (default 3)")
    parser.add_argument("--no-build", action="store_true", help="do not run cargo build")
    parser.add_argument("--quick", action="store_true",
                        help="short Python run: --seconds 0.5 --hl7apy-cap-mb 1")
    args = parser.parse_args()
    inputs = os.path.abspath(args.inputs)
    started = time.monotonic()

    if not args.no_build:
        build()
    if not os.path.exists(HL7BENCH):
        sys.exit(f"{HL7BENCH} is missing: build it with "
                 "cargo build --release -p hl7v2 --example hl7bench (or drop --no-build)")
    ensure_inputs(inputs)
    env = environment()
    path = {name: os.path.join(inputs, f) for name, f in FILES.items()}

    # Strictly sequential: one measurement at a time.
    rust = {}
    for name in SINGLE_INPUTS:
        for peer in RUST_SINGLE_PEERS:
            rust[f"{peer}/{name}"] = run_hl7bench(peer, path[name], args.seconds)
    log("reading the batch once to warm the page cache ...")
    warm_page_cache(path[BATCH])
    for peer in RUST_BATCH_PEERS:
        rust[f"{peer}/{BATCH}"] = run_hl7bench(peer, path[BATCH], None)
    python_seconds, cap_mb = (0.5, 1.0) if args.quick else (args.seconds, None)
    python = run_python_peers(inputs, python_seconds, cap_mb)

    results = collect(rust, python)
    samples, problems = check_samples(rust, python)
    failed = [f"{peer} on {FILES[name]} failed: {entry['error']}"
              for name in FILES for peer, entry in results[name].items() if "error" in entry]
    problems = failed + problems
    python_meta = python.get("meta", {})

    text = report(env, args, python_seconds, results, problems, python_meta)
    print(text)

    raw = {
        "environment": env,
        "settings": {"inputs": inputs, "rust_seconds": args.seconds, "python_seconds": python_seconds,
                     "hl7apy_cap_mb": cap_mb, "quick": args.quick, "mb": "10^6 bytes"},
        "results": results,
        "samples": samples,
        "python_meta": python_meta,
        "problems": problems,
        "targets": [{"ok": ok, "text": t} for ok, t in targets(results)],
        "ratios_plexus_faster": {
            name: {p: ratio(results, name, p) for p in RUST_CRATES + PYTHON_PEERS} for name in FILES},
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    os.makedirs(os.path.dirname(RESULTS_JSON), exist_ok=True)
    with open(RESULTS_JSON, "w") as f:
        json.dump(raw, f, indent=2, ensure_ascii=False)
        f.write("\n")
    log(f"raw results: {os.path.relpath(RESULTS_JSON, ROOT)}")

    if problems:
        log("")
        log("!" * 72)
        log("!! BENCHMARK PROBLEMS — the peers did not all do the same work:")
        for p in problems:
            log(f"!!   {p}")
        log("!" * 72)
        sys.exit(1)


if __name__ == "__main__":
    main()
