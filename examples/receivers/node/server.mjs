// Example webhook receiver for caddy-direct-upload: Node 20, node:http and
// the standardwebhooks package, nothing else.
//
// It verifies each POST /webhooks/uploads against the raw body with the
// secret in WEBHOOK_SECRET ("whsec_" + base64, HMAC "v1" signatures) or
// the public keys in WEBHOOK_PUBLIC_KEY ("whpk_" + base64 of 32 raw bytes,
// space-separated, Ed25519 "v1a" signatures checked with node:crypto), or
// both; it rejects missing headers,
// bad signatures and timestamps more than 5 minutes off, remembers the last
// 10,000 webhook ids so a retried event is processed only once, and prints
// one JSON line per new verified event to stdout:
//
//   {"webhook_id":"evt_…","type":"upload.completed","intent_id":"01m8…","status":"completed"}
//
// Usage:
//
//   npm ci --prefix examples/receivers/node
//   WEBHOOK_SECRET=whsec_… node examples/receivers/node/server.mjs --port 9102
//
// The port comes from --port, else from PORT, else 9102; it listens on
// 127.0.0.1 only. Port 0 picks a free port; the port actually used is
// logged to stderr as "listening on http://127.0.0.1:PORT".

import crypto from "node:crypto";
import http from "node:http";
import { Webhook } from "standardwebhooks";

const MAX_BODY = 64 * 1024; // bytes; the plugin's bodies are < 20 KB
const MAX_SEEN_IDS = 10000; // webhook ids remembered for deduplication
const HOST = "127.0.0.1";

function fail(message) {
  console.error("receiver: " + message);
  process.exit(2);
}

function portFromArgs() {
  const args = process.argv.slice(2);
  let port = process.env.PORT || "9102";
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--port" && i + 1 < args.length) port = args[++i];
    else if (args[i].startsWith("--port=")) port = args[i].slice("--port=".length);
    else fail("unknown argument " + JSON.stringify(args[i]) + " (usage: server.mjs [--port N])");
  }
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) fail("invalid port " + JSON.stringify(port));
  return Number(port);
}

const port = portFromArgs();
const TOLERANCE = 5 * 60; // seconds a timestamp may be off, either direction
// The DER header of an Ed25519 SubjectPublicKeyInfo; the raw key follows.
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");

const publicKeys = (process.env.WEBHOOK_PUBLIC_KEY || "").split(/\s+/).filter(Boolean).map((k) => {
  const raw = k.startsWith("whpk_") ? Buffer.from(k.slice(5), "base64") : null;
  if (!raw || raw.length !== 32 || raw.toString("base64") !== k.slice(5)) {
    fail("WEBHOOK_PUBLIC_KEY: each key must be whpk_ followed by base64 of 32 bytes");
  }
  return crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: "der", type: "spki" });
});
const secret = process.env.WEBHOOK_SECRET || "";
let wh = null;
if (secret !== "" || publicKeys.length === 0) {
  if (!secret.startsWith("whsec_") || secret === "whsec_") {
    fail("WEBHOOK_SECRET must be set to the endpoint's secret, whsec_ followed by base64 (or WEBHOOK_PUBLIC_KEY to whpk_…)");
  }
  try {
    wh = new Webhook(secret);
  } catch (err) {
    fail("WEBHOOK_SECRET: " + err.message);
  }
}

// verifyV1a checks the timestamp and looks for a v1a (Ed25519) signature of
// "{id}.{timestamp}.{body}" by one of the public keys; it returns the
// parsed body or throws.
function verifyV1a(raw, headers) {
  const ts = headers["webhook-timestamp"];
  if (!/^[0-9]{1,15}$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > TOLERANCE) {
    throw new Error("webhook-timestamp is missing or more than 5 minutes off");
  }
  const signed = Buffer.from(`${headers["webhook-id"]}.${ts}.${raw}`);
  for (const entry of headers["webhook-signature"].split(" ")) {
    const [version, sig] = entry.split(",", 2);
    if (version !== "v1a" || !sig) continue;
    const bytes = Buffer.from(sig, "base64");
    if (bytes.length !== 64) continue;
    if (publicKeys.some((k) => crypto.verify(null, signed, k, bytes))) return JSON.parse(raw);
  }
  throw new Error("no matching v1a signature");
}

// verify accepts a valid v1 signature by the secret or a valid v1a one by
// a public key; it returns the parsed body or throws.
function verify(raw, headers) {
  let err;
  if (wh) {
    try {
      // Checks the timestamp (±5 minutes) and compares every v1 signature
      // in constant time; returns the parsed JSON body.
      return wh.verify(raw, headers);
    } catch (e) {
      if (e instanceof SyntaxError) throw e;
      err = e;
    }
  }
  if (publicKeys.length > 0) return verifyV1a(raw, headers);
  throw err;
}

