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
// The grant says how the bytes go: a form POST (fields) or, for a profile
// with `method put`, a PUT of the file with the grant's signed headers.
//
// With `checksum: true` the file's SHA-256 is computed first (in a Worker
// when the page allows one, in 4 MiB slices, never buffering the whole
// file; onHashProgress reports it, separately from onProgress) and sent as
// checksum_sha256: the grant binds it, so the bucket refuses other bytes.
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
const HASH_CHUNK = 4 * 1024 * 1024; // bytes read and hashed at a time

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
    /** @type {string} where it failed: "hash", "grant", "transfer" or "complete" */
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
    if (ctx.wantChecksum) {
      ctx.stage = "hash";
      ctx.checksum = await hashFile(ctx);
      ctx.stage = "grant";
    }
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
  const onHashProgress = typeof o.onHashProgress === "function" ? o.onHashProgress : () => {};
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
    onHashProgress: (p) => {
      try {
        onHashProgress(p);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    },
    wantChecksum: o.checksum === true,
    checksum: "",
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

// ---- simple flow: one presigned form POST, or one presigned PUT -------------

async function simpleUpload(ctx) {
  const grant = await grantRequest(ctx, "");
  // The grant says how: a form POST with fields, or (method put) a PUT of
  // the bare file with exactly the signed headers.
  const put = grant.method === "PUT";
  const parts = put ? grant.headers : grant.fields;
  if (typeof grant.url !== "string" || !grant.url || !parts || typeof parts !== "object") {
    throw badResponse(ctx, 201, put ? "the PUT grant has no url or headers" : "the grant has no form url or fields");
  }

  ctx.stage = "transfer";
  progress(ctx, 0);
  let body = ctx.file;
  if (!put) {
    body = new FormData();
    for (const [k, v] of Object.entries(parts)) body.append(k, String(v));
    body.append("file", ctx.file); // last: S3 ignores fields after the file
  }
  await send(ctx, {
    method: put ? "PUT" : "POST",
    url: grant.url,
    body,
    headers: put ? parts : undefined,
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
  if (ctx.checksum) req.checksum_sha256 = ctx.checksum;
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
  checksum_mismatch: "its SHA-256 is not the one computed before the upload",
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
    case "scan_pending":
      return "The file is uploaded and waits for the malware scan; it completes once the scanner is back";
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
function send(ctx, { method, url, body, headers, signal, onProgress }) {
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
    // A PUT grant's signed headers, sent exactly (Content-Length, also
    // signed, is the file's size: the browser sets it).
    for (const [k, v] of Object.entries(headers || {})) xhr.setRequestHeader(k, String(v));
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

// ---- SHA-256 of the file, incrementally -------------------------------------

/**
 * Computes the file's SHA-256 (base64, as S3 writes checksums) in slices
 * of HASH_CHUNK bytes: in a module Worker running this very file (same
 * origin, so a Content-Security-Policy of 'self' allows it), else on the
 * page between awaits. Reports {loaded, total, percent, where} to
 * onHashProgress.
 */
async function hashFile(ctx) {
  const file = ctx.file;
  const total = file.size;
  let where = "page";
  const report = (loaded) =>
    ctx.onHashProgress({ loaded, total, percent: total > 0 ? Math.floor((loaded / total) * 100) : 100, where });
  let digest = null;
  if (typeof Worker === "function") {
    where = "worker";
    report(0);
    digest = await hashInWorker(ctx, report).catch((err) => {
      if (err instanceof DirectUploadError) throw err; // aborted
      where = "page"; // no worker here: hash on the page instead
      return null;
    });
  }
  if (!digest) {
    report(0);
    const h = createSHA256();
    for (let off = 0; off < total; off += HASH_CHUNK) {
      if (ctx.signal && ctx.signal.aborted) throw abortedError(ctx);
      h.update(new Uint8Array(await file.slice(off, off + HASH_CHUNK).arrayBuffer()));
      report(Math.min(total, off + HASH_CHUNK));
    }
    digest = h.digest();
  }
  report(total);
  let bin = "";
  for (const b of digest) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Hashes ctx.file in a Worker; rejects (not DirectUploadError) if none can run. */
function hashInWorker(ctx, report) {
  return new Promise((resolve, reject) => {
    let worker;
    try {
      worker = new Worker(import.meta.url, { type: "module" });
    } catch (err) {
      reject(err);
      return;
    }
    const done = (fn, v) => {
      worker.terminate();
      if (ctx.signal) ctx.signal.removeEventListener("abort", onAbort);
      fn(v);
    };
    const onAbort = () => done(reject, abortedError(ctx));
    worker.onmessage = (e) => {
      const m = e.data || {};
      if (m.error) done(reject, new Error(m.error));
      else if (m.digest) done(resolve, new Uint8Array(m.digest));
      else report(m.loaded || 0);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      done(reject, new Error("the hashing worker failed"));
    };
    if (ctx.signal) ctx.signal.addEventListener("abort", onAbort, { once: true });
    worker.postMessage({ file: ctx.file, chunk: HASH_CHUNK });
  });
}

// Loaded as the hashing Worker (see hashInWorker): serve its messages.
if (typeof WorkerGlobalScope !== "undefined" && globalThis instanceof WorkerGlobalScope) hashWorkerMain();

/** The Worker's code: it gets {file, chunk}, posts {loaded}… then {digest}. */
function hashWorkerMain() {
  self.onmessage = async (e) => {
    const { file, chunk } = e.data;
    try {
      const h = createSHA256();
      for (let off = 0; off < file.size; off += chunk) {
        h.update(new Uint8Array(await file.slice(off, off + chunk).arrayBuffer()));
        self.postMessage({ loaded: Math.min(file.size, off + chunk) });
      }
      self.postMessage({ digest: h.digest() });
    } catch (err) {
      self.postMessage({ error: String((err && err.message) || err) });
    }
  };
}

/**
 * An incremental SHA-256 (FIPS 180-4): update(bytes) any number of
 * times, then digest() → 32 bytes. WebCrypto has no incremental digest,
 * and hashing a large file in one call would hold it all in memory.
 * @returns {{update(data: Uint8Array): any, digest(): Uint8Array}}
 */
export function createSHA256() {
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const W = new Uint32Array(64);
  const buf = new Uint8Array(64);
  let bufLen = 0;
  let length = 0; // bytes hashed
  let finished = false;
  const block = (d, o) => {
    for (let i = 0; i < 16; i++) {
      const j = o + 4 * i;
      W[i] = (d[j] << 24) | (d[j + 1] << 16) | (d[j + 2] << 8) | d[j + 3];
    }
    for (let i = 16; i < 64; i++) {
      const a = W[i - 15], b = W[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
    }
    let a = H[0], b = H[1], c = H[2], d0 = H[3], e = H[4], f = H[5], g = H[6], h = H[7];
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g; g = f; f = e; e = (d0 + t1) | 0; d0 = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    H[0] += a; H[1] += b; H[2] += c; H[3] += d0; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
  };
  const write = (data) => {
    let o = 0;
    const n = data.length;
    if (bufLen > 0) {
      o = Math.min(64 - bufLen, n);
      buf.set(data.subarray(0, o), bufLen);
      bufLen += o;
      if (bufLen < 64) return;
      block(buf, 0);
      bufLen = 0;
    }
    for (; o + 64 <= n; o += 64) block(data, o);
    if (o < n) {
      buf.set(data.subarray(o), 0);
      bufLen = n - o;
    }
  };
  return {
    update(data) {
      if (finished) throw new Error("sha256: update after digest");
      length += data.length;
      write(data);
      return this;
    },
    digest() {
      if (finished) throw new Error("sha256: digest called twice");
      finished = true;
      const pad = new Uint8Array((bufLen < 56 ? 56 : 120) - bufLen + 8);
      pad[0] = 0x80;
      const hi = Math.floor(length / 0x20000000); // length * 8 / 2^32
      const lo = (length * 8) >>> 0;
      const n = pad.length;
      pad[n - 8] = hi >>> 24; pad[n - 7] = hi >>> 16; pad[n - 6] = hi >>> 8; pad[n - 5] = hi;
      pad[n - 4] = lo >>> 24; pad[n - 3] = lo >>> 16; pad[n - 2] = lo >>> 8; pad[n - 1] = lo;
      write(pad);
      const out = new Uint8Array(32);
      for (let i = 0; i < 8; i++) {
        out[4 * i] = H[i] >>> 24; out[4 * i + 1] = H[i] >>> 16; out[4 * i + 2] = H[i] >>> 8; out[4 * i + 3] = H[i];
      }
      return out;
    },
  };
}
