#!/usr/bin/env python3
"""An independent HTTP(S) server for the HTTP sender tests (Python standard library only).

Prints "PORT <n>" once listening, then serves until killed:

  POST/PUT /echo...        200, JSON: method, path, headers (lower-case names), body (text),
                           client certificate subject (under mutual TLS)
  any      /status/<code>  <code>, text body "peer answered <code>"
  any      /slow?s=<secs>  waits, then 200 "late"

Options: --cert/--key for HTTPS; --client-ca to require a client certificate signed by it.
"""

import argparse
import http.server
import json
import ssl
import sys
import time
import urllib.parse


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.answer()

    def do_PUT(self):
        self.answer()

    def do_GET(self):
        self.answer()

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/status/"):
            code = int(url.path.split("/")[2])
            self.reply(code, "text/plain", f"peer answered {code}".encode())
        elif url.path == "/slow":
            seconds = float(urllib.parse.parse_qs(url.query).get("s", ["5"])[0])
            time.sleep(seconds)
            self.reply(200, "text/plain", b"late")
        else:
            subject = None
            getpeercert = getattr(self.connection, "getpeercert", None)
            if getpeercert is not None and getpeercert():
                subject = [list(rdn[0]) for rdn in getpeercert().get("subject", ())]
            record = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
                "client_subject": subject,
            }
            self.reply(200, "application/json", json.dumps(record).encode())

    def reply(self, code, content_type, payload):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--client-ca")
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        if args.client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(args.client_ca)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
