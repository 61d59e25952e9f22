// direct-upload.js: the browser client of Caddy's direct_upload API.
// An ES module without dependencies; Caddy serves it at
// {base_path}/direct-upload.js (types: {base_path}/direct-upload.d.ts).
//
//   import { upload, DirectUploadError } from "/uploads/direct-upload.js";
//   try {
//     const done = await upload(file, {
//       endpoint: "/uploads",          // the API's base path (default)
//       metadata: { album: "x" },      // optional JSON object, kept with the upload
//       onProgress: ({ loaded, total, percent }) => bar.value = percent,
//       signal: controller.signal,     // abort: stop, report "aborted" to the server
//     });
//     // done: the answer of complete, {id, status: "completed", key, size,
//     // content_type, etag, backend?, ...}
//   } catch (err) {
//     // err: DirectUploadError; err.code is the server's stable code
//     // (type_not_allowed, too_large, upload_rejected, unauthenticated, ...)
//     // or network_error, s3_rejected, aborted, http_error, bad_response.
//   }
//
// Files up to multipartThreshold (100 MiB) go as one presigned form POST
// (1. POST {endpoint}, 2. the form to the bucket, 3. POST {endpoint}/{id}/complete);
// larger ones through the multipart API ({endpoint}/multipart, presigned
// part PUTs, complete with the parts' ETags). When the transfer to the
// bucket fails or is aborted, {endpoint}/{id}/fail is called before the
// promise rejects, so the server removes whatever arrived.
//
// Resuming after a page reload: a multipart upload keeps its intent id,
// part layout, expiry and the parts done in localStorage (keyed by the
// endpoint and the file's name, size and lastModified) until it settles.
// When the same file is uploaded again while that intent is pending and
// unexpired, the resume option decides: resume: (info) => boolean (or a
// promise of one; ask the user here), or true to always resume. Resuming
// lists the parts already in the bucket ({endpoint}/{id}/parts), uploads
// only the missing ones and completes; an expired or finalized intent
// starts over. pendingUploads() lists what could be resumed, e.g. to tell
// the user after a reload to choose the same file again.
//
// API requests go with credentials: "same-origin"; the bucket gets no
// credentials. The bucket needs CORS for the page's origin (POST, PUT,
// exposing ETag for multipart).

const DEFAULT_ENDPOINT = "/uploads";
const DEFAULT_COMPLETE_RETRIES = 5;
const DEFAULT_MULTIPART_THRESHOLD = 100 * 1024 * 1024;
const COMPLETE_BACKOFF_MS = 200; // doubled after each retry
const PART_CONCURRENCY = 4;
const PART_RETRIES = 3;
const PART_BACKOFF_MS = 500; // doubled after each retry
const PART_URL_BATCH = 100; // the server's limit of part numbers per call
const URL_MARGIN_MS = 30_000; // refresh part URLs this long before they expire
const REASON_MAX = 256;
const RESUME_PREFIX = "direct-upload:resume:v1:";

/** @typedef {import("./direct-upload.js").UploadOptions} UploadOptions (direct-upload.d.ts) */
/** @typedef {import("./direct-upload.js").UploadResult} UploadResult (direct-upload.d.ts) */

/** Internal mark of an error that retrying a part cannot fix. */
const FINAL = Symbol("final");

/**
 * The one error type upload() rejects with.
 *
 * `code` is the server's stable error code (see the README's error table)
 * or one of the client's: `network_error` (a request did not get an
 * answer), `s3_rejected` (the bucket answered non-2xx), `aborted` (the
 * signal fired), `http_error` (an error answer without the API's JSON
 * body, e.g. a proxy's error page), `bad_response` (a success answer that
 * is not what the API sends).
 */
export class DirectUploadError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{status?: number, reason?: string, intent?: object|null, id?: string, stage?: string, cause?: unknown}} [info]
   */
  constructor(code, message, info = {}) {
    super(message, info.cause === undefined ? undefined : { cause: info.cause });
    this.name = "DirectUploadError";
    /** @type {string} stable error code */
    this.code = code;
    /** @type {number} HTTP status of the answer, 0 when there was none */
    this.status = info.status ?? 0;
    /** @type {string} why the server rejected the object (upload_rejected), else "" */
    this.reason = info.reason ?? "";
    /** @type {object|null} the intent as the server last showed it, if it did */
    this.intent = info.intent ?? null;
    /** @type {string} the intent id, once the server granted the upload */
    this.id = info.id ?? "";
    /** @type {string} where it failed: "grant", "transfer" or "complete" */
    this.stage = info.stage ?? "";
  }
}

