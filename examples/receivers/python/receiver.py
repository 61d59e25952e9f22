#!/usr/bin/env python3
"""Example webhook receiver for caddy-direct-upload, standard library only.

It verifies each POST /webhooks/uploads by hand, as Standard Webhooks
specifies: the secret in WEBHOOK_SECRET is "whsec_" + base64 of the key; the
signed content is "{webhook-id}.{webhook-timestamp}.{raw body}"; its
HMAC-SHA256, base64-encoded, must equal one of the "v1,<signature>" entries
of the space-separated webhook-signature header (compared in constant
time); the timestamp must be within 5 minutes of now.

Ed25519 ("v1a") signatures are verified too when WEBHOOK_PUBLIC_KEY holds
one or more space-separated "whpk_" + base64 public keys (32 raw bytes);
that needs the `cryptography` package (pip install cryptography), the one
dependency beyond the standard library, imported only then. Either variable
may be set alone; with both, a delivery passes with a valid signature of
either kind.

It rejects missing headers (400), bad signatures and stale or future
timestamps (401), remembers the last 10,000 webhook ids so a retried event
is processed only once, and prints one JSON line per new verified event to
stdout:

    {"webhook_id": "evt_...", "type": "upload.completed", "intent_id": "01m8...", "status": "completed"}

Usage:

    WEBHOOK_SECRET=whsec_... python3 examples/receivers/python/receiver.py --port 9103

The port comes from --port, else from PORT, else 9103; it listens on
127.0.0.1 only. Port 0 picks a free port; the port actually used is logged
to stderr as "listening on http://127.0.0.1:PORT".
"""

import argparse
import base64
import binascii
import collections
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024  # bytes; the plugin's bodies are < 20 KB
MAX_SEEN_IDS = 10000  # webhook ids remembered for deduplication
TOLERANCE = 5 * 60  # seconds a timestamp may be off, either direction
SECRET_PREFIX = "whsec_"
PUBLIC_KEY_PREFIX = "whpk_"
TIMESTAMP_RE = re.compile(r"[0-9]{1,15}")


class VerificationError(Exception):
    """A request that must be refused: status, error code, message."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def parse_secret(secret):
    """Returns the raw key bytes of a "whsec_" + base64 secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("must start with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64 after whsec_") from None
    if not key:
        raise ValueError("the key after whsec_ is empty")
    return key


