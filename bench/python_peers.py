"""Measure the Python HL7 v2 peers on the inputs of bench/make_inputs.py.

Usage:

    .venv/bin/python bench/python_peers.py [INPUT_DIR] [--seconds 2] [--hl7apy-cap-mb 5]

INPUT_DIR defaults to target/bench-inputs. Prints one JSON object on stdout,
progress on stderr. The whole run takes about five minutes, most of it hl7apy
on the batch.

The work measured, per message: parse it, then read PID-3-1, PID-5-1 and
MSH-10 through the library's own API:

* python-hl7 (hl7==0.4.5): hl7.parse(text), then the documented accessor
  msg["PID.F3.R1.C1"], msg["PID.F5.R1.C1"], msg["MSH.F10"] (1-based field,
  repetition, component; values come back unescaped). Plain indexing such as
  msg.segment("PID")[3][0][0] is NOT used: python-hl7 only nests a level when
  a delimiter occurs, so for a PID-3 without "~", "^" or "&" [3][0] is
  already the string and [3][0][0] its first character.
* hl7apy (hl7apy==1.3.5): hl7apy.parser.parse_message(text, ...), then
  pid.pid_3[0].cx_1.value, pid.pid_5[0].xpn_1.value and msh.msh_10.value
  (index [0] picks the first repetition). Measured twice: with
  find_groups=False (segments are direct children of the message) and with
  the default settings (find_groups=True: segments are placed in the
  structure's groups, so ORU_R01's PID is reached through
  oru_r01_patient_result.oru_r01_patient). Validation level is hl7apy's
  default (tolerant) in both.

Keys of the output object (peer/input):

* "<peer>/adt_a01", "<peer>/oru_r01": the work repeated on the one message
  for about --seconds after one warm-up run: ns_per_op (mean), ops.
* "<peer>/batch": batch_100mb.hl7 streamed: read line by line (lines end in
  CR; the file must be ASCII), a message is cut at each MSH line,
  FHS/BHS/BTS/FTS lines are skipped; the timing includes that reading. mb_per_s (MB = 10^6 bytes of
  file), msgs_per_s, bytes, messages, seconds. hl7apy stops after the first
  message that reaches --hl7apy-cap-mb MB of the file (it is about 20x
  slower than python-hl7): "capped_at_bytes" and "note" say so;
  capped_at_bytes is null for an uncapped run.
* Every entry has peak_rss_kb: resource.getrusage(RUSAGE_SELF).ru_maxrss of
  a fresh interpreter that imports the library and runs only that one
  measurement (so it includes the interpreter and library baseline).
* "sample": the three values each peer read from adt_a01.hl7, as a sanity
  check; "meta": versions and settings.

peer is "python-hl7", "hl7apy" (find_groups=False) or "hl7apy-default".
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from importlib.metadata import version

PEERS = ["python-hl7", "hl7apy", "hl7apy-default"]
SINGLE_INPUTS = ["adt_a01", "oru_r01"]
BATCH_FILE = "batch_100mb.hl7"
ENVELOPE = ("FHS", "BHS", "BTS", "FTS")


def python_hl7_work(text):
    import hl7

    msg = hl7.parse(text)
    return msg["PID.F3.R1.C1"], msg["PID.F5.R1.C1"], msg["MSH.F10"]


def hl7apy_work(text, find_groups):
    from hl7apy.parser import parse_message

    msg = parse_message(text, find_groups=find_groups)
    if find_groups and msg.name == "ORU_R01":
        pid = msg.oru_r01_patient_result.oru_r01_patient.pid
    else:
        pid = msg.pid
    return pid.pid_3[0].cx_1.value, pid.pid_5[0].xpn_1.value, msg.msh.msh_10.value


WORK = {
    "python-hl7": python_hl7_work,
    "hl7apy": lambda text: hl7apy_work(text, find_groups=False),
    "hl7apy-default": lambda text: hl7apy_work(text, find_groups=True),
}


def read_text(path):
    # newline="" keeps the CR segment terminators (text mode would turn them into LF).
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def peak_rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def measure_single(work, path, seconds):
    text = read_text(path)
    work(text)  # warm-up: imports, caches
    ops = 0
    start = time.perf_counter_ns()
    deadline = start + int(seconds * 1e9)
    while True:
        work(text)
        ops += 1
        now = time.perf_counter_ns()
        if now >= deadline:
            break
    return {"ns_per_op": round((now - start) / ops), "ops": ops}


def measure_batch(work, path, cap_bytes):
    work(read_text(os.path.join(os.path.dirname(path), "adt_a01.hl7")))  # warm-up
    messages = consumed = 0
    lines = []
    start = time.perf_counter_ns()
    # ASCII input, so len(line) is its size in bytes; newline="" makes every
    # CR-terminated segment one line.
    with open(path, encoding="ascii", newline="") as f:
        for line in f:
            envelope = line.startswith(ENVELOPE)
            if lines and (envelope or line.startswith("MSH")):
                work("".join(lines))
                messages += 1
                lines = []
                if cap_bytes is not None and consumed >= cap_bytes:
                    break
            consumed += len(line)
            if not envelope:
                lines.append(line)
        else:  # end of file reached (no cap): the last message, if unterminated
            if lines:
                work("".join(lines))
                messages += 1
    seconds = (time.perf_counter_ns() - start) / 1e9
    result = {
        "mb_per_s": round(consumed / 1e6 / seconds, 3),
        "msgs_per_s": round(messages / seconds, 1),
        "bytes": consumed,
        "messages": messages,
        "seconds": round(seconds, 3),
        "capped_at_bytes": cap_bytes,
    }
    if cap_bytes is not None:
        result["note"] = f"capped: only the first {consumed} bytes of the file were processed"
    return result


def run_one(peer, input_name, input_dir, seconds, cap_mb):
    """One measurement in this process; prints its JSON result."""
    work = WORK[peer]
    if input_name == "batch":
        cap = int(cap_mb * 1e6) if peer.startswith("hl7apy") else None
        result = measure_batch(work, os.path.join(input_dir, BATCH_FILE), cap)
    else:
        result = measure_single(work, os.path.join(input_dir, input_name + ".hl7"), seconds)
    if input_name == "adt_a01":
        result["sample"] = dict(zip(["PID-3-1", "PID-5-1", "MSH-10"], map(str, work(
            read_text(os.path.join(input_dir, "adt_a01.hl7"))))))
    result["peak_rss_kb"] = peak_rss_kb()
    json.dump(result, sys.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input_dir", nargs="?", default=os.path.join("target", "bench-inputs"))
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--hl7apy-cap-mb", type=float, default=5.0)
    parser.add_argument("--one", nargs=2, metavar=("PEER", "INPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        run_one(*args.one, args.input_dir, args.seconds, args.hl7apy_cap_mb)
        return

    report = {
        "meta": {
            "python": platform.python_version(),
            "hl7": version("hl7"),
            "hl7apy": version("hl7apy"),
            "input_dir": args.input_dir,
            "seconds_per_single_input": args.seconds,
            "hl7apy_batch_cap_bytes": int(args.hl7apy_cap_mb * 1e6),
            "mb": "10^6 bytes",
        },
        "sample": {},
    }
    for peer in PEERS:
        for input_name in SINGLE_INPUTS + ["batch"]:
            key = f"{peer}/{input_name}"
            print(f"measuring {key} ...", file=sys.stderr, flush=True)
            # A fresh interpreter per measurement keeps peak RSS separate.
            out = subprocess.run(
                [sys.executable, __file__, args.input_dir, "--seconds", str(args.seconds),
                 "--hl7apy-cap-mb", str(args.hl7apy_cap_mb), "--one", peer, input_name],
                check=True, capture_output=True, text=True,
            ).stdout
            result = json.loads(out)
            if "sample" in result:
                report["sample"][peer] = result.pop("sample")
            report[key] = result
            print(f"  {json.dumps(result)}", file=sys.stderr, flush=True)
    json.dump(report, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
