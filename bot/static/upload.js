// The upload page. Files and whole folders are sent in chunks cut with File.slice (a file of
// several GB is never read whole), retried with backoff from the offset the server confirms,
// and resumed after a reload: a file chosen again is matched by its fingerprint (relative
// path, name, size, last modified) and continues where it stopped. When everything has
// arrived the page tells the server "done", which tells the chat.
"use strict";

(() => {
  const texts = JSON.parse(document.getElementById("texts").textContent);
  const lang = document.documentElement.lang || "en";
  const base = location.pathname.replace(/\/+$/, "");
  const WORKERS = 3; // a CD holds thousands of small files: a few at once hides the latency
  const FIRST_DELAY_MS = 1000;
  const MAX_DELAY_MS = 30000;
  const DEFAULT_CHUNK = 8 * 1024 * 1024;
  const SKIPPED = new Set([".DS_Store", "Thumbs.db", "desktop.ini"]);
  const NOTES = {
    waiting: "waiting",
    sending: "sending",
    retrying: "retrying",
    done: "arrived",
    failed: "failed",
    unfinished: "unfinished",
  };
  const percent = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 0 });
  const count = new Intl.NumberFormat(lang);

  const list = document.getElementById("files");
  const summary = document.getElementById("summary");
  const status = document.getElementById("status");
  const items = new Map(); // fingerprint -> item
  const queue = [];
  let running = 0;
  let linkInvalid = false;
  let announcing = false;
  let unreported = false; // something arrived that the chat has not been told about

  class HttpError extends Error {
    constructor(code, body) {
      super(`HTTP ${code}`);
      this.code = code;
      this.body = body || {};
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function callJson(method, path, body) {
    const options = { method, cache: "no-store", headers: {} };
    if (body !== undefined) {
      options.body = JSON.stringify(body);
      options.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(base + path, options);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new HttpError(response.status, data);
    return data;
  }

  // XMLHttpRequest rather than fetch: it reports progress within a chunk.
  function putChunk(item, offset, end) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", `${base}/files/${encodeURIComponent(item.id)}?offset=${offset}`);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.onprogress = (event) => {
        item.inFlight = event.loaded;
        show(item);
      };
      xhr.onload = () => {
        let data = {};
        try {
          data = JSON.parse(xhr.responseText);
        } catch (error) {
          data = {};
        }
        if (xhr.status >= 200 && xhr.status < 300) resolve(data);
        else reject(new HttpError(xhr.status, data));
      };
      xhr.onerror = () => reject(new TypeError("network error"));
      xhr.onabort = xhr.onerror;
      xhr.ontimeout = xhr.onerror;
      xhr.send(item.file.slice(offset, end));
    });
  }

  function row(item) {
    const li = document.createElement("li");
    const name = document.createElement("bdi");
    name.className = "name";
    name.textContent = item.label;
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    const share = document.createElement("span");
    share.className = "percent";
    const note = document.createElement("span");
    note.className = "note";
    li.append(name, bar, share, note);
    list.append(li);
    return { li, bar, share, note };
  }

  function show(item) {
    const sent = Math.min(item.size, item.received + item.inFlight);
    const fraction = item.size ? sent / item.size : item.state === "done" ? 1 : 0;
    item.view.li.dataset.state = item.state;
    item.view.bar.value = fraction;
    item.view.share.textContent = percent.format(fraction);
    item.view.note.textContent = item.message || texts[NOTES[item.state]];
    updateSummary();
  }

  function updateSummary() {
    const all = [...items.values()];
    const done = all.filter((item) => item.state === "done").length;
    summary.textContent = all.length
      ? texts.summary
          .replace("{done}", count.format(done))
          .replace("{total}", count.format(all.length))
      : "";
  }

  function add(file, path) {
    if (linkInvalid || SKIPPED.has(file.name)) return;
    const fingerprint = [path, file.name, file.size, file.lastModified].join("|");
    let item = items.get(fingerprint);
    // Chosen twice, or arrived on an earlier visit: nothing to send.
    if (item && (item.state === "done" || (item.file && item.state !== "failed"))) return;
    if (!item) {
      item = { fingerprint, label: path || file.name, size: file.size, received: 0 };
      item.view = row(item);
      items.set(fingerprint, item);
    }
    Object.assign(item, { file, path, id: null, state: "waiting", message: "", inFlight: 0 });
    show(item);
    queue.push(item);
    pump();
  }

  function pump() {
    while (running < WORKERS && queue.length && !linkInvalid) {
      const item = queue.shift();
      running += 1;
      document.body.dataset.state = "sending";
      status.textContent = "";
      send(item)
        .then((arrived) => {
          if (arrived) unreported = true;
        })
        .finally(() => {
          running -= 1;
          pump();
          finish();
        });
    }
  }

  async function send(item) {
    let delay = FIRST_DELAY_MS;
    let synced = false;
    while (!linkInvalid) {
      try {
        if (!synced) {
          // Starts the upload, or finds the one begun before (after a reload or an error),
          // with the offset the server holds.
          const state = await callJson("POST", "/files", {
            name: item.file.name,
            relative_path: item.path,
            size: item.file.size,
            fingerprint: item.fingerprint,
          });
          item.id = state.id;
          item.received = state.received;
          item.chunk = state.chunk_size || DEFAULT_CHUNK;
          synced = true;
        }
        item.state = "sending";
        item.message = "";
        show(item);
        while (item.received < item.size) {
          const end = Math.min(item.received + item.chunk, item.size);
          const result = await putChunk(item, item.received, end);
          item.received = result.received;
          item.inFlight = 0;
          delay = FIRST_DELAY_MS;
          show(item);
        }
        item.state = "done";
        show(item);
        return true;
      } catch (error) {
        item.inFlight = 0;
        if (error instanceof HttpError) {
          const body = error.body;
          if (body.error === "link_invalid") {
            invalidate();
            return false;
          }
          if (error.code === 413 || error.code === 400) {
            item.state = "failed";
            // The server says why in the link's language (no space left, an empty file).
            item.message = body.message || (body.error === "too_large" ? texts.noSpace : "");
            show(item);
            return false;
          }
          if (error.code === 409 && typeof body.received === "number") {
            const moved = body.received !== item.received;
            item.received = body.received;
            // The server holds another offset: carry on from there at once. The same
            // offset means an earlier request of ours is still writing: wait for it.
            if (moved) continue;
          }
        }
        // The network or the server failed (or its disk is full, and it says so): wait, then
        // ask the server where it stands.
        synced = false;
        item.message = (error instanceof HttpError && error.body.message) || "";
        item.state = "retrying";
        show(item);
        await sleep(delay);
        delay = Math.min(delay * 2, MAX_DELAY_MS);
      }
    }
    return false;
  }

  async function finish() {
    if (running || queue.length || linkInvalid || announcing || !unreported) return;
    announcing = true;
    status.textContent = texts.telling;
    let delay = FIRST_DELAY_MS;
    while (!linkInvalid) {
      unreported = false;
      try {
        await callJson("POST", "/done");
        break;
      } catch (error) {
        unreported = true;
        if (error instanceof HttpError && error.body.error === "link_invalid") invalidate();
        else await sleep(delay);
        delay = Math.min(delay * 2, MAX_DELAY_MS);
      }
    }
    announcing = false;
    if (linkInvalid || running || queue.length) return;
    if (unreported) {
      finish(); // more files arrived while the chat was being told
      return;
    }
    status.textContent = texts.finished;
    document.body.dataset.state = "finished";
  }

  function invalidate() {
    linkInvalid = true;
    queue.length = 0;
    status.textContent = texts.linkInvalid;
    document.body.dataset.state = "invalid";
  }

  // Files begun on an earlier visit: shown, so the patient knows what to choose again.
  async function showEarlier() {
    try {
      const data = await callJson("GET", "/files");
      for (const state of data.files) {
        if (items.has(state.fingerprint)) continue;
        const item = {
          fingerprint: state.fingerprint,
          label: state.relative_path || state.name,
          size: state.size,
          received: state.received,
          state: state.complete ? "done" : "unfinished",
          message: "",
          inFlight: 0,
          file: null,
        };
        item.view = row(item);
        items.set(item.fingerprint, item);
        show(item);
      }
    } catch (error) {
      if (error instanceof HttpError && error.body.error === "link_invalid") invalidate();
    }
  }

  for (const input of document.querySelectorAll("input.picker")) {
    input.addEventListener("change", () => {
      for (const file of input.files) add(file, file.webkitRelativePath || "");
      input.value = ""; // so the same files can be chosen again
    });
  }

  async function walk(entry) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      const path = entry.fullPath.replace(/^\/+/, "");
      // A loose file has no folder path, as when it is chosen with the file picker.
      add(file, path.includes("/") ? path : "");
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child);
      }
    }
  }

  const drop = document.getElementById("drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    // Entries must be taken during the event; the transfer is emptied after it.
    const entries = [...event.dataTransfer.items]
      .filter((entry) => entry.kind === "file")
      .map((entry) => (entry.webkitGetAsEntry ? entry.webkitGetAsEntry() : null));
    if (entries.length && entries.every(Boolean)) {
      for (const entry of entries) walk(entry).catch(() => {});
    } else {
      for (const file of event.dataTransfer.files) add(file, "");
    }
  });
  // A file dropped beside the zone must not make the browser open it and leave this page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  showEarlier();
})();
