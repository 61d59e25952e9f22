// harness.mjs: what every browser script here shares: its command line,
// the bound on its run, and how Chromium is launched (Debian's binary,
// with the flags that keep it from dialling out).

import { chromium } from "playwright-core";
import { parseArgs } from "node:util";

/** A failure of the harness (not of an upload), reported without a stack. */
export class HarnessError extends Error {}

/** Launch flags: headless, and no background network of Chromium's own. */
export const LAUNCH_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Parses the common options (--url, --files, --artifacts, --timeout,
 * --chromium) plus extra ones, checks the required ones, and arms a
 * watchdog that ends the process after --timeout ms.
 */
export function setup(name, required, extra = {}) {
  const fail = (msg) => {
    process.stderr.write(`${name}: ${msg}\n`);
    process.exit(2);
  };
  const { values: args } = parseArgs({
    options: {
      url: { type: "string" },
      files: { type: "string" },
      artifacts: { type: "string" },
      timeout: { type: "string", default: "80000" },
      chromium: { type: "string", default: process.env.CHROMIUM_BIN || "/usr/bin/chromium" },
      ...extra,
    },
  });
  for (const r of required) {
    if (!args[r]) fail(`usage: node ${name} ${required.map((x) => `--${x} <${x}>`).join(" ")}`);
  }
  const timeout = Number(args.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0) fail(`bad --timeout ${args.timeout}`);
  // The whole run is bounded; the Go test has its own, longer, bound.
  setTimeout(() => fail(`timed out after ${timeout} ms`), timeout).unref();
  return { args, fail, site: args.url.replace(/\/+$/, "") };
}

/** Launches Debian's Chromium. */
export function launch(executablePath) {
  return chromium.launch({ executablePath, args: LAUNCH_ARGS, timeout: 30_000 });
}
