// The part of Uppy the demo page uses (examples/backend/static/uppy-tab.js):
// the core, the inline Dashboard, the S3 uploader that talks to the
// sidecar's Companion-compatible routes ({base}/s3/...), and a pre-processor
// that hashes each file (SHA-256) before it is uploaded. Their styles are
// imported here so esbuild writes them beside the script as uppy.min.css.
import "@uppy/core/css/style.min.css";
import "@uppy/dashboard/css/style.min.css";

export { default as Uppy } from "@uppy/core";
export { default as Dashboard } from "@uppy/dashboard";
export { default as AwsS3 } from "@uppy/aws-s3";
// Our own pre-processor: the file's SHA-256 in file.meta.checksum_sha256,
// which the sidecar binds into the grant (checksum.js).
export { addChecksumPreProcessor } from "./checksum.js";
