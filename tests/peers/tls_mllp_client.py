"""Independent MLLP-over-TLS sender (Python ssl + OpenSSL, not Plexus).

Usage:

    .venv/bin/python tests/peers/tls_mllp_client.py --host 127.0.0.1 --port P
        --ca CA.pem [--cert C.pem --key K.pem] [--tls-version 1.0|1.1|1.2|1.3]
        [--server-name NAME] [--timeout SECONDS] [--alert-wait SECONDS] FILE

Connects once, does the TLS handshake (server certificate verified against
--ca, host name checked against --server-name, default --host; an IP
address is matched against the certificate's IP SANs and sends no SNI),
then, for each message of FILE in order, sends it in an MLLP frame
(0x0B message 0x1C 0x0D), waits for the reply frame and prints one line:

    ACK <MSA-1> <MSA-2>

(fields as they stand in the reply, unescaped; when MSA-2 is empty the line
is "ACK <MSA-1>", no trailing space). python-hl7 parses the reply.

FILE: a UTF-8 BOM is dropped, CRLF and LF become CR, blank lines and
FHS/BHS/BTS/FTS batch envelope segments are dropped, a new message starts at
every line beginning with "MSH" (lines before the first MSH are dropped, with
a note on stderr), and every segment, the last one too, is sent terminated
by CR. Bytes are sent as they are in the file (no re-encoding).

stdout lines and exit status (stdout has nothing else; details go to stderr,
including "connected: <TLS version> <cipher>" after the handshake):

    0  all messages sent and a reply frame received for each (whatever its
       MSA-1: AE/AR are still answers; the test reads the ACK lines)
    1  a reply python-hl7 could not parse or without an MSA segment
       ("NO_MSA" line, the script goes on), or FILE had no message
    2  bad command line (argparse)
    3  "HANDSHAKE_FAILED <REASON> [detail]": the TLS handshake failed after
       the ClientHello was sent: alert from the server, certificate
       verification failure (REASON CERTIFICATE_VERIFY_FAILED, detail e.g.
       "IP address mismatch..."), or connection dropped during the
       handshake (REASON is the exception name, e.g. ConnectionResetError,
       or UNEXPECTED_EOF_WHILE_READING / EOF). REASON is OpenSSL's reason
       code (SSLError.reason), e.g. TLSV1_ALERT_PROTOCOL_VERSION when the
       server refuses the offered version.
       With TLS 1.3 the server checks the CLIENT certificate only after the
       client has finished its side of the handshake, so a rejected client
       certificate (or a missing one when it is required) shows up as an
       alert on the first read, e.g. TLSV13_ALERT_CERTIFICATE_REQUIRED or
       TLSV1_ALERT_UNKNOWN_CA. Worse, if the client has already sent a
       message, the server closes a socket with unread data, the kernel
       sends a TCP RST, and the alert is often lost (ECONNRESET, which
       would read as CLOSED). So after a TLS 1.3 handshake the client
       first waits up to --alert-wait seconds (default 0.5; 0 disables)
       for the server to say something: an alert there is HANDSHAKE_FAILED
       (exit 3), EOF/reset there is CLOSED (exit 4), silence means
       accepted. This makes the outcome deterministic (checked 18/18 runs
       against tls_mllp_server.py) at the cost of 0.5 s per TLS 1.3 run.
       An SSL alert received on the first message is also reported as
       HANDSHAKE_FAILED.
    4  "CLOSED": the server closed (or reset) the connection without a reply
       to the current message. ACK lines of earlier messages are printed.
    5  "CLIENT_REFUSED_TLS10" (or ..._TLS11/_TLS12/_TLS13): the LOCAL OpenSSL
       would not even produce a ClientHello for the requested version, so
       nothing was sent and the server was never tested. Reason on stderr.
    6  "CONNECT_FAILED <error>": TCP connect failed (nothing listening...).
    7  "TIMEOUT": no reply within --timeout seconds (default 30).

--tls-version V offers ONLY that version (minimum_version = maximum_version).
For 1.0 and 1.1 the cipher string becomes "DEFAULT:@SECLEVEL=0":
OpenSSL 3 only allows TLS < 1.2 at security level 0 (they sign the
handshake with SHA-1/MD5), and at the default level it refuses locally with
NO_CIPHERS_AVAILABLE before sending anything. With OpenSSL 3.0.19 (this
machine, Python 3.11) and SECLEVEL=0, a TLS 1.0 ClientHello IS sent:
record version 0x0301, client_version 0x0301, no supported_versions
extension, so a TLS 1.2+ server must refuse it itself (an OpenSSL server
answers with a protocol_version alert: HANDSHAKE_FAILED
TLSV1_ALERT_PROTOCOL_VERSION). Another OpenSSL build (e.g. one compiled
with no-tls1) may refuse before sending; that is what exit 5 is for.
(Python's minimum/maximum_version and set_ciphers override the system
openssl.cnf's MinProtocol and CipherString, so the config does not.) To tell the two apart the
script first runs the handshake against memory BIOs (no network): if
OpenSSL does not produce a ClientHello there, it reports exit 5 without
connecting. Python warns that TLSVersion.TLSv1/TLSv1_1 are deprecated;
that DeprecationWarning is silenced here.
"""

import argparse
import socket
import ssl
import sys
import warnings

import hl7

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
BOM = b"\xef\xbb\xbf"
ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")
VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


class Closed(Exception):
    """The server closed the connection before a complete reply."""


def out(line):
    print(line, flush=True)


