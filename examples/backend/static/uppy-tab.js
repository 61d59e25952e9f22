// The "Uppy" tab of the demo page: the same direct uploads through Uppy's
// Dashboard and its S3 uploader (@uppy/aws-s3), with no upload code of our
// own. The uploader's companionEndpoint is the /files profile of the
// sidecar, which serves Uppy Companion's S3 routes under /files/s3/:
//
//   small files  GET  /files/s3/params          a presigned POST form; Uppy
//                                               posts the file to the bucket
//   big files    POST /files/s3/multipart       then one presigned PUT per
//                GET  /files/s3/multipart/{id}/{n}   5 MiB part, and
//                POST /files/s3/multipart/{id}/complete
//
// The multipart complete route assembles and verifies the object before it
// answers, so Uppy's success is final. A simple upload only reached the
// bucket: the page then calls POST /files/{id}/complete itself (the fast
// path; the sidecar's sweeper would verify it later anyway) and shows that
// verdict. The intent id is the object key's basename without extension.
//
// Before uploading, a pre-processor (addChecksumPreProcessor, from the
// bundle) computes each file's SHA-256 incrementally ("Hashing…" in the
// Dashboard) and puts it in file.meta.checksum_sha256; @uppy/aws-s3 sends it
// as metadata[checksum_sha256] and the sidecar binds it into the grant: the
// bucket refuses other bytes, and complete compares the stored SHA-256.
//
// Requests go to this page's origin with the default credentials
// (same-origin), so the session cookie reaches Caddy's forward_auth.
//
// Each finished file gets a row in #uppy-results: li[data-name] whose text
// has "completed" and the key, or "error: <message>".
import { Uppy, Dashboard, AwsS3, addChecksumPreProcessor } from "/static/uppy/uppy.min.js";

const ENDPOINT = "/files";
const MULTIPART_OVER = 10 * 1024 * 1024; // bytes; above this, S3 multipart
const COMPLETE_RETRIES = 5; // retries of /complete while the object is not visible yet

const results = document.getElementById("uppy-results");

const uppy = new Uppy({
  id: "files",
  autoProceed: false,
  // No restrictions: the server enforces types and sizes and says why.
  meta: { source: "demo page (Uppy)" },
});

uppy.use(Dashboard, {
  inline: true,
  target: "#uppy",
  width: "100%",
  height: 340,
  showProgressDetails: true,
  proudlyDisplayPoweredByUppy: false,
  note: "PDF, ZIP, MP4, JPEG, PNG, text or other binary files, up to 1 GiB",
});

const shouldUseMultipart = (file) => file.size > MULTIPART_OVER;

// file.meta.checksum_sha256: the file's SHA-256 (base64), bound into the grant.
addChecksumPreProcessor(uppy);

uppy.use(AwsS3, {
  companionEndpoint: ENDPOINT,
  shouldUseMultipart,
  // Only our own metadata, not Uppy's (name and type are sent anyway);
  // checksum_sha256 becomes the upload's declared checksum, not metadata.
  allowedMetaFields: ["source", "checksum_sha256"],
});

// Parts uploaded per file id: shows that a file really went up in parts.
const partsOf = new Map();
uppy.on("s3-multipart:part-uploaded", (file) => {
  partsOf.set(file.id, (partsOf.get(file.id) || 0) + 1);
});

// Server-side verification of each file, by file id: started as soon as the
// file's upload succeeds, awaited by the post-processor so Uppy's "complete"
// event counts rejected files as failed.
const verifying = new Map();

uppy.on("upload-success", (file, response) => {
  if (!file) return;
  // @uppy/aws-s3 answers {status, body: {location, key}, uploadURL: location}
  // for both kinds of upload.
  const key = (response && response.body && response.body.key) || keyFromURL(response && response.uploadURL);
  const parts = partsOf.get(file.id) || 0;
  partsOf.delete(file.id);
  if (parts > 0 || shouldUseMultipart(file)) {
    // Multipart: /files/s3/multipart/{id}/complete verified the object.
    // The route compared the stored SHA-256 with the declared one.
    const detail = [formatSize(file.size), file.type, `multipart, ${parts} part${parts === 1 ? "" : "s"}`];
    const sum = (response && response.body && response.body.checksum_sha256) || uppy.getFile(file.id)?.meta.checksum_sha256;
    if (sum) detail.push("SHA-256 " + sum);
    showResult(file, { state: "completed", text: "completed", key, detail: detail.join(" · "), multipart: true, parts });
    uppy.emit("postprocess-complete", uppy.getFile(file.id));
    return;
  }
  verifying.set(file.id, verifySimple(file, key));
});

// The id of the file whose verdict markFailed is passing on to Uppy.
let ownError = null;

uppy.on("upload-error", (file, error) => {
  if (!file || file.id === ownError) return;
  const parts = partsOf.get(file.id) || 0;
  partsOf.delete(file.id);
  reportUploadError(file, error, parts);
});

// The post-processing step: wait for the verifications started above.
uppy.addPostProcessor(async (fileIDs) => {
  await Promise.all(fileIDs.map((id) => verifying.get(id)).filter(Boolean));
  for (const id of fileIDs) verifying.delete(id);
});

