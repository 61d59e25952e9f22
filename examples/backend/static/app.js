// Demo page for direct_upload. Each file goes through the five steps with
// the plugin's own client, /uploads/direct-upload.js:
//   1. POST /uploads                 ask for an upload form (201)
//   2-4. POST the form + file to S3  straight from the browser (201)
//   5. POST /uploads/{id}/complete   let the server verify the object
//      or POST /uploads/{id}/fail    when the upload to S3 failed.
// When the backend answers the plugin's webhook quickly, the answer of
// /complete carries the backend's JSON reply as "backend"; its message is
// shown under the file as "Backend: ...".
//
// This is an ES module (index.html loads it with type="module").
import { upload, DirectUploadError } from "/uploads/direct-upload.js";

(() => {
  const PARALLEL = 3; // uploads running at once
  const COMPLETE_RETRIES = 5; // retries of /complete while the object is not visible yet
  const WEBHOOK_POLL_MS = 2000;

  // ---- tabs: the plain uploader (default) and Uppy (uppy-tab.js) --------

  const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
  function selectTab(tab) {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      const panel = document.getElementById(t.getAttribute("aria-controls"));
      if (panel) panel.hidden = !on;
    }
  }
  for (const [i, tab] of tabs.entries()) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (e) => {
      const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      selectTab(next);
      next.focus();
    });
  }

  const input = document.getElementById("file-input");
  const drop = document.getElementById("drop-zone");
  const list = document.getElementById("uploads");

  // ---- picking files ------------------------------------------------------

  input.addEventListener("change", () => {
    const files = Array.from(input.files);
    input.value = ""; // so choosing the same file again fires "change"
    enqueue(files);
  });

  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const ev of ["dragleave", "dragend"]) {
    drop.addEventListener(ev, () => drop.classList.remove("over"));
  }
  // A file dropped beside the zone would make the browser navigate to it.
  for (const ev of ["dragover", "drop"]) {
    window.addEventListener(ev, (e) => e.preventDefault());
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    enqueue(Array.from(e.dataTransfer.files));
  });

  // ---- a small queue, so many files do not all start at once -------------

  const queue = [];
  let running = 0;

  function enqueue(files) {
    for (const file of files) queue.push({ file, row: addRow(file) });
    pump();
  }

  function pump() {
    while (running < PARALLEL && queue.length > 0) {
      const job = queue.shift();
      running++;
      uploadOne(job.file, job.row)
        .catch((err) => {
          console.error(err);
          job.row.finish("error", "error: client_error", String(err && err.message ? err.message : err));
        })
        .finally(() => {
          running--;
          pump();
        });
    }
  }

  // ---- one row per file ---------------------------------------------------

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function addRow(file) {
    // One row per file name, so .upload[data-name="..."] stays unique: a new
    // upload of the same name replaces the old row.
    for (const old of list.querySelectorAll(".upload")) {
      if (old.dataset.name === file.name) {
        old.remove();
        if (old.dataset.thumb) URL.revokeObjectURL(old.dataset.thumb);
      }
    }

    const li = el("li", "upload state-pending");
    li.dataset.name = file.name;

    const thumb = el("div", "thumb");
    if (file.type.startsWith("image/")) {
      const url = URL.createObjectURL(file);
      li.dataset.thumb = url;
      const img = el("img");
      img.src = url;
      img.alt = "";
      thumb.append(img);
    } else {
      thumb.textContent = "📄";
    }

    const body = el("div", "body");
    const head = el("div", "head");
    head.append(el("span", "name", file.name), el("span", "size", formatSize(file.size)));
    const progressEl = el("progress", "progress");
    progressEl.max = 100;
    progressEl.value = 0;
    const foot = el("div", "foot");
    const statusEl = el("span", "status", "waiting");
    const keyEl = el("code", "key");
    foot.append(statusEl, keyEl);
    const detailEl = el("div", "detail");
    body.append(head, progressEl, foot, detailEl);

    li.append(thumb, body);
    list.prepend(li);

    return {
      el: li,
      progress(pct) {
        progressEl.value = Math.max(0, Math.min(100, Math.round(pct)));
      },
      step(text) {
        statusEl.textContent = text;
      },
      key(k) {
        if (k) keyEl.textContent = k;
      },
      detail(text) {
        detailEl.textContent = text || "";
      },
      // backend adds the backend's reply to the webhook below the detail.
      backend(message) {
        detailEl.append(el("div", "backend-message", "Backend: " + message));
      },
      // finish sets the final state: completed, rejected, failed or error.
      finish(state, text, detailText) {
        li.classList.remove("state-pending");
        li.classList.add("state-" + state);
        statusEl.textContent = text;
        if (detailText !== undefined) detailEl.textContent = detailText;
      },
    };
  }

  // ---- the upload flow: direct-upload.js does the five steps --------------

  async function uploadOne(file, row) {
    row.step("requesting");
    let result;
    try {
      result = await upload(file, {
        endpoint: "/uploads",
        metadata: { source: "demo page" },
        completeRetries: COMPLETE_RETRIES,
        onProgress: ({ percent }) => {
          // 0 once the bucket transfer starts, 100 once the bucket has it.
          row.step(percent < 100 ? "uploading" : "verifying");
          row.progress(percent);
        },
      });
    } catch (err) {
      if (!(err instanceof DirectUploadError)) throw err;
      if (err.intent) row.key(err.intent.key);
      if (err.code === "upload_rejected") {
        // The server deleted the object: its content did not match.
        row.finish("rejected", "rejected", err.message + (err.reason ? " (" + err.reason + ")" : ""));
        showBackend(row, err.intent);
      } else if (err.stage === "transfer") {
        // The bucket refused the file or could not be reached; the client
        // told the server, which removed whatever may have arrived.
        row.finish("failed", "failed", err.message);
      } else {
        row.finish("error", "error: " + err.code, err.message);
      }
      return;
    }
    row.key(result.key);
    const bits = [formatSize(result.size), result.content_type];
    if (result.etag) bits.push("ETag " + result.etag);
    row.finish("completed", "completed", bits.filter(Boolean).join(" · "));
    showBackend(row, result);
  }

  // showBackend shows what the backend made of the upload, when the plugin
  // passed on the backend's answer to its webhook ("backend": {...}). The
  // backend may answer later than the plugin waits; then there is none and
  // the "Backend saw" panel shows the event once it arrives.
  function showBackend(row, body) {
    const b = body && body.backend;
    if (!b || typeof b !== "object") return;
    const msg = typeof b.message === "string" ? b.message.trim() : "";
    if (msg) row.backend(msg.length > 300 ? msg.slice(0, 299) + "…" : msg);
  }

  // ---- helpers ------------------------------------------------------------

  function formatSize(n) {
    if (typeof n !== "number" || !isFinite(n)) return "";
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }

  // ---- "Backend saw": the webhook events the backend received -------------

  const hooks = document.getElementById("webhooks");
  let lastHooks = "";

  async function pollWebhooks() {
    if (document.hidden) return;
    let events;
    try {
      const res = await fetch("/webhooks/uploads", {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!res.ok) return;
      events = await res.json();
    } catch {
      return; // backend restarting; try again on the next tick
    }
    if (!Array.isArray(events)) return;
    const sig = JSON.stringify(events.slice(0, 20));
    if (sig === lastHooks) return;
    lastHooks = sig;

    hooks.replaceChildren();
    if (events.length === 0) {
      hooks.append(el("li", "empty", "no webhooks received yet"));
      return;
    }
    for (const ev of events.slice(0, 20)) {
      const p = ev.payload && typeof ev.payload === "object" ? ev.payload : {};
      const data = p.data && typeof p.data === "object" ? p.data : {};
      const li = el("li", "event");
      li.append(el("span", "type", typeof p.type === "string" ? p.type : "(no type)"));
      if (data.id) li.append(el("code", "id", String(data.id)));
      if (data.filename) li.append(el("span", "filename", String(data.filename)));
      li.append(
        ev.verified
          ? el("span", "badge verified", "verified")
          : el("span", "badge unverified", "unverified"),
      );
      if (ev.duplicate_deliveries > 0) {
        const n = ev.duplicate_deliveries;
        li.append(el("span", "retries", "+" + n + (n === 1 ? " retry" : " retries")));
      }
      if (ev.message) li.title = ev.message;
      const t = new Date(ev.received_at);
      li.append(el("time", "when", isNaN(t) ? "" : t.toLocaleTimeString()));
      hooks.append(li);
    }
  }

  pollWebhooks();
  setInterval(pollWebhooks, WEBHOOK_POLL_MS);
})();