def note(text):
    print(f"tls_mllp_client: {text}", file=sys.stderr, flush=True)


def finish(line, status):
    out(line)
    sys.exit(status)


def read_messages(path):
    """FILE -> list of messages (bytes, CR-separated, CR-terminated)."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(BOM):
        data = data[len(BOM):]
    lines = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r")
    messages = []
    for line in lines:
        if not line.strip() or line.startswith(ENVELOPE):
            continue
        if line.startswith(b"MSH"):
            messages.append([])
        elif not messages:
            note(f"dropping line before the first MSH: {line[:30]!r}")
            continue
        messages[-1].append(line)
    return [b"".join(segment + CR for segment in message) for message in messages]


def make_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies cert + host name
    ctx.load_verify_locations(cafile=args.ca)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    if args.tls_version:
        version = VERSIONS[args.tls_version]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = version
            ctx.maximum_version = version
        if args.tls_version in ("1.0", "1.1"):
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def local_refusal(ctx, server_name):
    """None if OpenSSL produces a ClientHello with ctx, else its error."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    probe = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        probe.do_handshake()
    except ssl.SSLWantReadError:
        return None if outgoing.pending else "no ClientHello produced"
    except ssl.SSLError as exc:
        return f"{exc.reason}: {exc}"
    return "handshake completed without a peer?"


def describe(exc):
    """'REASON detail' for a handshake exception, on one line."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"CERTIFICATE_VERIFY_FAILED {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__} {text}".strip()


def wait_for_alert(conn, seconds):
    """TLS 1.3: give the server time to reject our certificate (see doc)."""
    conn.settimeout(seconds)
    try:
        data = conn.recv(65536)
    except TimeoutError:
        return b""  # nothing came: the server accepted us
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionError):
        data = b""
    except ssl.SSLError as exc:
        note(f"after the handshake: {exc!r}")
        finish(f"HANDSHAKE_FAILED {describe(exc)}", 3)
    if not data:
        note("the server closed the connection right after the handshake")
        finish("CLOSED", 4)
    return data  # the server spoke first; keep it for read_frame


def read_frame(conn, buffer):
    """(payload, rest of buffer); raises Closed at EOF before EB CR."""
    while True:
        start = buffer.find(SB)
        if start >= 0:
            end = buffer.find(EB + CR, start + 1)
            if end >= 0:
                return buffer[start + 1:end], buffer[end + 2:]
        try:
            chunk = conn.recv(65536)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionError):
            chunk = b""
        if not chunk:
            raise Closed()
        buffer += chunk


def msa_fields(reply):
    """(MSA-1, MSA-2) of a reply, via python-hl7; None if there is no MSA."""
    text = reply.decode("utf-8", errors="replace")
    try:
        message = hl7.parse(text.replace("\r\n", "\r").replace("\n", "\r"))
        msa = message.segment("MSA")
    except Exception:  # hl7.ParseException (no MSH first), KeyError (no MSA)
        return None
    fields = [str(msa(n)) if len(msa) > n else "" for n in (1, 2)]
    return tuple(fields)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--tls-version", choices=sorted(VERSIONS))
    parser.add_argument("--server-name")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--alert-wait", type=float, default=0.5)
    parser.add_argument("file")
    args = parser.parse_args()
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")

    messages = read_messages(args.file)
    if not messages:
        note(f"no message in {args.file}")
        sys.exit(1)
    server_name = args.server_name or args.host
    ctx = make_context(args)

    refusal = local_refusal(ctx, server_name)
    if refusal is not None:
        version = (args.tls_version or "").replace(".", "")
        note(f"local OpenSSL ({ssl.OPENSSL_VERSION}) sends no ClientHello: {refusal}")
        finish(f"CLIENT_REFUSED_TLS{version}", 5)

    try:
        raw = socket.create_connection((args.host, args.port), timeout=args.timeout)
    except OSError as exc:
        finish(f"CONNECT_FAILED {type(exc).__name__} {exc.strerror or exc}", 6)

    try:
        conn = ctx.wrap_socket(raw, server_hostname=server_name)
    except (ssl.SSLError, OSError) as exc:
        if isinstance(exc, TimeoutError):
            finish("TIMEOUT", 7)
        note(f"handshake: {exc!r}")
        finish(f"HANDSHAKE_FAILED {describe(exc)}", 3)
    note(f"connected: {conn.version()} {conn.cipher()[0]}")

    buffer = b""
    if conn.version() == "TLSv1.3" and args.alert_wait > 0:
        buffer = wait_for_alert(conn, args.alert_wait)
        conn.settimeout(args.timeout)
    status = 0
    for index, message in enumerate(messages):
        try:
            conn.sendall(SB + message + EB + CR)
            reply, buffer = read_frame(conn, buffer)
        except TimeoutError:
            finish("TIMEOUT", 7)
        except Closed:
            finish("CLOSED", 4)
        except (ConnectionError, ssl.SSLEOFError):
            finish("CLOSED", 4)
        except ssl.SSLError as exc:
            note(f"message {index + 1}: {exc!r}")
            if index == 0 and "ALERT" in (exc.reason or ""):
                finish(f"HANDSHAKE_FAILED {describe(exc)}", 3)
            raise
        fields = msa_fields(reply)
        if fields is None:
            note(f"reply without MSA: {reply[:80]!r}")
            out("NO_MSA")
            status = 1
            continue
        out(" ".join(("ACK",) + fields).rstrip())
    try:
        conn.close()
    except OSError:
        pass
    sys.exit(status)


if __name__ == "__main__":
    main()
