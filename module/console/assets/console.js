// The operator console: reads the console's JSON endpoints (relative to
// the page) and draws them. Every value from the server goes in through
// textContent, never as HTML. Actions are POSTs carrying the page's token.

const token = document.querySelector('meta[name="console-token"]').content;
const $ = (id) => document.getElementById(id);
const SERIES = ["granted", "completed", "rejected", "failed", "expired"];

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ""));
  return e;
}

function svgEl(tag, attrs = {}) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function banner(msg) {
  const b = $("banner");
  b.textContent = msg || "";
  b.hidden = !msg;
}

async function api(path, opts = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...opts });
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) {
    const m = body && body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${res.status}`;
    throw new Error(m);
  }
  return body;
}

function post(path) {
  return api(path, { method: "POST", headers: { "X-Console-Token": token } });
}

const fmtTime = (s) => (s ? new Date(s).toLocaleTimeString() : "");
const fmtAge = (secs) => {
  if (!secs) return "";
  if (secs < 120) return `${Math.round(secs)} s`;
  if (secs < 7200) return `${Math.round(secs / 60)} min`;
  return `${(secs / 3600).toFixed(1)} h`;
};
const sum = (a) => a.reduce((x, y) => x + y, 0);

// chart draws one profile's last hour as an inline SVG line chart.
function chart(series) {
  const W = 320, H = 90, L = 26, B = 16, T = 6;
  const n = series.granted.length;
  const max = Math.max(1, ...SERIES.flatMap((k) => series[k]));
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img" });
  const x = (i) => L + (i * (W - L - 4)) / (n - 1);
  const y = (v) => H - B - (v * (H - B - T)) / max;
  svg.append(svgEl("line", { class: "axis", x1: L, y1: H - B, x2: W - 4, y2: H - B }));
  svg.append(svgEl("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
  const top = svgEl("text", { x: 2, y: T + 8 }); top.textContent = String(max); svg.append(top);
  const zero = svgEl("text", { x: 2, y: H - B }); zero.textContent = "0"; svg.append(zero);
  const t0 = svgEl("text", { x: L, y: H - 3 }); t0.textContent = "-60 min"; svg.append(t0);
  const t1 = svgEl("text", { x: W - 30, y: H - 3 }); t1.textContent = "now"; svg.append(t1);
  for (const k of SERIES) {
    const pts = series[k].map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const line = svgEl("polyline", { class: k, points: pts });
    const title = svgEl("title"); title.textContent = `${k}: ${series[k].join(", ")}`;
    line.append(title);
    svg.append(line);
  }
  return svg;
}

async function loadOverview() {
  const ov = await api("api/overview");
  const charts = $("charts");
  charts.replaceChildren();
  const rows = $("health-rows");
  rows.replaceChildren();
  for (const p of ov.profiles) {
    const s = p.series;
    charts.append(el("div", { class: "card", "data-profile": p.name },
      el("h3", {}, p.name, p.configured ? "" : " (not in the running config)"),
      chart(s),
      el("p", { class: "totals" }, SERIES.map((k) => `${sum(s[k])} ${k}`).join(" · "))));
    const h = p.webhook;
    rows.append(el("tr", { "data-profile": p.name },
      el("td", {}, p.name),
      el("td", { class: "mono" }, h.endpoint || "no webhook"),
      el("td", { class: "num" }, h.delivered_last_hour),
      el("td", { class: "num" }, h.pending),
      el("td", { class: "num" + (h.dead ? " state-dead" : "") }, h.dead),
      el("td", {}, fmtAge(h.oldest_pending_age_s)),
      el("td", {}, h.last_error ? `${fmtTime(h.last_error_at)} ${h.last_error_status || ""} ${h.last_error}` : "")));
  }
  if (!ov.profiles.length) charts.append(el("p", { class: "muted" }, "No profiles and no activity."));
  $("refreshed").textContent = `updated ${fmtTime(ov.now)}` + (ov.truncated ? " (counts bounded: large store)" : "");
}

// Dead deliveries, each with a Redeliver button.
async function loadDead() {
  const res = await api("api/dead");
  const rows = $("dead-rows");
  rows.replaceChildren();
  for (const d of res.deliveries) rows.append(deadRow(d));
  $("dead-empty").hidden = res.deliveries.length > 0;
  $("redeliver-all").disabled = res.deliveries.length === 0;
}

function deadRow(d) {
  const state = el("td", { class: `state state-${d.state}` }, d.state);
  const btn = el("button", { type: "button", class: "action redeliver" }, "Redeliver");
  const tr = el("tr", { "data-event-id": d.id, "data-intent-id": d.intent_id },
    el("td", { class: "mono" }, d.id),
    el("td", {}, d.type),
    el("td", {}, d.profile),
    el("td", {}, d.identity || ""),
    el("td", {}, [d.last_status || "", d.last_error || ""].join(" ").trim()),
    el("td", {}, fmtTime(d.last_attempt_at)),
    state,
    el("td", {}, btn));
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    try {
      const r = await post(`api/deliveries/${encodeURIComponent(d.id)}/redeliver`);
      setState(state, r.delivery.state);
      await follow(d.intent_id, d.id, state);
    } catch (e) {
      banner(`Redeliver ${d.id} failed: ${e.message}`);
      btn.disabled = false;
    }
  });
  return tr;
}

function setState(td, s) {
  td.textContent = s;
  td.className = `state state-${s}`;
}

// follow polls an event (through its intent's story) until its delivery
// is no longer pending, or 60 s pass.
async function follow(intentID, eventID, td) {
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    const st = await api(`api/intents/${encodeURIComponent(intentID)}`);
    const d = st.deliveries.find((x) => x.id === eventID);
    if (!d) return;
    setState(td, d.state);
    if (d.state !== "pending") return;
  }
}

$("redeliver-all").addEventListener("click", async () => {
  const btn = $("redeliver-all");
  btn.disabled = true;
  try {
    const r = await post("api/deliveries/redeliver");
    banner("");
    for (const tr of $("dead-rows").querySelectorAll("tr")) {
      const td = tr.querySelector("td.state");
      setState(td, "pending");
      follow(tr.dataset.intentId, tr.dataset.eventId, td);
    }
    $("refreshed").textContent = `redelivery requested for ${r.redelivered} event(s)`;
  } catch (e) {
    banner(`Redeliver all failed: ${e.message}`);
    btn.disabled = false;
  }
});

// Search and one intent's story.
$("search").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = new URLSearchParams({ q: $("q").value, status: $("status").value });
  try {
    const res = await api(`api/intents?${q}`);
    const rows = $("intent-rows");
    rows.replaceChildren();
    for (const it of res.intents) {
      const tr = el("tr", { "data-intent-id": it.id },
        el("td", { class: "mono" }, it.id), el("td", {}, it.profile),
        el("td", { class: `state-${it.status}` }, it.status), el("td", {}, it.identity || ""),
        el("td", { class: "mono" }, it.key), el("td", {}, fmtTime(it.created_at)));
      tr.addEventListener("click", () => {
        for (const x of rows.querySelectorAll("tr.selected")) x.classList.remove("selected");
        tr.classList.add("selected");
        showStory(it.id);
      });
      rows.append(tr);
    }
    $("search-note").textContent = `${res.intents.length} intent(s)` + (res.truncated ? ", the search stopped at its bound: narrow it" : "");
  } catch (e) {
    banner(`Search failed: ${e.message}`);
  }
});

async function showStory(id) {
  try {
    const st = await api(`api/intents/${encodeURIComponent(id)}`);
    $("story-id").textContent = id;
    const steps = $("story-steps");
    steps.replaceChildren();
    for (const s of st.steps) {
      steps.append(el("li", { class: `tone-${s.tone}` },
        el("time", { dateTime: s.at }, fmtTime(s.at)), el("strong", {}, s.what), s.detail ? ` · ${s.detail}` : ""));
    }
    const rows = $("story-deliveries");
    rows.replaceChildren();
    for (const d of st.deliveries) {
      rows.append(el("tr", { "data-event-id": d.id },
        el("td", { class: "mono" }, d.id), el("td", {}, d.type),
        el("td", { class: `state-${d.state}` }, d.state), el("td", { class: "num" }, d.attempts),
        el("td", {}, fmtTime(d.last_attempt_at)), el("td", {}, d.last_status || ""),
        el("td", { class: "num" }, d.last_latency_ms ? `${d.last_latency_ms.toFixed(1)} ms` : ""),
        el("td", { class: "mono" }, d.endpoint || ""), el("td", {}, d.last_error || "")));
    }
    $("story").hidden = false;
  } catch (e) {
    banner(`Loading ${id} failed: ${e.message}`);
  }
}

// Start-up checks: whatever the admin API's health reports, per profile.
async function loadChecks() {
  const box = $("checks-body");
  const res = await api("api/checks");
  box.replaceChildren();
  if (res.checks == null) {
    box.textContent = "no start-up checks available";
    return;
  }
  box.className = "";
  box.append(renderChecks(res.checks));
}

function renderChecks(v) {
  if (Array.isArray(v)) {
    const ul = el("ul");
    for (const x of v) ul.append(el("li", {}, renderChecks(x)));
    return ul;
  }
  if (v && typeof v === "object") {
    const ok = v.ok ?? (v.status ? v.status === "ok" : undefined);
    const dl = el("dl", { class: ok === undefined ? "" : ok ? "check-ok" : "check-bad" });
    for (const [k, x] of Object.entries(v)) {
      dl.append(el("dt", {}, k), el("dd", {}, x && typeof x === "object" ? renderChecks(x) : String(x)));
    }
    return dl;
  }
  return document.createTextNode(String(v));
}

async function refresh() {
  try {
    await Promise.all([loadOverview(), loadDead()]);
  } catch (e) {
    banner(`Refresh failed: ${e.message}`);
  }
}

refresh();
loadChecks().catch((e) => { $("checks-body").textContent = `start-up checks failed to load: ${e.message}`; });
setInterval(() => loadOverview().catch((e) => banner(`Refresh failed: ${e.message}`)), 15_000);