/**
 * Uploads a file straight to the bucket through the direct_upload API and
 * resolves with the answer of `complete` (the completed intent).
 *
 * @param {Blob} file the File (or Blob) to upload
 * @param {UploadOptions} [options]
 * @returns {Promise<UploadResult>}
 */
export async function upload(file, options = {}) {
  if (!(file instanceof Blob)) {
    throw new TypeError("upload: file must be a File or a Blob");
  }
  const ctx = context(file, options);
  if (ctx.signal && ctx.signal.aborted) throw abortedError(ctx);
  try {
    const done = file.size > ctx.threshold ? await multipartUpload(ctx) : await simpleUpload(ctx);
    ctx.saved.remove();
    return done;
  } catch (err) {
    const e = err instanceof DirectUploadError ? err : unexpected(ctx, err);
    // Once granted, a transfer that failed or an abort is reported, so the
    // server deletes whatever reached the bucket.
    if (ctx.id && (ctx.stage === "transfer" || e.code === "aborted")) {
      await reportFailure(ctx, e);
    }
    // Kept for a later resume only while the intent may still be pending
    // and the failure was the network's or the server's, not a verdict.
    const pending = !e.intent || e.intent.status === "pending";
    if (!(pending && (e.code === "network_error" || e.status >= 500))) ctx.saved.remove();
    throw e;
  }
}

/**
 * The multipart uploads of this endpoint that a reload interrupted and
 * that can still be resumed (pending, unexpired), for telling the user to
 * choose the same file again. Expired entries are dropped.
 *
 * @param {{endpoint?: string}} [options]
 * @returns {{id: string, name: string, size: number, lastModified: number, partsDone: number, partCount: number, percent: number, expiresAt: string}[]}
 */
