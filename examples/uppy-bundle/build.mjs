// Builds the Uppy bundle the demo page serves, with what `npm ci` installed
// (no network): examples/backend/static/uppy/uppy.min.js (an ES module) and
// uppy.min.css. Both are committed; rebuild with `npm run build` after
// changing a version in package.json (then `npm install` to update the lock).
// The output is deterministic for the same package versions.
import * as esbuild from "esbuild";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.join(here, "..", "backend", "static", "uppy");
const outfile = path.join(outdir, "uppy.min.js");

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: ["entry.js"],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  platform: "browser",
  // Uppy's CSS has no url(): nothing to load from anywhere.
  outfile,
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
});

// Every npm package that ended up in the bundle, with its version and
// license, goes into a banner of both files (MIT asks for the notice).
const pkgs = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (!m || pkgs.has(m[1])) continue;
  const meta = JSON.parse(await readFile(path.join(here, "node_modules", m[1], "package.json"), "utf8"));
  pkgs.set(m[1], `${meta.name}@${meta.version} (${meta.license || "see package"})`);
}
const banner =
  "/*! Uppy bundle for the direct_upload demo, built by examples/uppy-bundle (npm run build).\n" +
  " * Contains: " + [...pkgs.keys()].sort().map((k) => pkgs.get(k)).join(", ") + ".\n" +
  " * Uppy is (c) Transloadit, MIT License: https://github.com/transloadit/uppy/blob/main/LICENSE */\n";

for (const file of Object.keys(result.metafile.outputs)) {
  const abs = path.join(here, file);
  const body = await readFile(abs, "utf8");
  await writeFile(abs, banner + body);
  const size = Buffer.byteLength(banner + body);
  console.log(`${path.relative(path.join(here, ".."), abs)}  ${(size / 1024).toFixed(1)} KiB`);
}
