#!/usr/bin/env python3
"""An independent HTTP(S) client for the HTTP listener tests (Python standard library only).

Reads a JSON list of requests on stdin, each {"method", "path", "headers": {..}, "body": text},
sends them one connection each to --host/--port, and prints a JSON list of results:
{"status", "headers" (lower-case names), "body" (text)} or {"error": "..."} when the exchange
failed (a refused TLS handshake, say).

Options: --ca to use HTTPS trusting that CA; --cert/--key to present a client certificate.
"""

import argparse
import http.client
import json
import ssl
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    requests = json.load(sys.stdin)
    results = []
    for request in requests:
        if args.ca:
            context = ssl.create_default_context(cafile=args.ca)
            if args.cert:
                context.load_cert_chain(args.cert, args.key)
            connection = http.client.HTTPSConnection(
                args.host, args.port, context=context, timeout=10
            )
        else:
            connection = http.client.HTTPConnection(args.host, args.port, timeout=10)
        try:
            body = request.get("body")
            connection.request(
                request.get("method", "POST"),
                request.get("path", "/"),
                body=body.encode() if body is not None else None,
                headers=request.get("headers", {}),
            )
            response = connection.getresponse()
            results.append(
                {
                    "status": response.status,
                    "headers": {k.lower(): v for k, v in response.getheaders()},
                    "body": response.read().decode("utf-8", "replace"),
                }
            )
        except (OSError, http.client.HTTPException) as e:
            results.append({"error": f"{type(e).__name__}: {e}"})
        finally:
            connection.close()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