/** Calls POST /files/{id}/complete for a simple upload and shows the verdict. */
async function verifySimple(file, key) {
  uppy.emit("postprocess-progress", uppy.getFile(file.id), { mode: "indeterminate", message: "Verifying…" });
  const id = intentID(key);
  let res, data;
  try {
    if (!id) throw new Error(`cannot tell the upload id from the key ${JSON.stringify(key)}`);
    for (let attempt = 0; ; attempt++) {
      ({ res, data } = await api("POST", `${ENDPOINT}/${encodeURIComponent(id)}/complete`));
      const code = errorCode(data);
      if (res.status === 409 && (code === "object_missing" || code === "busy") && attempt < COMPLETE_RETRIES) {
        await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
        continue;
      }
      break;
    }
  } catch (err) {
    markFailed(file, key, "error: " + errMessage(err), "");
    return;
  }

  if (res.status === 200 && data && data.status === "completed") {
    const bits = [formatSize(data.size), data.content_type, "simple upload"];
    if (data.etag) bits.push("ETag " + data.etag);
    if (data.checksum_sha256) bits.push("SHA-256 " + data.checksum_sha256);
    showResult(file, {
      state: "completed",
      text: "completed",
      key: data.key || key,
      detail: bits.filter(Boolean).join(" · "),
      backend: backendMessage(data),
      multipart: false,
    });
    uppy.emit("postprocess-complete", uppy.getFile(file.id));
    return;
  }
  // Rejected (422 upload_rejected: the object was deleted), expired, ...
  const e = (data && data.error) || {};
  let message = e.message || `the server answered ${res.status}`;
  const reason = e.reason || (data && data.reason);
  if (reason && !message.includes(reason)) message += ` (${reason})`;
  markFailed(file, (data && data.key) || key, "error: " + message, backendMessage(data), data && data.status);
}

/**
 * Shows a verdict that came after Uppy's success as an error in the
 * Dashboard too (Uppy keeps the file, with a retry button).
 */
function markFailed(file, key, text, backend, status) {
  showResult(file, { state: status === "rejected" ? "rejected" : "error", text, key, backend, multipart: false });
  const current = uppy.getFile(file.id);
  if (!current) return;
  uppy.emit("postprocess-complete", current);
  ownError = current.id;
  try {
    uppy.emit("upload-error", current, new Error(text.replace(/^error: /, "")));
  } finally {
    ownError = null;
  }
}

/**
 * An upload Uppy itself reports as failed. When it was multipart, the
 * upload id is the intent's: its status tells why (for example rejected by
 * the verification in /files/s3/multipart/{id}/complete); @uppy/aws-s3 only
 * keeps the HTTP status text of an error answer.
 */
async function reportUploadError(file, error, parts) {
  let message = errMessage(error);
  const mp = uppy.getFile(file.id)?.s3Multipart || file.s3Multipart;
  let key = mp && mp.key;
  let status;
  if (mp && mp.uploadId) {
    try {
      const { res, data } = await api("GET", `${ENDPOINT}/${encodeURIComponent(mp.uploadId)}`);
      if (res.ok && data && typeof data.status === "string") {
        status = data.status;
        key = data.key || key;
        message = data.status + (data.reason ? ` (${data.reason})` : "") + (data.detail ? `: ${data.detail}` : "");
        // The Dashboard shows the file's error: make it this one too.
        if (uppy.getFile(file.id)) uppy.setFileState(file.id, { error: message });
      }
    } catch {
      // keep Uppy's message
    }
  }
  showResult(file, { state: status === "rejected" ? "rejected" : "error", text: "error: " + message, key, multipart: Boolean(mp), parts });
}

// ---- the results list -------------------------------------------------------

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** One row per file name (a new upload of the same name replaces it). */
function showResult(file, { state, text, key, detail, backend, multipart, parts }) {
  for (const old of results.querySelectorAll("li")) {
    if (old.dataset.name === file.name) old.remove();
  }
  const li = el("li", "uppy-result state-" + state);
  li.dataset.name = file.name;
  li.dataset.state = state;
  if (key) li.dataset.key = key;
  li.dataset.multipart = String(Boolean(multipart));
  if (parts) li.dataset.parts = String(parts);

  const head = el("div", "head");
  head.append(el("span", "name", file.name), el("span", "size", formatSize(file.size)));
  const foot = el("div", "foot");
  foot.append(el("span", "status", text));
  if (key) foot.append(el("code", "key", key));
  li.append(head, foot);
  if (detail) li.append(el("div", "detail", detail));
  if (backend) li.append(el("div", "detail backend-message", "Backend: " + backend));
  results.prepend(li);
}

// ---- helpers ----------------------------------------------------------------

/** One JSON request to the sidecar, with the session cookie. */
async function api(method, url) {
  const res = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
  });
  let data = null;
  try {
    const text = await res.text();
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null; // not JSON: a proxy's error page, say
  }
  return { res, data };
}

function errorCode(data) {
  const e = data && typeof data === "object" ? data.error : null;
  return e && typeof e.code === "string" ? e.code : "";
}

/** The intent id in a key such as files/2026/11/28/{id}.png. */
function intentID(key) {
  if (typeof key !== "string") return "";
  const base = key.slice(key.lastIndexOf("/") + 1);
  const dot = base.indexOf(".");
  return dot > 0 ? base.slice(0, dot) : base;
}

/** The object key of an S3 location URL (path style: /bucket/key). */
function keyFromURL(u) {
  try {
    const path = decodeURIComponent(new URL(u, location.href).pathname);
    return path.split("/").slice(2).join("/");
  } catch {
    return "";
  }
}

/** The backend's answer to the webhook, when the sidecar passed it on. */
function backendMessage(data) {
  const b = data && data.backend;
  const msg = b && typeof b.message === "string" ? b.message.trim() : "";
  return msg.length > 300 ? msg.slice(0, 299) + "…" : msg;
}

function errMessage(err) {
  return String(err && err.message ? err.message : err);
}

function formatSize(n) {
  if (typeof n !== "number" || !isFinite(n)) return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

// For tests and the curious: the Uppy instance.
window.uppy = uppy;
