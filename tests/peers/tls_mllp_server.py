"""Independent MLLP-over-TLS receiver (Python ssl + OpenSSL, not Plexus).

Usage:

    .venv/bin/python tests/peers/tls_mllp_server.py --cert S.pem --key S.key
        [--ca CA.pem [--require-client-cert]] [--log FILE]

For testing `plexus send --tls`. Binds 127.0.0.1 on a free port, prints
exactly one line, "LISTENING <port>", on stdout, flushes, and serves until
killed (nothing else goes to stdout; diagnostics go to stderr). Each
connection gets its own thread, does the TLS handshake there (TLS 1.2
minimum, OpenSSL's default ciphers) and may carry any number of messages.

Client certificates:
* no --ca: none is asked for;
* --ca: one is asked for and, if sent, must chain to CA.pem (CERT_OPTIONAL;
  a client without one is still accepted);
* --ca --require-client-cert: the handshake fails without a valid one
  (CERT_REQUIRED). With TLS 1.3 the client only learns this after its own
  side of the handshake: OpenSSL sends the alert (certificate_required,
  unknown_ca, ...) and closes, so the client typically sees it on its first
  read or write, not in its connect/handshake call.

Every message is answered with an ACK built by python-hl7's
Message.create_ack("AA"): sender and receiver swapped, MSH-9
ACK^<trigger>^ACK, new MSH-10, MSA-1 AA, MSA-2 = the message's MSH-10.
A frame python-hl7 cannot parse or ACK (see mllp_ack_server.py: no MSH
first, MSH-11/12 missing, MSH-9 without a component) gets
"MSH|^~\\&|TLS_MLLP_SERVER||||<now>||ACK|<id>|P|2.5\\rMSA|AR|\\r".
Frames are 0x0B message 0x1C 0x0D; bytes outside frames are skipped.
Replies are UTF-8 (latin-1 if the message was not valid UTF-8).

--log FILE (appended; each write is flushed and closed under a lock BEFORE
the reply is sent, so a client holding its ACK can read the log):
* after a successful handshake in which the client sent a certificate, one
  line "SUBJECT <subject>\\n", the subject from getpeercert() in RFC 4514
  order (most specific first) with short names, e.g.
  "SUBJECT CN=plexus-client,O=Plexus Tests" (values are not escaped);
  a certificate with only a CN gives "SUBJECT CN=plexus-client";
* for every message, its bytes exactly as received between 0x0B and 0x1C,
  directly followed by the line "=== END OF MESSAGE ===\\n" (same format
  as mllp_ack_server.py). A SUBJECT line, if any, precedes the messages of
  its connection, so when splitting the log on the separator, drop leading
  "SUBJECT ...\\n" lines from each piece (messages never contain LF unless
  the sender put it there).
* a failed handshake adds "HANDSHAKE_FAILED <OpenSSL reason>\\n" (e.g.
  PEER_DID_NOT_RETURN_A_CERTIFICATE, UNSUPPORTED_PROTOCOL,
  CERTIFICATE_VERIFY_FAILED for a client certificate from another CA;
  TLSV1_ALERT_UNKNOWN_CA or SSLV3_ALERT_BAD_CERTIFICATE, e.g. on a host name
  mismatch, when the client rejects our certificate); it is also noted on
  stderr with the peer address, as is every accepted connection's TLS
  version, cipher and whether a client certificate was sent.
"""

import argparse
import datetime
import socket
import ssl
import sys
import threading

import hl7

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
LOG_SEPARATOR = b"=== END OF MESSAGE ===\n"
SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
    "emailAddress": "emailAddress",
}


class Log:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def write(self, data):
        if self.path is None:
            return
        with self.lock, open(self.path, "ab") as f:
            f.write(data)


def note(text):
    print(f"tls_mllp_server: {text}", file=sys.stderr, flush=True)


def subject_line(cert):
    """getpeercert()['subject'] -> 'CN=...,O=...' (RFC 4514 order)."""
    rdns = []
    for rdn in reversed(cert.get("subject", ())):
        rdns.append("+".join(f"{SHORT_NAMES.get(k, k)}={v}" for k, v in rdn))
    return ",".join(rdns)


def build_ack(payload):
    """Reply bytes (CR-terminated, unframed) for a message payload (bytes).

    UTF-8, or latin-1 when the message was not valid UTF-8."""
    try:
        text, encoding = payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = payload.decode("latin-1"), "latin-1"
    try:
        ack = str(hl7.parse(text).create_ack("AA"))
    except Exception as exc:
        note(f"cannot ACK ({type(exc).__name__}: {exc}); AR sent")
        now = datetime.datetime.utcnow().strftime("%Y%m%d%H%M%S")
        control_id = hl7.generate_message_control_id()
        ack = f"MSH|^~\\&|TLS_MLLP_SERVER||||{now}||ACK|{control_id}|P|2.5\rMSA|AR|\r"
    if not ack.endswith("\r"):
        ack += "\r"
    return ack.encode(encoding)


def frames(conn):
    """Yield the payload of each MLLP frame until the peer closes."""
    buffer = b""
    while True:
        start = buffer.find(SB)
        if start > 0 or (start < 0 and buffer.strip()):
            junk = buffer if start < 0 else buffer[:start]
            if junk.strip():
                note(f"skipping {len(junk)} bytes outside MLLP frames")
            buffer = buffer[len(junk):]
            continue
        if start == 0:
            end = buffer.find(EB + CR, 1)
            if end >= 0:
                yield buffer[1:end]
                buffer = buffer[end + 2:]
                continue
        try:
            chunk = conn.recv(65536)
        except (ssl.SSLError, OSError) as exc:
            note(f"read failed: {exc!r}")
            chunk = b""
        if not chunk:
            if buffer.strip():
                note(f"connection closed inside a frame ({len(buffer)} bytes dropped)")
            return
        buffer += chunk


def serve(ctx, raw, peer, log):
    try:
        conn = ctx.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        note(f"handshake with {peer[0]}:{peer[1]} failed: {exc!r}")
        log.write(f"HANDSHAKE_FAILED {reason}\n".encode())
        raw.close()
        return
    try:
        cert = conn.getpeercert()
        note(f"connection from {peer[0]}:{peer[1]}: {conn.version()} "
             f"{conn.cipher()[0]}, client certificate: {bool(cert)}")
        if cert:
            log.write(f"SUBJECT {subject_line(cert)}\n".encode("utf-8"))
        for payload in frames(conn):
            log.write(payload + LOG_SEPARATOR)
            ack = build_ack(payload)
            conn.sendall(SB + ack + EB + CR)
    except (ssl.SSLError, OSError) as exc:
        note(f"connection from {peer[0]}:{peer[1]}: {exc!r}")
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca")
    parser.add_argument("--require-client-cert", action="store_true")
    parser.add_argument("--log", metavar="FILE")
    args = parser.parse_args()
    if args.require_client_cert and not args.ca:
        parser.error("--require-client-cert needs --ca")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    if args.ca:
        ctx.load_verify_locations(cafile=args.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if args.require_client_cert else ssl.CERT_OPTIONAL
    log = Log(args.log)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(f"LISTENING {listener.getsockname()[1]}", flush=True)
    try:
        while True:
            raw, peer = listener.accept()
            threading.Thread(target=serve, args=(ctx, raw, peer, log), daemon=True).start()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()


if __name__ == "__main__":
    main()
