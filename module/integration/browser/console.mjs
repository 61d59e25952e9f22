// console.mjs: drives the operator console in Chromium for
// module/integration/console_test.go. It checks that basic_auth guards the
// page, logs in, presses Redeliver on the dead event and waits to see it
// delivered, searches the intent by identity and reads its story, takes a
// full-page screenshot, presses Redeliver all for --other-event, and prints
// ONE JSON line on stdout.
//
//   node console.mjs --url http://127.0.0.1:8080/_console/ --user ops --password PW \
//     --event evt_... [--other-event evt_...] --intent ID --identity USER --shot docs/console.png --artifacts DIR

import { mkdir } from "node:fs/promises";
import path from "node:path";
import { setup, launch } from "./harness.mjs";

const opt = { type: "string" };
const { args } = setup("console.mjs", ["url", "user", "password", "event", "intent", "identity", "shot", "artifacts"], {
  user: opt, password: opt, event: opt, "other-event": opt, intent: opt, identity: opt, shot: opt,
});

const out = { banner: "" };

// basic_auth in front: nothing without the right login.
const basic = (u, p) => ({ Authorization: "Basic " + Buffer.from(`${u}:${p}`).toString("base64") });
out.unauth_status = (await fetch(args.url)).status;
out.wrong_password_status = (await fetch(args.url, { headers: basic(args.user, args.password + "x") })).status;

await mkdir(args.artifacts, { recursive: true });
const browser = await launch(args.chromium);
try {
  const ctx = await browser.newContext({
    httpCredentials: { username: args.user, password: args.password },
    viewport: { width: 1360, height: 900 },
  });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

  await page.goto(args.url);
  out.operator = await page.textContent("#operator");

  // The dead event, and its Redeliver button.
  const row = page.locator(`#dead-rows tr[data-event-id="${args.event}"]`);
  await row.waitFor({ timeout: 20_000 });
  out.dead_row_found = true;
  await row.locator("button.redeliver").click();
  const stateOf = (id) => document.querySelector(`#dead-rows tr[data-event-id="${id}"] td.state`)?.textContent;
  try {
    await page.waitForFunction((id) => document.querySelector(`#dead-rows tr[data-event-id="${id}"] td.state`)?.textContent === "delivered",
      args.event, { timeout: 40_000 });
  } catch (e) {
    process.stderr.write(`waiting for delivered: ${e.message}\n`);
  }
  out.after_redeliver = await page.evaluate(stateOf, args.event);

  // Fresh page: the overview after the redelivery, then the intent's story.
  await page.reload();
  await page.waitForFunction(() => !document.getElementById("refreshed").textContent.startsWith("loading"), null, { timeout: 20_000 });
  await page.fill("#q", args.identity);
  await page.click("#search button[type=submit]");
  await page.waitForFunction(() => document.getElementById("search-note").textContent !== "", null, { timeout: 20_000 });
  out.search_rows = await page.$$eval("#intent-rows tr", (trs) => trs.map((tr) => tr.dataset.intentId));
  await page.click(`#intent-rows tr[data-intent-id="${args.intent}"]`);
  await page.locator("#story-deliveries tr").first().waitFor({ timeout: 20_000 });
  out.steps = await page.$$eval("#story-steps li", (lis) => lis.map((li) => li.textContent));
  out.story_deliveries = await page.$$eval("#story-deliveries tr", (trs) => trs.map((tr) => {
    const c = [...tr.children].map((td) => td.textContent);
    return { ID: c[0], State: c[2], Status: c[5], Latency: c[6], Endpoint: c[7] };
  }));
  await page.waitForFunction(() => document.getElementById("checks-body").textContent !== "loading…", null, { timeout: 20_000 });
  out.checks = await page.textContent("#checks-body");
  out.charts = await page.locator("#charts .card svg polyline.granted").count();
  out.health_rows = await page.$$eval("#health-rows tr", (trs) => trs.map((tr) => tr.innerText.replace(/\s+/g, " ").trim()));
  if (await page.isVisible("#banner")) out.banner = await page.textContent("#banner");
  out.page_text = (await page.innerText("body")) + "\n" + (await page.content());
  out.errors = errors;

  await mkdir(path.dirname(args.shot), { recursive: true });
  await page.screenshot({ path: args.shot, fullPage: true });

  // Last, Redeliver all brings the other dead event through.
  if (args["other-event"]) {
    const other = args["other-event"];
    await page.locator(`#dead-rows tr[data-event-id="${other}"]`).waitFor({ timeout: 20_000 });
    out.other_before_all = await page.evaluate(stateOf, other);
    await page.click("#redeliver-all");
    try {
      await page.waitForFunction((id) => document.querySelector(`#dead-rows tr[data-event-id="${id}"] td.state`)?.textContent === "delivered",
        other, { timeout: 40_000 });
    } catch (e) {
      process.stderr.write(`waiting for delivered after Redeliver all: ${e.message}\n`);
    }
    out.after_redeliver_all = await page.evaluate(stateOf, other);
    if (await page.isVisible("#banner")) out.banner = await page.textContent("#banner");
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
