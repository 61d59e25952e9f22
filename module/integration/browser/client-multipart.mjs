#!/usr/bin/env node
// client-multipart.mjs uses the plain browser client (direct-upload.js) in
// a real Chromium for a multipart upload: on the demo page of a running
// stack it imports {endpoint}/direct-upload.js, uploads a generated 12 MiB
// ZIP through the multipart API (threshold lowered to 5 MiB), then starts
// a second one and aborts it. Prints ONE JSON line:
//
//   {"result":{...complete's answer...},"max_progress":N,"aborted":{"code","id"}}
//
//   node client-multipart.mjs --url http://127.0.0.1:8080 --endpoint /files

import { launch, setup } from "./harness.mjs";

const { args } = setup("client-multipart.mjs", ["url"], {
  endpoint: { type: "string", default: "/files" },
  options: { type: "string", default: "{}" }, // extra upload options (JSON) for the first upload
});
const browser = await launch(args.chromium);
try {
  const page = await browser.newPage();
  await page.goto(args.url.replace(/\/+$/, "") + "/");
  const out = await page.evaluate(async ({ endpoint, options }) => {
    const { upload } = await import(endpoint + "/direct-upload.js");
    const big = (n) => {
      const b = new Uint8Array(n);
      b.set([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00]);
      for (let i = 6; i < n; i += 4096) b[i] = i & 0xff;
      return new File([b], "big.zip", { type: "application/zip" });
    };
    let max = 0;
    let hashMax = -1;
    const result = await upload(big(12 * 1024 * 1024), {
      endpoint, multipartThreshold: 5 * 1024 * 1024, ...options,
      onProgress: ({ percent }) => { max = Math.max(max, percent); },
      onHashProgress: ({ percent }) => { hashMax = Math.max(hashMax, percent); },
    });
    const ctl = new AbortController();
    let aborted = null;
    const p = upload(big(20 * 1024 * 1024), {
      endpoint, multipartThreshold: 5 * 1024 * 1024, signal: ctl.signal,
      onProgress: ({ loaded }) => { if (loaded > 0) ctl.abort(); },
    });
    try { await p; } catch (e) { aborted = { code: e.code, id: e.id || "" }; }
    return { result, max_progress: max, hash_max_progress: hashMax, aborted };
  }, { endpoint: args.endpoint, options: JSON.parse(args.options) });
  process.stdout.write(JSON.stringify(out) + "\n");
} finally {
  await browser.close();
}
