#!/usr/bin/env node
// client-simple.mjs uses the plain browser client (direct-upload.js) in a
// real Chromium for simple uploads on a running stack: it imports
// {endpoint}/direct-upload.js on the site's page, uploads a PNG drawn on a
// canvas (extra options as JSON in --options), then HTML named .png.
// Whatever the grant's method (POST form or PUT), the client follows it.
// Prints ONE JSON line:
//
//   {"result":{...complete's answer...},"progress":[...],"hash_progress":[...],"rejected":{"code","reason"},
//    "bucket_requests":[{"method","path","headers":{...}}]}
//
//   node client-simple.mjs --url http://127.0.0.1:8080 --endpoint /put

import { launch, setup } from "./harness.mjs";

const { args, site } = setup("client-simple.mjs", ["url", "endpoint"], {
  endpoint: { type: "string" },
  options: { type: "string", default: "{}" },
});
const browser = await launch(args.chromium);
try {
  const page = await browser.newPage();
  const bucketRequests = [];
  page.on("request", (req) => {
    const u = new URL(req.url());
    if (u.origin !== new URL(site).origin && req.method() !== "OPTIONS") {
      bucketRequests.push({ method: req.method(), path: u.pathname, headers: req.headers() });
    }
  });
  await page.goto(site + "/");
  const out = await page.evaluate(async ({ endpoint, options }) => {
    const { upload } = await import(endpoint + "/direct-upload.js");
    const canvas = new OffscreenCanvas(64, 48);
    const g = canvas.getContext("2d");
    const grad = g.createLinearGradient(0, 0, 64, 48);
    grad.addColorStop(0, "#c33");
    grad.addColorStop(1, "#33c");
    g.fillStyle = grad;
    g.fillRect(0, 0, 64, 48);
    const png = new File([await canvas.convertToBlob({ type: "image/png" })], "drawn.png", { type: "image/png" });
    const progress = [];
    const hashProgress = [];
    const result = await upload(png, {
      endpoint, ...options, onProgress: (p) => progress.push(p), onHashProgress: (p) => hashProgress.push(p),
    });
    let rejected = null;
    try {
      await upload(new File(["<html><script>alert(1)</script></html>"], "evil.png", { type: "image/png" }), { endpoint, ...options });
    } catch (e) {
      rejected = { code: e.code, reason: e.reason || (e.upload && e.upload.reason) || "" };
    }
    return { result, progress, hash_progress: hashProgress, rejected, size: png.size };
  }, { endpoint: args.endpoint, options: JSON.parse(args.options) });
  out.bucket_requests = bucketRequests;
  process.stdout.write(JSON.stringify(out) + "\n");
} finally {
  await browser.close();
}