def parse_public_keys(value):
    """Returns Ed25519 public keys from space-separated "whpk_" + base64."""
    keys = []
    for entry in value.split():
        if not entry.startswith(PUBLIC_KEY_PREFIX):
            raise ValueError("each key must start with whpk_")
        try:
            raw = base64.b64decode(entry[len(PUBLIC_KEY_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not valid base64 after whpk_") from None
        if len(raw) != 32:
            raise ValueError("each key must be 32 bytes after whpk_")
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        keys.append(Ed25519PublicKey.from_public_bytes(raw))
    return keys


def verify_v1a(public_keys, signed, signatures):
    """Reports whether one "v1a,<signature>" entry is an Ed25519 signature
    of signed by one of the public keys."""
    from cryptography.exceptions import InvalidSignature

    for entry in signatures.split(" "):
        version, _, signature = entry.partition(",")
        if version != "v1a":
            continue
        try:
            sig = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            continue
        for key in public_keys:
            try:
                key.verify(sig, signed)
                return True
            except InvalidSignature:
                pass
    return False


def sign(key, msg_id, timestamp, body):
    """The base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}"."""
    to_sign = msg_id.encode("latin-1") + b"." + timestamp.encode("ascii") + b"." + body
    return base64.b64encode(hmac.new(key, to_sign, hashlib.sha256).digest())


def verify(key, headers, body, now=None, public_keys=()):
    """Checks a delivery's headers against its raw body, with the HMAC key
    (None for none) and the Ed25519 public keys.

    headers maps the lower-case names webhook-id, webhook-timestamp and
    webhook-signature to their values. Raises VerificationError.
    """
    msg_id = headers.get("webhook-id") or ""
    timestamp = headers.get("webhook-timestamp") or ""
    signatures = headers.get("webhook-signature") or ""
    if not msg_id or not timestamp or not signatures:
        raise VerificationError(
            400, "missing_headers", "webhook-id, webhook-timestamp and webhook-signature are required"
        )
    if not TIMESTAMP_RE.fullmatch(timestamp):
        raise VerificationError(400, "invalid_headers", "webhook-timestamp must be Unix seconds")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > TOLERANCE:
        raise VerificationError(401, "bad_timestamp", "webhook-timestamp is more than 5 minutes off")

    if key is not None:
        expected = sign(key, msg_id, timestamp, body)
        for entry in signatures.split(" "):
            version, _, signature = entry.partition(",")
            if version != "v1":
                continue
            # http.server decodes headers as latin-1, so this gives back the bytes sent.
            if hmac.compare_digest(signature.encode("latin-1"), expected):
                return
    if public_keys:
        signed = msg_id.encode("latin-1") + b"." + timestamp.encode("ascii") + b"." + body
        if verify_v1a(public_keys, signed, signatures):
            return
    raise VerificationError(401, "bad_signature", "the webhook signature could not be verified")


class SeenIDs:
    """The last `limit` webhook ids, safe to use from several threads."""

    def __init__(self, limit):
        self._limit = limit
        self._ids = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, msg_id):
        """Records msg_id; returns whether it was new."""
        with self._lock:
            if msg_id in self._ids:
                return False
            self._ids[msg_id] = None
            if len(self._ids) > self._limit:
                self._ids.popitem(last=False)
            return True


def describe(payload):
    """The short text the plugin may show the uploading user."""
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    name = data.get("filename") or data.get("id") or "the file"
    who = data.get("identity") or "anonymous"
    kind = payload.get("type")
    if kind == "upload.completed":
        return "stored %s for %s" % (name, who)
    if kind in ("upload.rejected", "upload.failed"):
        return "%s: %s" % (kind[len("upload."):], data.get("reason") or "no reason given")
    if kind == "upload.expired":
        return "expired: %s" % name
    return "received %s" % kind


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server_version = "receiver"
    sys_version = ""
    timeout = 15  # seconds a connection may stay silent

    key = b""
    seen = None
    out_lock = threading.Lock()

    def log_message(self, fmt, *args):
        sys.stderr.write("receiver: %s %s\n" % (self.address_string(), fmt % args))

    def send_json(self, status, obj, close=False):
        body = (json.dumps(obj) + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if close:
            # The request body was not read: it must not be taken for the
            # next request on this connection.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def send_error_json(self, status, code, message, close=False):
        self.send_json(status, {"error": {"code": code, "message": message}}, close=close)

    def path_only(self):
        return self.path.split("?", 1)[0]

    def do_GET(self):
        if self.path_only() == "/healthz":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            return
        if self.path_only() == "/webhooks/uploads":
            self.send_response(405)
            self.send_header("Allow", "POST")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_error_json(404, "not_found", "no such route")

    def do_POST(self):
        if self.path_only() != "/webhooks/uploads":
            self.send_error_json(404, "not_found", "no such route", close=True)
            return
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.send_error_json(411, "length_required", "send the body with a Content-Length", close=True)
            return
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            self.send_error_json(400, "invalid_body", "bad Content-Length", close=True)
            return
        if length < 0:
            self.send_error_json(400, "invalid_body", "bad Content-Length", close=True)
            return
        if length > MAX_BODY:
            self.send_error_json(413, "body_too_large", "the body must be at most %d bytes" % MAX_BODY, close=True)
            return
        body = self.rfile.read(length)
        if len(body) != length:
            self.send_error_json(400, "invalid_body", "the body ended early", close=True)
            return

        headers = {
            name: self.headers.get(name)
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
        }
        try:
            verify(self.key, headers, body, public_keys=self.public_keys)
        except VerificationError as err:
            if err.status == 401:
                sys.stderr.write("receiver: rejected webhook %r: %s\n" % (headers["webhook-id"], err.message))
            self.send_error_json(err.status, err.code, err.message)
            return

        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self.send_error_json(400, "invalid_json", "the body is not a JSON event")
            return

        msg_id = headers["webhook-id"]
        # Only verified ids are remembered, so forged requests cannot make
        # a real event look like a duplicate.
        if not self.seen.add(msg_id):
            self.send_json(200, {"ok": True, "duplicate": True, "message": "already received %s" % msg_id})
            return

        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        line = json.dumps(
            {
                "webhook_id": msg_id,
                "type": payload.get("type", ""),
                "intent_id": data.get("id", ""),
                "status": data.get("status", ""),
            }
        )
        with self.out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        self.send_json(200, {"ok": True, "message": describe(payload)})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client closing an idle keep-alive connection is no error.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(description="Standard Webhooks receiver for caddy-direct-upload")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 9103),
                        help="port to listen on at 127.0.0.1 (env PORT; 0 picks a free one)")
    args = parser.parse_args()

    try:
        public_keys = parse_public_keys(os.environ.get("WEBHOOK_PUBLIC_KEY") or "")
    except ValueError as err:
        sys.stderr.write("receiver: WEBHOOK_PUBLIC_KEY: %s\n" % err)
        return 2
    except ImportError:
        sys.stderr.write("receiver: WEBHOOK_PUBLIC_KEY needs the cryptography package (pip install cryptography)\n")
        return 2
    key = None
    secret = os.environ.get("WEBHOOK_SECRET") or ""
    if secret or not public_keys:
        try:
            key = parse_secret(secret)
        except ValueError as err:
            sys.stderr.write("receiver: WEBHOOK_SECRET %s (set it to the endpoint's secret, whsec_ followed by base64)\n" % err)
            return 2

    Handler.key = key
    Handler.public_keys = public_keys
    Handler.seen = SeenIDs(MAX_SEEN_IDS)
    server = Server((HOST, args.port), Handler)

    def stop(signum, frame):
        # shutdown() waits for serve_forever, which runs in this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    sys.stderr.write("receiver: listening on http://%s:%d\n" % (HOST, server.server_address[1]))
    sys.stderr.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
