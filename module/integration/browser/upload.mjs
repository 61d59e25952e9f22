#!/usr/bin/env node
// upload.mjs drives a real Chromium through the demo page of a running
// stack (Caddy with Caddyfile.example, the example backend, an S3 server):
// it opens the page, uploads every file of --files through the page's file
// input, one after the other, waits for each row's final status, takes a
// full-page screenshot, and prints ONE JSON line on stdout:
//
//   [{"name","status","state","max_progress","progress":[...],"key","detail"}, ...]
//
// It does not judge the outcomes: module/integration/browser_test.go does.
// Exit 0 when every row reached a final status; nonzero, with a message on
// stderr, when the harness itself failed (browser, page, timeout).
//
//   node upload.mjs --url http://127.0.0.1:8080 --files DIR --artifacts DIR
//     [--timeout 80000] [--chromium /usr/bin/chromium]

import { mkdir, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { HarnessError, launch, setup } from "./harness.mjs";

const { args, fail, site } = setup("upload.mjs", ["url", "files", "artifacts"]);
const ROW_TIMEOUT = 30_000;

// Installed in the page before its scripts run: records every value each
// row's <progress> takes, by the row's data-name.
function recordProgress() {
  const seen = (window.__progress = {});
  const note = (bar) => {
    const row = bar.closest(".upload");
    if (!row || !row.dataset.name) return;
    const list = (seen[row.dataset.name] ||= []);
    const v = Number(bar.value);
    if (list[list.length - 1] !== v) list.push(v);
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "attributes" && r.target.matches("progress.progress")) note(r.target);
      for (const n of r.addedNodes || []) {
        if (n.nodeType === 1) n.querySelectorAll("progress.progress").forEach(note);
      }
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["value"] });
}

async function main() {
  const files = [];
  for (const name of (await readdir(args.files)).sort()) {
    const p = path.join(args.files, name);
    if ((await stat(p)).isFile()) files.push({ name, path: p });
  }
  if (files.length === 0) throw new HarnessError(`no files in ${args.files}`);
  await mkdir(args.artifacts, { recursive: true });

  const browser = await launch(args.chromium);
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    page.setDefaultTimeout(ROW_TIMEOUT);
    const log = (line) => process.stderr.write(`[page] ${line}\n`);
    page.on("console", (m) => log(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => log(`error: ${e.message}`));
    page.on("requestfailed", (r) => log(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
    let clientStatus = 0;
    page.on("response", (r) => {
      if (new URL(r.url()).pathname === "/uploads/direct-upload.js") clientStatus = r.status();
      if (r.status() >= 400) log(`${r.request().method()} ${r.url()} answered ${r.status()}`);
    });
    await page.addInitScript(recordProgress);

    const resp = await page.goto(site + "/", { waitUntil: "load" });
    if (!resp || resp.status() !== 200) throw new HarnessError(`GET ${site}/ answered ${resp ? resp.status() : "nothing"}`);
    // Module scripts run before "load"; without the client the page is dead.
    if (clientStatus !== 200) throw new HarnessError(`the page could not load /uploads/direct-upload.js (status ${clientStatus})`);

    const outcomes = [];
    for (const f of files) {
      await page.setInputFiles("#file-input", f.path);
      try {
        await page.waitForFunction(
          (name) => {
            const row = [...document.querySelectorAll(".upload")].find((r) => r.dataset.name === name);
            return row && !row.classList.contains("state-pending");
          },
          f.name,
          { timeout: ROW_TIMEOUT },
        );
      } catch (err) {
        await page.screenshot({ path: path.join(args.artifacts, "demo-timeout.png"), fullPage: true }).catch(() => {});
        throw new HarnessError(`${f.name}: no final status within ${ROW_TIMEOUT} ms: ${err.message.split("\n")[0]}`);
      }
      outcomes.push(
        await page.evaluate((name) => {
          const row = [...document.querySelectorAll(".upload")].find((r) => r.dataset.name === name);
          // innerText: the backend's answer is on its own line in .detail.
          const text = (sel) => (row.querySelector(sel)?.innerText || "").trim();
          const values = (window.__progress && window.__progress[name]) || [];
          const bar = row.querySelector("progress.progress");
          return {
            name,
            status: text(".status"),
            state: [...row.classList].find((c) => c.startsWith("state-"))?.slice(6) || "",
            max_progress: Math.max(0, Number(bar ? bar.value : 0), ...values),
            progress: values,
            key: text(".key"),
            detail: text(".detail"),
          };
        }, f.name),
      );
    }

    // Let the "Backend saw" panel show the webhooks before the screenshot
    // (it polls every 2 s); not having them is no harness error.
    await page.waitForSelector("#webhooks .event", { timeout: 5_000 }).catch(() => {});
    await page.screenshot({ path: path.join(args.artifacts, "demo-after-uploads.png"), fullPage: true });

    process.stdout.write(JSON.stringify(outcomes) + "\n");
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (err) => fail(err instanceof HarnessError ? err.message : err && err.stack ? err.stack : String(err)),
);