export function pendingUploads(options = {}) {
  const endpoint = String(options.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
  const storage = localStore();
  const out = [];
  if (!storage) return out;
  const keys = [];
  for (let i = 0; i < storage.length; i++) {
    const k = storage.key(i);
    if (k && k.startsWith(RESUME_PREFIX + endpoint + "|")) keys.push(k);
  }
  for (const k of keys) {
    const rec = readRecord(storage, k);
    if (!rec || rec.expiresAt - Date.now() <= URL_MARGIN_MS) {
      storage.removeItem(k);
      continue;
    }
    out.push(resumeInfo(rec));
  }
  return out;
}

// ---- context --------------------------------------------------------------

/**
 * @typedef {object} Ctx
 * @property {Blob} file
 * @property {string} filename
 * @property {string} contentType
 * @property {string} endpoint
 * @property {object|undefined} metadata
 * @property {(p: {loaded: number, total: number, percent: number}) => void} onProgress
 * @property {AbortSignal|undefined} signal
 * @property {number} completeRetries
 * @property {number} threshold
 * @property {typeof fetch} fetch
 * @property {string} id
 * @property {string} stage
 */

/** @returns {Ctx} */
function context(file, o) {
  const doFetch = o.fetch || globalThis.fetch;
  if (typeof doFetch !== "function") throw new TypeError("upload: no fetch function available");
  if (o.metadata !== undefined && (o.metadata === null || typeof o.metadata !== "object" || Array.isArray(o.metadata))) {
    throw new TypeError("upload: metadata must be a plain object");
  }
  const onProgress = typeof o.onProgress === "function" ? o.onProgress : () => {};
  return {
    file,
    filename: typeof file.name === "string" ? file.name : "",
    contentType: file.type || "application/octet-stream",
    endpoint: endpointOf(o),
    metadata: o.metadata,
    onProgress: (p) => {
      try {
        onProgress(p);
      } catch (err) {
        // A broken progress callback must not break the upload.
        setTimeout(() => {
          throw err;
        });
      }
    },
    signal: o.signal || undefined,
    completeRetries: nonNegative(o.completeRetries, DEFAULT_COMPLETE_RETRIES),
    threshold: nonNegative(o.multipartThreshold, DEFAULT_MULTIPART_THRESHOLD),
    // Called as a plain function, so window.fetch works without bind().
    fetch: (url, init) => doFetch(url, init),
    id: "",
    stage: "grant",
    resume: o.resume === true ? () => true : typeof o.resume === "function" ? o.resume : () => false,
    saved: savedUpload(endpointOf(o), file),
  };
}

function endpointOf(o) {
  return String(o.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
}

function nonNegative(v, def) {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? Math.floor(v) : def;
}

/** Reports progress of the transfer; 100 only once the bucket has it all. */
function progress(ctx, loaded, done = false) {
  const total = ctx.file.size;
  loaded = Math.max(0, Math.min(total, Math.round(loaded)));
  const percent = done ? 100 : total > 0 ? Math.min(99, Math.floor((loaded / total) * 100)) : 0;
  ctx.onProgress({ loaded: done ? total : loaded, total, percent });
}

// ---- simple flow: one presigned form POST ---------------------------------

async function simpleUpload(ctx) {
  const grant = await grantRequest(ctx, "");
  if (typeof grant.url !== "string" || !grant.url || !grant.fields || typeof grant.fields !== "object") {
    throw badResponse(ctx, 201, "the grant has no form url or fields");
  }

  ctx.stage = "transfer";
  progress(ctx, 0);
  const form = new FormData();
  for (const [k, v] of Object.entries(grant.fields)) form.append(k, String(v));
  form.append("file", ctx.file); // last: S3 ignores fields after the file
  await send(ctx, {
    method: grant.method || "POST",
    url: grant.url,
    body: form,
    signal: ctx.signal,
    // The form is a little larger than the file; scale to the file's bytes.
    onProgress: (loaded, total) => progress(ctx, total > 0 ? (loaded / total) * ctx.file.size : 0),
  });
  progress(ctx, ctx.file.size, true);

  ctx.stage = "complete";
  return complete(ctx, undefined);
}

// ---- multipart flow: presigned part PUTs -----------------------------------

async function multipartUpload(ctx) {
  const size = ctx.file.size;
  const resumed = await resumeSaved(ctx);
  let partSize, partCount, rec;
  if (resumed) {
    ({ partSize, partCount, rec } = resumed);
  } else {
    const mp = await grantRequest(ctx, "/multipart");
    partSize = mp.part_size;
    partCount = mp.part_count;
    if (!Number.isSafeInteger(partSize) || partSize <= 0 || !Number.isSafeInteger(partCount) ||
        partCount !== Math.max(1, Math.ceil(size / partSize))) {
      throw badResponse(ctx, 201, "the multipart grant's part_size and part_count do not fit the file");
    }
    const exp = Date.parse(mp.expires_at);
    rec = { id: ctx.id, partSize, partCount, expiresAt: Number.isNaN(exp) ? 0 : exp, done: [] };
    ctx.saved.save(rec);
  }

  ctx.stage = "transfer";
  const urls = new PartURLs(ctx, partCount);
  const loaded = new Array(partCount + 1).fill(0); // bytes sent, by part number
  const etags = new Array(partCount + 1).fill("");
  const todo = [];
  for (let n = 1; n <= partCount; n++) {
    const have = resumed && resumed.parts.get(n);
    if (have) {
      etags[n] = have.etag;
      loaded[n] = have.size;
    } else {
      todo.push(n);
    }
  }
  const report = () => progress(ctx, loaded.reduce((a, b) => a + b, 0));
  report();

  // stop ends every part in flight: when the caller aborts, or when one
  // part has failed for good.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  if (ctx.signal) ctx.signal.addEventListener("abort", onAbort, { once: true });

  let next = 0; // index into todo
  let failure = null;
  const uploadPart = async (n) => {
    const start = (n - 1) * partSize;
    const body = ctx.file.slice(start, Math.min(start + partSize, size));
    for (let attempt = 0; ; attempt++) {
      try {
        // A retry gets a fresh URL, in case the old one expired.
        const url = attempt === 0 ? await urls.get(n) : await urls.refresh(n);
        const xhr = await send(ctx, {
          method: "PUT",
          url,
          body,
          signal: stop.signal,
          onProgress: (sent) => {
            loaded[n] = Math.min(sent, body.size);
            report();
          },
        });
        const etag = xhr.getResponseHeader("ETag");
        if (!etag) {
          const e = new DirectUploadError("s3_rejected",
            `The storage stored part ${n} but its ETag header is not readable: the bucket's CORS rule must expose ETag`,
            { status: xhr.status, id: ctx.id, stage: "transfer" });
          e[FINAL] = true;
          throw e;
        }
        loaded[n] = body.size;
        report();
        return etag;
      } catch (err) {
        loaded[n] = 0;
        report();
        if (stop.signal.aborted || err[FINAL] || attempt >= PART_RETRIES ||
            !(err instanceof DirectUploadError) || err.code === "aborted") throw err;
        await sleep(PART_BACKOFF_MS * 2 ** attempt, stop.signal).catch(() => {});
        if (stop.signal.aborted) throw err;
      }
    }
  };
  const worker = async () => {
    while (!failure && next < todo.length) {
      const n = todo[next++];
      try {
        etags[n] = await uploadPart(n);
        rec.done.push(n);
        ctx.saved.save(rec);
      } catch (err) {
        if (!failure) failure = err;
        stop.abort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(PART_CONCURRENCY, Math.max(1, todo.length)) }, worker));
  } finally {
    if (ctx.signal) ctx.signal.removeEventListener("abort", onAbort);
  }
  if (ctx.signal && ctx.signal.aborted) throw abortedError(ctx);
  if (failure) throw failure;
  progress(ctx, size, true);

  ctx.stage = "complete";
  const parts = [];
  for (let n = 1; n <= partCount; n++) parts.push({ part_number: n, etag: etags[n] });
  return complete(ctx, { parts });
}

// ---- resuming after a reload -------------------------------------------------

/**
 * Offers to resume the saved multipart upload of this file, if there is
 * one still pending and unexpired, and when the caller accepts, lists the
 * parts already in the bucket. Returns null to start over (and forgets
 * the saved upload), else the layout and the parts to keep by number.
 */
async function resumeSaved(ctx) {
  const rec = ctx.saved.load();
  if (!rec) return null;
  const size = ctx.file.size;
  if (rec.expiresAt - Date.now() <= URL_MARGIN_MS || rec.partCount !== Math.max(1, Math.ceil(size / rec.partSize)) ||
      !(await ctx.resume(resumeInfo(rec)))) {
    ctx.saved.remove();
    return null;
  }
  ctx.id = rec.id;
  const { res, data } = await api(ctx, "GET", `/${encodeURIComponent(rec.id)}/parts`);
  if (res.status !== 200 || !data || !Array.isArray(data.parts)) {
    if (res.status >= 500 || res.status === 0) throw serverError(ctx, res, data);
    // Not found, finalized or expired: start over.
    ctx.id = "";
    ctx.saved.remove();
    return null;
  }
  const parts = new Map();
  for (const p of data.parts) {
    const n = p && p.part_number;
    if (!Number.isSafeInteger(n) || n < 1 || n > rec.partCount || typeof p.etag !== "string" || !p.etag) continue;
    const want = Math.min(rec.partSize, size - (n - 1) * rec.partSize);
    // A part cut short by the reload is sent again.
    if (p.size === want) parts.set(n, { etag: p.etag, size: want });
  }
  rec.done = [...parts.keys()];
  ctx.saved.save(rec);
  return { partSize: rec.partSize, partCount: rec.partCount, rec, parts };
}

/** What resume callbacks and pendingUploads() are told of a saved upload. */
function resumeInfo(rec) {
  const done = Array.isArray(rec.done) ? new Set(rec.done).size : 0;
  return {
    id: rec.id, name: rec.name, size: rec.size, lastModified: rec.lastModified,
    partsDone: done, partCount: rec.partCount,
    percent: Math.min(99, Math.floor((done / rec.partCount) * 100)),
    expiresAt: new Date(rec.expiresAt).toISOString(),
  };
}

/** localStorage, or null where it is missing or refused (private modes). */
function localStore() {
  try {
    const s = globalThis.localStorage;
    return s && typeof s.getItem === "function" ? s : null;
  } catch {
    return null;
  }
}

function readRecord(storage, key) {
  try {
    const rec = JSON.parse(storage.getItem(key) || "null");
    if (rec && typeof rec.id === "string" && Number.isSafeInteger(rec.partSize) && rec.partSize > 0 &&
        Number.isSafeInteger(rec.partCount) && rec.partCount > 0 && typeof rec.expiresAt === "number") return rec;
  } catch {
    // a damaged entry is dropped below
  }
  return null;
}

/** The saved state of this file's multipart upload on this endpoint. */
function savedUpload(endpoint, file) {
  const name = typeof file.name === "string" ? file.name : "";
  const lastModified = typeof file.lastModified === "number" ? file.lastModified : 0;
  const key = RESUME_PREFIX + endpoint + "|" + JSON.stringify([name, file.size, lastModified]);
  const storage = localStore();
  const guard = (fn) => {
    if (!storage) return null;
    try {
      return fn();
    } catch {
      return null; // full or refused: resuming is a convenience
    }
  };
  return {
    load: () => guard(() => {
      const rec = readRecord(storage, key);
      if (!rec) storage.removeItem(key);
      return rec;
    }),
    save: (rec) => guard(() => storage.setItem(key, JSON.stringify({ ...rec, name, size: file.size, lastModified }))),
    remove: () => guard(() => storage.removeItem(key)),
  };
}

/** PartURLs hands out presigned part URLs, asked for in batches of 100. */
class PartURLs {
  constructor(ctx, partCount) {
    this.ctx = ctx;
    this.partCount = partCount;
    /** @type {Map<number, Promise<{urls: Map<number, string>, expiresAt: number}>>} */
    this.batches = new Map();
  }

  /** The URL of part n, from its batch while that is fresh enough. */
  async get(n) {
    const i = Math.floor((n - 1) / PART_URL_BATCH);
    let batch = this.batches.get(i);
    if (batch) {
      const b = await batch.catch(() => null);
      if (b && b.urls.has(n) && b.expiresAt - Date.now() > URL_MARGIN_MS) return b.urls.get(n);
      if (this.batches.get(i) !== batch) return this.get(n); // another part refreshed it
    }
    const first = i * PART_URL_BATCH + 1;
    const numbers = [];
    for (let k = first; k <= Math.min(first + PART_URL_BATCH - 1, this.partCount); k++) numbers.push(k);
    batch = this.fetch(numbers);
    this.batches.set(i, batch);
    batch.catch(() => {
      if (this.batches.get(i) === batch) this.batches.delete(i);
    });
    const b = await batch;
    if (!b.urls.has(n)) throw badResponse(this.ctx, 200, `no URL for part ${n}`);
    return b.urls.get(n);
  }

  /** A new URL for part n alone. */
  async refresh(n) {
    const b = await this.fetch([n]);
    if (!b.urls.has(n)) throw badResponse(this.ctx, 200, `no URL for part ${n}`);
    return b.urls.get(n);
  }

  async fetch(numbers) {
    const ctx = this.ctx;
    const { res, data } = await api(ctx, "POST", `/${encodeURIComponent(ctx.id)}/parts`, { part_numbers: numbers });
    if (res.status !== 200) {
      const e = serverError(ctx, res, data);
      if (res.status >= 400 && res.status < 500) e[FINAL] = true;
      throw e;
    }
    if (!data || !Array.isArray(data.parts)) throw badResponse(ctx, res.status, "the part URLs are missing");
    const urls = new Map();
    for (const p of data.parts) {
      if (p && Number.isSafeInteger(p.part_number) && typeof p.url === "string") urls.set(p.part_number, p.url);
    }
    const exp = Date.parse(data.expires_at);
    return { urls, expiresAt: Number.isNaN(exp) ? Date.now() + 60_000 : exp };
  }
}

// ---- the API ---------------------------------------------------------------

/** POST {endpoint}{path} asking for an upload; returns the 201 body. */
async function grantRequest(ctx, path) {
  const req = { filename: ctx.filename, content_type: ctx.contentType, size: ctx.file.size };
  if (ctx.metadata !== undefined) req.metadata = ctx.metadata;
  const { res, data } = await api(ctx, "POST", path, req);
  if (res.status !== 201) throw serverError(ctx, res, data);
  if (!data || typeof data.id !== "string" || !data.id) throw badResponse(ctx, res.status, "the grant has no id");
  ctx.id = data.id;
  return data;
}

/** POST {endpoint}/{id}/complete, retried while the object is not visible yet. */
async function complete(ctx, body) {
  for (let attempt = 0; ; attempt++) {
    const { res, data } = await api(ctx, "POST", `/${encodeURIComponent(ctx.id)}/complete`, body);
    if (res.status === 200) {
      if (!data || typeof data !== "object" || typeof data.status !== "string") {
        throw badResponse(ctx, res.status, "the answer of complete is not an upload");
      }
      return data;
    }
    const code = errorCode(data);
    if (res.status === 409 && (code === "object_missing" || code === "busy") && attempt < ctx.completeRetries) {
      await sleep(COMPLETE_BACKOFF_MS * 2 ** attempt, ctx.signal).catch(() => {
        throw abortedError(ctx);
      });
      continue;
    }
    throw serverError(ctx, res, data);
  }
}

/**
 * POST {endpoint}/{id}/fail after the transfer failed or was aborted, so
 * the server deletes whatever reached the bucket. Never throws: a failure
 * here is added to err's message.
 */
async function reportFailure(ctx, err) {
  const reason = err.code === "aborted" ? "aborted" : `${err.code}: ${err.message}`.slice(0, REASON_MAX);
  try {
    // Not ctx.signal: it may be the very signal that aborted the upload.
    const { res, data } = await api(ctx, "POST", `/${encodeURIComponent(ctx.id)}/fail`, { reason }, null);
    if (res.status === 200 && data && typeof data === "object") {
      err.intent = data;
    } else {
      const fe = serverError(ctx, res, data);
      if (fe.intent && !err.intent) err.intent = fe.intent;
      err.message += ` (reporting the failure to the server failed too: ${fe.message})`;
    }
  } catch (fe) {
    err.message += ` (reporting the failure to the server failed too: ${fe && fe.message ? fe.message : fe})`;
  }
}

/**
 * One JSON request to the API. signal defaults to the caller's; null sends
 * without one.
 * @returns {Promise<{res: Response, data: any}>}
 */
async function api(ctx, method, path, body, signal = ctx.signal) {
  const url = ctx.endpoint + path;
  /** @type {RequestInit} */
  const init = {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
  };
  if (body !== undefined) init.body = JSON.stringify(body);
  if (signal) init.signal = signal;
  let res;
  try {
    res = await ctx.fetch(url, init);
  } catch (err) {
    if (signal && signal.aborted) throw abortedError(ctx);
    throw new DirectUploadError("network_error",
      `Could not reach the upload server (${method} ${url}): ${err && err.message ? err.message : err}`,
      { id: ctx.id, stage: ctx.stage, cause: err });
  }
  let data = null;
  try {
    const text = await res.text();
    data = text ? JSON.parse(text) : null;
  } catch (err) {
    if (signal && signal.aborted) throw abortedError(ctx);
    data = null; // not JSON: an error page of a proxy, say
  }
  return { res, data };
}

function errorCode(data) {
  const e = data && typeof data === "object" ? data.error : null;
  return e && typeof e === "object" && typeof e.code === "string" ? e.code : "";
}

/** The DirectUploadError for an API error answer. */
function serverError(ctx, res, data) {
  const e = data && typeof data === "object" && data.error && typeof data.error === "object" ? data.error : {};
  let intent = null;
  if (data && typeof data === "object" && typeof data.id === "string" && typeof data.status === "string") {
    intent = { ...data };
    delete intent.error;
  }
  const code = errorCode(data) || (res.status >= 200 && res.status < 300 ? "bad_response" : "http_error");
  const reason = typeof e.reason === "string" && e.reason ? e.reason : intent && typeof intent.reason === "string" ? intent.reason : "";
  const serverMessage = typeof e.message === "string" ? e.message : "";
  return new DirectUploadError(code, humanMessage(ctx, code, res.status, serverMessage, reason, intent), {
    status: res.status, reason, intent, id: ctx.id, stage: ctx.stage,
  });
}

const REJECT_REASONS = {
  content_mismatch: "its content is not of the declared type",
  type_mismatch: "it was stored with another type than the declared one",
  too_large: "it is larger than allowed",
  size_mismatch: "its size differs from the declared one",
  empty: "it is empty",
  foreign_object: "the object in the bucket does not belong to this upload",
  image_too_large: "the image has more pixels than allowed",
  image_unreadable: "the image's dimensions could not be read",
};

/** A clear message for people, from the code and what is known locally. */
function humanMessage(ctx, code, status, serverMessage, reason, intent) {
  switch (code) {
    case "type_not_allowed":
      return `${ctx.contentType} files are not allowed here`;
    case "too_large": {
      const limit = /limit of (\d+) bytes/.exec(serverMessage);
      return `This file is too large: ${formatSize(ctx.file.size)}` +
        (limit ? `, over the limit of ${formatSize(Number(limit[1]))}` : ", over the limit");
    }
    case "unauthenticated":
      return "You need to log in to upload files";
    case "upload_rejected": {
      const why = intent && typeof intent.detail === "string" && intent.detail ? intent.detail : REJECT_REASONS[reason] || reason;
      return "The upload was rejected and deleted" + (why ? `: ${why}` : "");
    }
    case "object_missing":
      return "The file did not show up in the storage in time; the server will check it again later";
    case "http_error":
      return `The upload server answered HTTP ${status}` + (serverMessage ? `: ${serverMessage}` : "");
  }
  return serverMessage ? capitalize(serverMessage) : `The upload server answered HTTP ${status} (${code})`;
}

function badResponse(ctx, status, what) {
  return new DirectUploadError("bad_response", `The upload server's answer is not understood: ${what}`,
    { status, id: ctx.id, stage: ctx.stage });
}

function abortedError(ctx) {
  return new DirectUploadError("aborted", "The upload was cancelled", { id: ctx.id, stage: ctx.stage });
}

function unexpected(ctx, err) {
  return new DirectUploadError("client_error", `Upload failed: ${err && err.message ? err.message : err}`,
    { id: ctx.id, stage: ctx.stage, cause: err });
}

// ---- talking to the bucket --------------------------------------------------

/**
 * Sends body with XMLHttpRequest, which unlike fetch reports upload
 * progress. Resolves with the XHR on 2xx; rejects with s3_rejected,
 * network_error or aborted. No credentials go to the bucket.
 * @returns {Promise<XMLHttpRequest>}
 */
function send(ctx, { method, url, body, signal, onProgress }) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) {
      reject(abortedError(ctx));
      return;
    }
    const xhr = new XMLHttpRequest();
    const onAbort = () => xhr.abort();
    const settle = (fn, v) => {
      if (signal) signal.removeEventListener("abort", onAbort);
      fn(v);
    };
    xhr.open(method, url);
    xhr.withCredentials = false;
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        settle(resolve, xhr);
        return;
      }
      const { code, message } = s3Error(xhr.responseText);
      const what = [code, message].filter(Boolean).join(": ");
      settle(reject, new DirectUploadError("s3_rejected",
        `The storage refused the upload (HTTP ${xhr.status}${what ? ` ${what}` : ""})`,
        { status: xhr.status, id: ctx.id, stage: "transfer" }));
    };
    xhr.onerror = () => settle(reject, new DirectUploadError("network_error",
      `Could not reach the storage at ${origin(url)} (a network error, or the bucket's CORS does not allow this site)`,
      { id: ctx.id, stage: "transfer" }));
    xhr.ontimeout = xhr.onerror;
    xhr.onabort = () => settle(reject, abortedError(ctx));
    if (signal) signal.addEventListener("abort", onAbort, { once: true });
    xhr.send(body);
  });
}

