// An Uppy pre-processor that computes each file's SHA-256 before it is
// uploaded and puts it (base64, as S3 writes checksums) in the file's meta
// as checksum_sha256. @uppy/aws-s3 sends the meta fields it is allowed to
// (allowedMetaFields) to the sidecar's Companion-style routes as
// metadata[checksum_sha256]; the sidecar takes it as the upload's
// checksum_sha256 and binds it into the grant, so the bucket refuses other
// bytes (see docs/integrity.md).
//
// The hash is the browser client's own incremental SHA-256 (createSHA256
// of module/handler/assets/direct-upload.js, bundled from that file): the
// file is read in slices of chunkSize bytes, so a 1 GiB file is never held
// in memory. It runs on the page between awaits; Uppy shows the progress
// ("Hashing… n%") from the preprocess-progress events.
//
//   import { Uppy, AwsS3, addChecksumPreProcessor } from "uppy.min.js";
//   addChecksumPreProcessor(uppy);
//   uppy.use(AwsS3, { companionEndpoint: "/files", allowedMetaFields: ["checksum_sha256"] });
import { createSHA256 } from "../../module/handler/assets/direct-upload.js";

export const CHECKSUM_META_FIELD = "checksum_sha256";

/**
 * Adds the hashing pre-processor to uppy; returns it (for removePreProcessor).
 * @param {import("@uppy/core").default} uppy
 * @param {{chunkSize?: number, message?: string}} [options]
 */
export function addChecksumPreProcessor(uppy, options = {}) {
  const chunkSize = options.chunkSize || 4 * 1024 * 1024;
  const message = options.message || "Hashing…";
  const preProcessor = async (fileIDs) => {
    for (const id of fileIDs) {
      const file = uppy.getFile(id);
      if (!file || file.isRemote || !file.data) continue; // remote files: no bytes here
      const data = file.data;
      const total = data.size;
      const h = createSHA256();
      uppy.emit("preprocess-progress", file, { mode: "determinate", message, value: 0 });
      for (let off = 0; off < total; off += chunkSize) {
        if (!uppy.getFile(id)) break; // removed meanwhile
        h.update(new Uint8Array(await data.slice(off, off + chunkSize).arrayBuffer()));
        const f = uppy.getFile(id);
        if (f) uppy.emit("preprocess-progress", f, { mode: "determinate", message, value: Math.min(total, off + chunkSize) / total });
      }
      if (!uppy.getFile(id)) continue;
      uppy.setFileMeta(id, { [CHECKSUM_META_FIELD]: base64(h.digest()) });
      uppy.emit("preprocess-complete", uppy.getFile(id));
    }
  };
  uppy.addPreProcessor(preProcessor);
  return preProcessor;
}

function base64(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}
