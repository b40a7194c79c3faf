"""A department's webhook receiver that verifies every request with the Standard Webhooks
reference library for Python (`standardwebhooks` from PyPI) — `v1` — and, for `v1a`, with
Ed25519 from `cryptography`, following the specification's verifying rules.

    python webhook_receiver.py --secret whsec_A [--secret whsec_B ...] [--public-key whpk_...]
                               [--tls-cert cert.pem --tls-key key.pem]

Paths (each verifies first, 401 when no signature matches):
  /v1/<i>       verify with the i-th secret only -> 204
  /v1a          verify the v1a signature with the public key -> 204
  /gone         -> 410           /throttle    -> 429, Retry-After: 7
  /unavailable  -> 503 with an HTTP-date Retry-After 120 s ahead
  /error        -> 500           /slow        -> 200 after 3 s
  /redirect     -> 302 to http://169.254.169.254/latest/meta-data/
Prints `READY <port>`, then `VERIFIED <json>` or `REJECTED <json>` per request.
"""
import argparse
import base64
import json
import ssl
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

args = None
lock = threading.Lock()


def emit(kind, obj):
    with lock:
        print(kind, json.dumps(obj), flush=True)


def verify_v1a(body, headers):
    raw = base64.b64decode(args.public_key[len("whpk_"):])
    key = Ed25519PublicKey.from_public_bytes(raw)
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(stamp)) > 300:
        raise WebhookVerificationError("timestamp outside tolerance")
    content = f"{msg_id}.{stamp}.".encode() + body
    for listed in headers["webhook-signature"].split(" "):
        version, sig = listed.split(",", 1)
        if version != "v1a":
            continue
        try:
            key.verify(base64.b64decode(sig), content)
            return
        except InvalidSignature:
            pass
    raise WebhookVerificationError("no v1a signature matches")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path
        report = {"path": path, "id": headers.get("webhook-id"), "signature": headers.get("webhook-signature")}
        try:
            if path == "/v1a":
                verify_v1a(body, headers)
            else:
                index = int(path.rsplit("/", 1)[1]) if path.startswith("/v1/") else 0
                Webhook(args.secret[index]).verify(body, headers)
        except (WebhookVerificationError, KeyError, ValueError) as e:
            emit("REJECTED", {**report, "why": str(e)})
            return self.answer(401)
        emit("VERIFIED", {**report, "body": json.loads(body)})
        if path == "/gone":
            return self.answer(410)
        if path == "/throttle":
            return self.answer(429, {"Retry-After": "7"})
        if path == "/unavailable":
            return self.answer(503, {"Retry-After": formatdate(time.time() + 120, usegmt=True)})
        if path == "/error":
            return self.answer(500)
        if path == "/redirect":
            return self.answer(302, {"Location": "http://169.254.169.254/latest/meta-data/"})
        if path == "/slow":
            time.sleep(3)
            return self.answer(200)
        return self.answer(204)

    def answer(self, status, headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


def main():
    global args
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret", action="append", required=True)
    parser.add_argument("--public-key")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    print("READY", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
