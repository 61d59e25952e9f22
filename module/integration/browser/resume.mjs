#!/usr/bin/env node
// resume.mjs checks that the plain browser client (direct-upload.js)
// resumes a multipart upload after a page reload, in a real Chromium on
// the demo page of a running stack:
//
//   1. it starts two multipart uploads (A: 28 MiB, 4 parts of 8 MiB;
//      B: 12 MiB, 2 parts) and lets only part 1 of each reach the bucket
//      (the other part PUTs are held by request interception);
//   2. once the client has saved part 1 of both as done, it reloads the
//      page; B's saved expiry is then moved into the past;
//   3. pendingUploads() must list A alone; uploading A again with a resume
//      callback that accepts resumes it (only the missing parts are PUT);
//      uploading B again starts over (its expired intent is not offered).
//
// Every PUT of a part URL is counted by intent id (from the object key in
// its path) and part number. Prints ONE JSON line:
//
//   {"first":{"a":ID,"b":ID},"pending":[...],"offered":{...},"a":{...complete's answer},
//    "b":{...},"b_offered":bool,"puts":[{"phase":1|2,"id":ID,"part":N}],"left":{...localStorage}}
//
//   node resume.mjs --url http://127.0.0.1:8080 --endpoint /files

import { launch, setup } from "./harness.mjs";

const { args, site } = setup("resume.mjs", ["url"], { endpoint: { type: "string", default: "/files" } });
const browser = await launch(args.chromium);
try {
  const page = await browser.newPage();
  let phase = 1;
  const puts = [];
  const held = [];
  const partOf = (u) => {
    const url = new URL(u);
    const part = Number(url.searchParams.get("partNumber"));
    const m = /\/([0-9a-z]{26})\.[a-z0-9]+$/.exec(url.pathname);
    return { part, id: m ? m[1] : url.pathname };
  };
  page.on("request", (req) => {
    if (req.method() === "PUT" && req.url().includes("partNumber=")) puts.push({ phase, ...partOf(req.url()) });
  });
  await page.route((url) => url.searchParams.has("partNumber"), (route) => {
    if (phase === 1 && partOf(route.request().url()).part !== 1) {
      held.push(route); // never answered: the reload cuts it
      return;
    }
    route.continue();
  });

  await page.goto(site + "/");
  const files = `
    window.testFile = (name, n) => {
      const b = new Uint8Array(n);
      b.set([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00]);
      for (let i = 6; i < n; i += 4096) b[i] = (i >> 12) & 0xff;
      return new File([b], name, { type: "application/zip", lastModified: 1764547200000 });
    };`;
  const first = await page.evaluate(async ({ endpoint, files }) => {
    (0, eval)(files);
    const { upload } = await import(endpoint + "/direct-upload.js");
    const opts = { endpoint, multipartThreshold: 5 * 1024 * 1024 };
    // Not awaited: these never finish on this page.
    upload(testFile("a.zip", 28 * 1024 * 1024), opts).catch(() => {});
    upload(testFile("b.zip", 12 * 1024 * 1024), opts).catch(() => {});
    const saved = () => Object.keys(localStorage).filter((k) => k.startsWith("direct-upload:resume:")).map((k) => JSON.parse(localStorage.getItem(k)));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (Date.now() > deadline) throw new Error("after 30 s the client had not saved part 1 of both uploads as done: " + JSON.stringify(saved()));
      const recs = saved();
      if (recs.length === 2 && recs.every((r) => r.done.includes(1))) {
        const by = Object.fromEntries(recs.map((r) => [r.name, r.id]));
        return { a: by["a.zip"], b: by["b.zip"] };
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }, { endpoint: args.endpoint, files });

  phase = 2;
  await page.reload();
  for (const r of held) await r.abort().catch(() => {});

  const out = await page.evaluate(async ({ endpoint, files }) => {
    (0, eval)(files);
    const { upload, pendingUploads } = await import(endpoint + "/direct-upload.js");
    // B's permission has run out, as far as the saved state knows.
    for (const k of Object.keys(localStorage)) {
      const r = JSON.parse(localStorage.getItem(k));
      if (r.name === "b.zip") localStorage.setItem(k, JSON.stringify({ ...r, expiresAt: Date.now() - 1000 }));
    }
    const pending = pendingUploads({ endpoint });
    let offered = null;
    let bOffered = false;
    const opts = { endpoint, multipartThreshold: 5 * 1024 * 1024 };
    const a = await upload(testFile("a.zip", 28 * 1024 * 1024), { ...opts, resume: (info) => { offered = info; return true; } });
    const b = await upload(testFile("b.zip", 12 * 1024 * 1024), { ...opts, resume: () => { bOffered = true; return true; } });
    return { pending, offered, a, b, b_offered: bOffered, left: { ...localStorage } };
  }, { endpoint: args.endpoint, files });
  process.stdout.write(JSON.stringify({ first, puts, ...out }) + "\n");
} finally {
  await browser.close();
}