/** <Code> and <Message> of an S3 XML error body. */
function s3Error(text) {
  const pick = (tag) => {
    const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(text || "");
    return m ? decodeXML(m[1].trim()).slice(0, 300) : "";
  };
  return { code: pick("Code"), message: pick("Message") };
}

function decodeXML(s) {
  return s.replace(/&(lt|gt|quot|apos|amp);/g, (_, e) => ({ lt: "<", gt: ">", quot: '"', apos: "'", amp: "&" })[e]);
}

// ---- helpers -----------------------------------------------------------------

/** Resolves after ms; rejects when signal aborts first. */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) {
      reject(new Error("aborted"));
      return;
    }
    const onAbort = () => {
      clearTimeout(t);
      reject(new Error("aborted"));
    };
    const t = setTimeout(() => {
      if (signal) signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    if (signal) signal.addEventListener("abort", onAbort, { once: true });
  });
}

function origin(url) {
  try {
    return new URL(url, globalThis.location && globalThis.location.href).origin;
  } catch {
    return url;
  }
}

function capitalize(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function formatSize(n) {
  if (n < 1024) return `${n} bytes`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let i = -1;
  do {
    n /= 1024;
    i++;
  } while (n >= 1024 && i < units.length - 1);
  return `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[i]}`;
}
