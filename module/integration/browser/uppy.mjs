#!/usr/bin/env node
// uppy.mjs drives a real Chromium through the "Uppy" tab of the demo page of
// a running stack (Caddy with Caddyfile.example, the example backend, an S3
// server): it opens the page, switches to the Uppy tab, adds every file of
// --files to the Uppy Dashboard at once (through its hidden file input),
// clicks Upload, waits until each file has a row in #uppy-results, takes a
// full-page screenshot (uppy-after-uploads.png) and prints ONE JSON line on
// stdout:
//
//   {"outcomes": [{"name","state","status","key","multipart","parts","detail","text"}, ...],
//    "uppy":     [{"name","type","size","error","upload_complete","checksum","hash_progress"}, ...],
//    "requests": [{"method","host","path","part","status","filename","checksum","grant_key","grant_checksum"}, ...]}
//
// "requests" are the page's calls to the site under /files and to the
// bucket, in order (paths without query strings, "part" is the partNumber of
// a part upload), so the test can see which of Uppy's routes each file took.
// For Uppy's GET /files/s3/params and POST /files/s3/multipart they also
// have the filename and the checksum Uppy sent (metadata[checksum_sha256]),
// and for params the grant's form key and x-amz-checksum-sha256 field.
// "checksum" of an Uppy file is its file.meta.checksum_sha256 (set by the
// page's hashing pre-processor), "hash_progress" the values of its
// determinate preprocess-progress events.
//
// --tamper NAME adds a pre-processor after the page's that replaces the
// checksum of the file NAME with the SHA-256 of the empty file: a declared
// checksum that does not match the bytes.
//
// It does not judge the outcomes: module/integration/browser_uppy_test.go
// does. Exit 0 when every file got a row; nonzero, with a message on
// stderr, when the harness itself failed (browser, page, timeout).
//
//   node uppy.mjs --url http://127.0.0.1:8080 --files DIR --artifacts DIR
//     [--timeout 80000] [--chromium /usr/bin/chromium] [--tamper NAME]

