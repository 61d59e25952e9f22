// Types of direct-upload.js, the browser client of Caddy's direct_upload
// API. Served beside it at {base_path}/direct-upload.d.ts.

/** Progress of the transfer to the bucket. */
export interface UploadProgress {
  /** Bytes of the file sent so far. */
  loaded: number;
  /** The file's size in bytes. */
  total: number;
  /** 0 to 100; 100 only once the bucket has stored the whole file. */
  percent: number;
}

/** Progress of hashing the file (checksum: true). */
export interface HashProgress {
  /** Bytes hashed so far. */
  loaded: number;
  /** The file's size in bytes. */
  total: number;
  /** 0 to 100. */
  percent: number;
  /** Where the hash runs: "worker", or "page" when no Worker could start. */
  where: "worker" | "page";
}

export interface UploadOptions {
  /** The API's base path (the handler's base_path). Default "/uploads". */
  endpoint?: string;
  /** Any JSON object, kept with the upload and sent to the backend's webhooks. */
  metadata?: Record<string, unknown>;
  /** Called as bytes reach the bucket. */
  onProgress?: (progress: UploadProgress) => void;
  /**
   * Compute the file's SHA-256 before asking for the upload and send it as
   * checksum_sha256: the grant binds it, so the bucket refuses other bytes,
   * and complete compares the stored checksum. Hashing runs in a Worker
   * (this module, same origin) when possible, in 4 MiB slices. Default false.
   */
  checksum?: boolean;
  /** Called as the file is hashed (checksum: true), before any upload progress. */
  onHashProgress?: (progress: HashProgress) => void;
  /**
   * Aborting stops the transfer, then reports {"reason":"aborted"} to
   * {endpoint}/{id}/fail; upload() rejects with code "aborted".
   */
  signal?: AbortSignal;
  /**
   * How often complete is retried while it answers 409 object_missing or
   * busy, waiting 200 ms, then twice as long each time. Default 5.
   */
  completeRetries?: number;
  /** Files larger than this (bytes) use the multipart API. Default 100 MiB. */
  multipartThreshold?: number;
  /** The fetch used for API requests. Default: the global fetch. */
  fetch?: typeof fetch;
  /**
   * What to do when this file (same endpoint, name, size, lastModified)
   * has a multipart upload that a page reload interrupted and that is
   * still pending and unexpired: a function asked with what was saved
   * (return true to resume: only the missing parts are sent), or true to
   * always resume. Default: start over.
   */
  resume?: boolean | ((info: ResumeInfo) => boolean | Promise<boolean>);
}

/** A multipart upload saved in localStorage that can be resumed. */
export interface ResumeInfo {
  id: string;
  name: string;
  size: number;
  lastModified: number;
  /** Parts known to be in the bucket when the page last saved. */
  partsDone: number;
  partCount: number;
  percent: number;
  /** When the intent's permission expires (ISO 8601); after it, uploads start over. */
  expiresAt: string;
}

/** The resumable multipart uploads of an endpoint (default "/uploads"). */
export function pendingUploads(options?: { endpoint?: string }): ResumeInfo[];

/** What a completed upload looks like: the 200 answer of complete. */
export interface UploadResult {
  id: string;
  status: "completed";
  profile?: string;
  bucket: string;
  key: string;
  filename?: string;
  content_type: string;
  /** The verified size in bytes. */
  size: number;
  max_size?: number;
  etag: string;
  /** Width and height in pixels of an image whose header the server read. */
  width?: number;
  height?: number;
  /** The declared SHA-256 (base64), confirmed by the store's checksum. */
  checksum_sha256?: string;
  /** The malware scan's result, when the profile scans (docs/scan.md). */
  scan?: "clean" | "skipped" | (string & {});
  metadata?: Record<string, unknown>;
  reason?: string;
  detail?: string;
  created_at?: string;
  expires_at?: string;
  updated_at?: string;
  /** The backend's JSON answer to the upload's webhook, when it came in time. */
  backend?: Record<string, unknown>;
  [field: string]: unknown;
}

/** An upload as the server shows it (GET {endpoint}/{id}), in any status. */
export interface IntentView {
  id: string;
  status: "pending" | "completed" | "rejected" | "failed" | "expired" | (string & {});
  key?: string;
  reason?: string;
  detail?: string;
  backend?: Record<string, unknown>;
  [field: string]: unknown;
}

/** Error codes of the server (docs/errors.md) and of the client. */
export type DirectUploadErrorCode =
  // server
  | "invalid_json"
  | "unknown_field"
  | "invalid_request"
  | "invalid_filename"
  | "invalid_metadata"
  | "size_required"
  | "checksum_required"
  | "unauthenticated"
  | "not_found"
  | "method_not_allowed"
  | "object_missing"
  | "intent_finalized"
  | "busy"
  | "expired"
  | "body_too_large"
  | "unsupported_media_type"
  | "type_not_allowed"
  | "too_large"
  | "metadata_too_large"
  | "upload_rejected"
  | "internal_error"
  | "storage_error"
  | "store_unavailable"
  | "storage_timeout"
  | "quota_exceeded"
  | "rate_limited"
  | "invalid_parts"
  | "bucket_changed"
  /** The malware scanner is unreachable; the upload waits (docs/scan.md). */
  | "scan_pending"
  // client
  /** A request got no answer (offline, refused, or blocked by CORS). */
  | "network_error"
  /** The bucket answered non-2xx; the message has S3's Code and Message. */
  | "s3_rejected"
  /** The signal aborted the upload. */
  | "aborted"
  /** An error answer without the API's JSON error body (a proxy's error page). */
  | "http_error"
  /** A success answer that is not what the API sends. */
  | "bad_response"
  /** A bug or an unexpected exception in the client. */
  | "client_error"
  // codes added to the server later
  | (string & {});

/** The one error type upload() rejects with. */
export class DirectUploadError extends Error {
  constructor(
    code: string,
    message: string,
    info?: { status?: number; reason?: string; intent?: IntentView | null; id?: string; stage?: string; cause?: unknown },
  );
  name: "DirectUploadError";
  /** Stable error code. */
  code: DirectUploadErrorCode;
  /** A message for people, e.g. "image/svg+xml files are not allowed here". */
  message: string;
  /** HTTP status of the answer; 0 when there was none. */
  status: number;
  /** Why the object was rejected (upload_rejected): content_mismatch, type_mismatch, too_large, size_mismatch, empty, foreign_object, checksum_mismatch, image_too_large, image_unreadable. Else "". */
  reason: string;
  /**
   * The upload as the server last showed it: the rejected intent
   * (upload_rejected), or the answer of fail after a failed transfer
   * (status "failed"). null when the server showed none.
   */
  intent: IntentView | null;
  /** The upload's id once the server granted it, else "". */
  id: string;
  /** Where it failed: "hash" (checksum: true), "grant", "transfer" (to the bucket) or "complete". */
  stage: "hash" | "grant" | "transfer" | "complete" | "";
}

/**
 * Uploads file straight to the bucket: asks the server for a presigned
 * form (or multipart URLs for files over multipartThreshold), sends the
 * bytes to the bucket, and lets the server verify them. Resolves with the
 * completed upload; rejects with DirectUploadError.
 */
export function upload(file: Blob, options?: UploadOptions): Promise<UploadResult>;

/** An incremental SHA-256: update() any number of times, then digest() (32 bytes). */
export function createSHA256(): { update(data: Uint8Array): unknown; digest(): Uint8Array };
