"""A department's webhook receiver for the notification tests. Every request is verified with
the Standard Webhooks reference library for Python (`standardwebhooks` from PyPI) against each
secret in a file the test writes (one `whsec_…` per line, read per request, so a rotation is
seen at once), and reported with the secrets that accept it.

    python webhook_receiver.py SECRETS_FILE

Paths: /ok -> 204; /gone -> 410; /error -> 500; /throttle -> 429 with Retry-After: 1 the first
time a webhook-id is seen, then 204; /slow -> 204 after 3 s. A request no secret verifies -> 401.
Prints `READY <port>`, then `REQUEST <json>` per request: path, id, timestamp, the indices of
the secrets that verified it, the parsed body.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

lock = threading.Lock()
seen = set()


def secrets():
    with open(sys.argv[1]) as f:
        return [line.strip() for line in f if line.strip()]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified_by = []
        for i, secret in enumerate(secrets()):
            try:
                Webhook(secret).verify(body, headers)
                verified_by.append(i)
            except WebhookVerificationError:
                pass
        msg_id = headers.get("webhook-id")
        report = {"path": self.path, "id": msg_id, "timestamp": int(headers.get("webhook-timestamp", "0")),
                  "verified_by": verified_by, "body": json.loads(body)}
        with lock:
            print("REQUEST", json.dumps(report, ensure_ascii=False), flush=True)
            first = msg_id not in seen
            seen.add(msg_id)
        if not verified_by:
            return self.answer(401)
        if self.path == "/gone":
            return self.answer(410)
        if self.path == "/error":
            return self.answer(500)
        if self.path == "/throttle" and first:
            return self.answer(429, {"Retry-After": "1"})
        if self.path == "/slow":
            time.sleep(3)
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
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("READY", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
