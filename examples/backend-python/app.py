#!/usr/bin/env python3
"""A tiny backend behind caddy-direct-upload, Python 3 standard library only.

It does the two things README's "Put it in front of your backend" asks of a
backend, and nothing else:

    GET  /auth/upload       Caddy's forward_auth asks who the user is. The
                            client's own headers come along (here: a Bearer
                            token). 200 with X-User-Id: the upload may go on
                            as that user; anything else (401 here) is sent
                            back to the client as is.
    POST /webhooks/uploads  the signed events (Standard Webhooks), verified
                            with hmac/hashlib; 2xx means delivered. The JSON
                            answer reaches the browser as complete's "backend".
    GET  /events            what it saw: {"auth": [...], "webhooks": [...]}
    GET  /healthz           "ok"

Usage:

    WEBHOOK_SECRET=whsec_... TOKENS=secret-token-of-alice:alice \\
        python3 examples/backend-python/app.py --port 9000

TOKENS maps Bearer tokens to user names (token:user, comma-separated); a
real backend asks its session store instead. It listens on 127.0.0.1.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024
TOLERANCE = 5 * 60  # seconds a webhook-timestamp may be off

LOCK = threading.Lock()
AUTH_LOG = []  # {"user", "method", "uri", "allowed"}
WEBHOOKS = []  # verified events: {"webhook_id", "type", "data"}
SEEN = set()  # webhook ids already handled (retries carry the same id)


def webhook_key(secret):
    if not secret.startswith("whsec_"):
        raise ValueError("WEBHOOK_SECRET must be whsec_ followed by base64 (caddy direct-upload secret makes one)")
    return base64.b64decode(secret[len("whsec_"):], validate=True)


def signature_ok(key, headers, body):
    """Standard Webhooks: HMAC-SHA256 over "{id}.{timestamp}.{body}"."""
    msg_id = headers.get("webhook-id") or ""
    ts = headers.get("webhook-timestamp") or ""
    if not msg_id or not ts.isdigit() or abs(time.time() - int(ts)) > TOLERANCE:
        return False
    signed = msg_id.encode("latin-1") + b"." + ts.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    return any(
        hmac.compare_digest(sig.partition(",")[2].encode("latin-1"), expected)
        for sig in (headers.get("webhook-signature") or "").split(" ")
        if sig.startswith("v1,")
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    tokens = {}
    key = b""

    def log_message(self, fmt, *args):
        sys.stderr.write("backend-python: %s\n" % (fmt % args))

    def reply(self, status, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/auth/upload":
            return self.auth_upload()
        if path == "/events":
            with LOCK:
                return self.reply(200, {"auth": list(AUTH_LOG), "webhooks": list(WEBHOOKS)})
        if path == "/healthz":
            return self.reply(200, "ok")
        self.reply(404, {"error": {"code": "not_found", "message": "no such route"}})

    def auth_upload(self):
        # The identity comes from the backend's own credentials only; an
        # X-User-Id sent by the client is never read (Caddy removes it too).
        auth = self.headers.get("Authorization") or ""
        user = self.tokens.get(auth[len("Bearer "):]) if auth.startswith("Bearer ") else None
        with LOCK:
            AUTH_LOG.append({"user": user, "method": self.headers.get("X-Forwarded-Method"),
                             "uri": self.headers.get("X-Forwarded-Uri"), "allowed": user is not None})
        if user is None:
            return self.reply(401, {"error": {"code": "unauthenticated", "message": "log in first"}})
        self.reply(200, {}, headers=[("X-User-Id", user)])

    def do_POST(self):
        if self.path.split("?", 1)[0] != "/webhooks/uploads":
            self.close_connection = True
            return self.reply(404, {"error": {"code": "not_found", "message": "no such route"}})
        length = int(self.headers.get("Content-Length") or "0")
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            return self.reply(413, {"error": {"code": "body_too_large", "message": "body too large"}})
        body = self.rfile.read(length)
        headers = {h: self.headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")}
        if not signature_ok(self.key, headers, body):
            return self.reply(401, {"error": {"code": "bad_signature", "message": "webhook not verified"}})
        event = json.loads(body)
        with LOCK:
            if headers["webhook-id"] in SEEN:  # a retry of an event already handled
                return self.reply(200, {"ok": True, "duplicate": True})
            SEEN.add(headers["webhook-id"])
            WEBHOOKS.append({"webhook_id": headers["webhook-id"], "type": event.get("type"),
                             "data": event.get("data")})
        self.reply(200, {"ok": True, "message": "python saw %s" % event.get("type")})


def main():
    parser = argparse.ArgumentParser(description="tiny backend for caddy-direct-upload")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 9000))
    args = parser.parse_args()
    try:
        Handler.key = webhook_key(os.environ.get("WEBHOOK_SECRET") or "")
    except ValueError as err:
        sys.stderr.write("backend-python: %s\n" % err)
        return 2
    for pair in (os.environ.get("TOKENS") or "").split(","):
        token, _, user = pair.partition(":")
        if token and user:
            Handler.tokens[token] = user
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    sys.stderr.write("backend-python: listening on http://127.0.0.1:%d\n" % server.server_address[1])
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