import { mkdir, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { HarnessError, launch, setup } from "./harness.mjs";

const { args, fail, site } = setup("uppy.mjs", ["url", "files", "artifacts"], { tamper: { type: "string" } });
const siteOrigin = new URL(site).origin;

const STEP_TIMEOUT = 20_000;
const UPLOAD_TIMEOUT = 50_000; // all files, from the click on Upload

const DASHBOARD_INPUT = '#uppy input.uppy-Dashboard-input[name="files[]"]';
const UPLOAD_BUTTON = "#uppy .uppy-StatusBar-actionBtn--upload";
const EMPTY_SHA256 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; // of zero bytes

async function main() {
  const files = [];
  for (const name of (await readdir(args.files)).sort()) {
    const p = path.join(args.files, name);
    if ((await stat(p)).isFile()) files.push({ name, path: p });
  }
  if (files.length === 0) throw new HarnessError(`no files in ${args.files}`);
  await mkdir(args.artifacts, { recursive: true });
  const shot = (name) => path.join(args.artifacts, name);

  const browser = await launch(args.chromium);
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    page.setDefaultTimeout(STEP_TIMEOUT);
    const log = (line) => process.stderr.write(`[page] ${line}\n`);
    page.on("console", (m) => log(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => log(`error: ${e.message}`));
    page.on("requestfailed", (r) => log(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));

    const requests = [];
    const pending = []; // reading the bodies of Uppy's grant answers
    const assets = {};
    page.on("response", (r) => {
      const u = new URL(r.url());
      const method = r.request().method();
      if (u.origin === siteOrigin && u.pathname.startsWith("/static/uppy")) assets[u.pathname] = r.status();
      if (r.status() >= 400) log(`${method} ${r.url().split("?")[0]} answered ${r.status()}`);
      if (method === "OPTIONS") return; // CORS preflights
      if (u.origin === siteOrigin ? u.pathname.startsWith("/files") : u.protocol.startsWith("http")) {
        const entry = {
          method,
          host: u.origin === siteOrigin ? "site" : "bucket",
          path: u.pathname,
          part: Number(u.searchParams.get("partNumber")) || 0,
          status: r.status(),
        };
        requests.push(entry);
        if (entry.host === "site" && u.pathname === "/files/s3/params") {
          entry.filename = u.searchParams.get("filename") || "";
          entry.checksum = u.searchParams.get("metadata[checksum_sha256]") || "";
          pending.push(
            r
              .json()
              .then((g) => {
                entry.grant_key = (g.fields && g.fields.key) || "";
                entry.grant_checksum = (g.fields && g.fields["x-amz-checksum-sha256"]) || "";
              })
              .catch(() => {}),
          );
        } else if (entry.host === "site" && u.pathname === "/files/s3/multipart" && method === "POST") {
          try {
            const body = JSON.parse(r.request().postData() || "{}");
            entry.filename = body.filename || "";
            entry.checksum = (body.metadata && body.metadata.checksum_sha256) || "";
          } catch {
            // not JSON: leave them out
          }
        }
      }
    });

    const resp = await page.goto(site + "/", { waitUntil: "load" });
    if (!resp || resp.status() !== 200) throw new HarnessError(`GET ${site}/ answered ${resp ? resp.status() : "nothing"}`);
    for (const asset of ["/static/uppy-tab.js", "/static/uppy/uppy.min.js", "/static/uppy/uppy.min.css"]) {
      if (assets[asset] !== 200) throw new HarnessError(`the page could not load ${asset} (status ${assets[asset] ?? "none"})`);
    }

    // The plain uploader is the default tab; Uppy's is hidden until chosen.
    if (await page.isVisible("#uppy")) throw new HarnessError("the Uppy tab is visible before it was chosen");
    await page.click("#tab-uppy");
    try {
      await page.waitForSelector("#uppy .uppy-Dashboard", { state: "visible" });
    } catch (err) {
      await page.screenshot({ path: shot("uppy-timeout.png"), fullPage: true }).catch(() => {});
      throw new HarnessError(`no Uppy Dashboard in #uppy: ${err.message.split("\n")[0]}`);
    }
    if (await page.isVisible("#file-input")) throw new HarnessError("the plain uploader is still visible in the Uppy tab");

    // Hashing progress per file name, and the tampering pre-processor.
    await page.evaluate(
      ({ tamper, wrong }) => {
        window.hashProgress = {};
        window.uppy.on("preprocess-progress", (f, p) => {
          if (f && p && p.mode === "determinate") (window.hashProgress[f.name] ||= []).push(p.value);
        });
        if (tamper) {
          window.uppy.addPreProcessor(async (ids) => {
            for (const id of ids) {
              if (window.uppy.getFile(id)?.name === tamper) window.uppy.setFileMeta(id, { checksum_sha256: wrong });
            }
          });
        }
      },
      { tamper: args.tamper || "", wrong: EMPTY_SHA256 },
    );

    await page.locator(DASHBOARD_INPUT).first().setInputFiles(files.map((f) => f.path));
    await page.waitForFunction((n) => window.uppy && window.uppy.getFiles().length === n, files.length);
    await page.click(UPLOAD_BUTTON);

    const names = files.map((f) => f.name);
    try {
      await page.waitForFunction(
        (names) => {
          const rows = [...document.querySelectorAll("#uppy-results li")];
          return names.every((n) => rows.some((r) => r.dataset.name === n));
        },
        names,
        { timeout: UPLOAD_TIMEOUT, polling: 200 },
      );
    } catch (err) {
      await page.screenshot({ path: shot("uppy-timeout.png"), fullPage: true }).catch(() => {});
      const have = await page.$$eval("#uppy-results li", (rows) => rows.map((r) => r.dataset.name)).catch(() => []);
      throw new HarnessError(`rows for ${JSON.stringify(names)} within ${UPLOAD_TIMEOUT} ms: have ${JSON.stringify(have)}: ${err.message.split("\n")[0]}`);
    }
    // Let Uppy settle its own state (post-processing, the final status bar).
    await page.waitForFunction(() => !window.uppy.getFiles().some((f) => f.progress.postprocess), null, { timeout: 5_000 }).catch(() => {});

    const outcomes = await page.$$eval("#uppy-results li", (rows) =>
      rows.map((r) => {
        const text = (sel) => (r.querySelector(sel)?.innerText || "").trim();
        return {
          name: r.dataset.name,
          state: r.dataset.state || "",
          status: text(".status"),
          key: r.dataset.key || "",
          multipart: r.dataset.multipart === "true",
          parts: Number(r.dataset.parts || 0),
          detail: [...r.querySelectorAll(".detail")].map((d) => d.innerText.trim()).join("\n"),
          text: r.innerText.trim(),
        };
      }),
    );
    const uppyFiles = await page.evaluate(() =>
      window.uppy.getFiles().map((f) => ({
        name: f.name,
        type: f.type,
        size: f.size,
        error: f.error || "",
        upload_complete: Boolean(f.progress && f.progress.uploadComplete),
        checksum: f.meta.checksum_sha256 || "",
        hash_progress: window.hashProgress[f.name] || [],
      })),
    );

    // Let the "Backend saw" panel show this run's webhooks before the
    // screenshot (it polls every 2 s); not having them is no harness error.
    await page
      .waitForFunction(
        (names) => {
          const seen = [...document.querySelectorAll("#webhooks .event .filename")].map((e) => e.textContent);
          return names.every((n) => seen.includes(n));
        },
        names,
        { timeout: 6_000, polling: 250 },
      )
      .catch(() => {});
    await page.screenshot({ path: shot("uppy-after-uploads.png"), fullPage: true });
    await Promise.all(pending);

    process.stdout.write(JSON.stringify({ outcomes, uppy: uppyFiles, requests }) + "\n");
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (err) => fail(err instanceof HarnessError ? err.message : err && err.stack ? err.stack : String(err)),
);