// seen holds the last MAX_SEEN_IDS verified webhook ids; a Set iterates in
// insertion order, so the first entry is the oldest.
const seen = new Set();
function remember(id) {
  if (seen.has(id)) return false;
  seen.add(id);
  if (seen.size > MAX_SEEN_IDS) seen.delete(seen.values().next().value);
  return true;
}

function sendJSON(res, status, obj, extraHeaders = {}) {
  const body = JSON.stringify(obj) + "\n";
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
    "Cache-Control": "no-store",
    ...extraHeaders,
  });
  res.end(body);
}

function sendError(res, status, code, message, extraHeaders) {
  sendJSON(res, status, { error: { code, message } }, extraHeaders);
}

// describe is the short text the plugin may show the uploading user.
function describe(p) {
  const d = p && typeof p.data === "object" && p.data !== null ? p.data : {};
  const name = d.filename || d.id || "the file";
  const who = d.identity || "anonymous";
  switch (p && p.type) {
    case "upload.completed":
      return `stored ${name} for ${who}`;
    case "upload.rejected":
    case "upload.failed":
      return `${p.type.slice("upload.".length)}: ${d.reason || "no reason given"}`;
    case "upload.expired":
      return `expired: ${name}`;
    default:
      return `received ${p && p.type}`;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function handleWebhook(req, res) {
  const declared = Number(req.headers["content-length"]);
  if (declared > MAX_BODY) {
    sendError(res, 413, "body_too_large", `the body must be at most ${MAX_BODY} bytes`, { Connection: "close" });
    req.resume(); // drain what arrives, without keeping it
    return;
  }
  const chunks = [];
  let size = 0;
  let tooLarge = false;
  req.on("data", (chunk) => {
    if (tooLarge) return;
    size += chunk.length;
    if (size > MAX_BODY) {
      tooLarge = true;
      chunks.length = 0;
      sendError(res, 413, "body_too_large", `the body must be at most ${MAX_BODY} bytes`, { Connection: "close" });
      return;
    }
    chunks.push(chunk);
  });
  req.on("error", () => {
    if (!res.headersSent) sendError(res, 400, "invalid_body", "the body could not be read");
  });
  req.on("end", () => {
    if (tooLarge) return;
    let raw;
    try {
      // The exact bytes, as a string: a body that is not UTF-8 could not
      // round-trip and is refused rather than verified on altered bytes.
      raw = utf8.decode(Buffer.concat(chunks));
    } catch {
      sendError(res, 400, "invalid_body", "the body is not UTF-8");
      return;
    }

    const id = req.headers["webhook-id"];
    if (!id || !req.headers["webhook-timestamp"] || !req.headers["webhook-signature"]) {
      sendError(res, 400, "missing_headers", "webhook-id, webhook-timestamp and webhook-signature are required");
      return;
    }

    let payload;
    try {
      payload = verify(raw, req.headers);
    } catch (err) {
      if (err instanceof SyntaxError) {
        sendError(res, 400, "invalid_json", "the body is not a JSON event");
      } else {
        console.error(`receiver: rejected webhook ${JSON.stringify(id)}: ${err.message}`);
        sendError(res, 401, "bad_signature", "the webhook signature could not be verified");
      }
      return;
    }
    if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
      sendError(res, 400, "invalid_json", "the body is not a JSON event");
      return;
    }

    // Only verified ids are remembered, so forged requests cannot make a
    // real event look like a duplicate.
    if (!remember(id)) {
      sendJSON(res, 200, { ok: true, duplicate: true, message: `already received ${id}` });
      return;
    }
    const data = typeof payload.data === "object" && payload.data !== null ? payload.data : {};
    process.stdout.write(
      JSON.stringify({
        webhook_id: id,
        type: payload.type ?? "",
        intent_id: data.id ?? "",
        status: data.status ?? "",
      }) + "\n",
    );
    sendJSON(res, 200, { ok: true, message: describe(payload) });
  });
}

const server = http.createServer((req, res) => {
  const path = new URL(req.url, "http://receiver").pathname;
  if (path === "/webhooks/uploads") {
    if (req.method !== "POST") {
      sendError(res, 405, "method_not_allowed", "use POST", { Allow: "POST" });
      req.resume();
      return;
    }
    handleWebhook(req, res);
    return;
  }
  if (path === "/healthz" && (req.method === "GET" || req.method === "HEAD")) {
    res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": 2 });
    res.end(req.method === "HEAD" ? undefined : "ok");
    return;
  }
  sendError(res, 404, "not_found", "no such route");
  req.resume();
});
server.headersTimeout = 5000;
server.requestTimeout = 15000;

server.on("error", (err) => fail(err.message));
server.listen(port, HOST, () => {
  console.error(`receiver: listening on http://${HOST}:${server.address().port}`);
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 3000).unref();
  });
}
