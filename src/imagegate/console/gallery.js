// Gallery: recent outputs of succeeded tasks as a grid of server-made thumbnails, newest first, filtered
// by model (and by key, for an admin, across every key), paged with "Load more". A thumbnail needs the
// key, which an <img> cannot send: each is fetched as a blob and shown through an object URL, revoked
// when the grid is redrawn or the user signs out. A tile opens a dialog with the full image (its signed
// link needs no key), a Download link, the prompt and the parameters.

import { $, api, el, fact, option, showError, state, usd, when } from "./api.js";

const PAGE = 24;  // tasks per page (each may hold several images)
const AT_ONCE = 6;  // thumbnail requests in flight
let epoch = 0;  // bumped on every redraw: answers for an older grid are dropped
let cursor = null;
let objectUrls = [];
let queue = [];
let running = 0;
let opener = null;  // the tile that opened the dialog, focused again when it closes

function thumbSize() {
  return window.devicePixelRatio > 1.5 ? 512 : 256;
}

function listPath(after) {
  const q = new URLSearchParams({ status: "succeeded", limit: String(PAGE) });
  if ($("gallery-model").value) q.set("model", $("gallery-model").value);
  if (state.admin && $("gallery-key").value) q.set("key_id", $("gallery-key").value);
  if (after) q.set("after", after);
  return `${state.admin ? "admin/v1/tasks" : "v1/tasks"}?${q}`;
}

function revokeAll() {
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls = [];
  queue = [];
}

function tile(task, index) {
  const prompt = task.prompt || task.request?.prompt || "";
  const img = el("img", null, { alt: prompt || `Image ${index + 1} of task ${task.id}` });
  img.dataset.state = "loading";
  const button = el("button", null, { type: "button", className: "tile" });
  button.dataset.taskId = task.id;
  button.dataset.index = String(index);
  button.append(img);
  button.addEventListener("click", () => openDetail(task, index, button));
  const owner = state.admin ? task.key_name || task.key_id : null;
  const meta = el("span", [task.model, task.size, owner].filter(Boolean).join(" · "), { className: "tile-meta" });
  const li = el("li", null, { className: "tile-cell" });
  li.append(button, meta);
  queue.push({ task, index, img, mine: epoch });
  return li;
}

function pump() {
  while (running < AT_ONCE && queue.length) {
    const job = queue.shift();
    running += 1;
    loadThumb(job).finally(() => { running -= 1; pump(); });
  }
}

async function loadThumb({ task, index, img, mine }) {
  const path = `v1/tasks/${encodeURIComponent(task.id)}/images/${index}/thumbnail?size=${thumbSize()}`;
  try {
    const blob = await api("GET", path, undefined, { as: "blob" });
    if (mine !== epoch) return;
    const url = URL.createObjectURL(blob);
    objectUrls.push(url);
    img.addEventListener("load", () => { img.dataset.state = "loaded"; }, { once: true });
    img.src = url;
  } catch (err) {
    if (mine !== epoch) return;
    img.dataset.state = "missing";
    img.closest(".tile-cell")?.classList.add("missing");
    img.title = err.status === 404 ? "This image is no longer stored." : err.message;
  }
}

async function loadPage(reset) {
  const mine = reset ? ++epoch : epoch;
  const more = $("gallery-more");
  more.disabled = true;
  $("gallery-status").textContent = "Loading…";
  try {
    const listing = await api("GET", listPath(reset ? null : cursor));
    if (mine !== epoch) return;
    if (reset) {
      revokeAll();
      $("gallery-grid").replaceChildren();
    }
    const tasks = listing.data || [];
    addSeenModels(tasks.map((t) => t.model));
    const tiles = tasks.flatMap((task) => (task.data || []).map((_, i) => tile(task, i)));
    $("gallery-grid").append(...tiles);
    cursor = listing.has_more ? listing.next_cursor : null;
    more.hidden = !cursor;
    pump();
    showError($("gallery-error"), null);
    describe();
  } catch (err) {
    if (mine !== epoch) return;
    $("gallery-status").textContent = "";
    showError($("gallery-error"), err);
  } finally {
    more.disabled = false;
  }
}

function describe() {
  const n = $("gallery-grid").children.length;
  const filtered = $("gallery-model").value || (state.admin && $("gallery-key").value);
  $("gallery-status").textContent = n
    ? `${n} image(s)${cursor ? ", more below" : ""}.`
    : filtered ? "No images match these filters." : "No images yet: generate some in the Playground.";
}

async function loadFilters() {
  try {
    const models = await api("GET", "v1/models?all=true");
    fillSelect($("gallery-model"), "Any model", (models.data || []).map((m) => [m.id, m.id]));
    if (state.admin) {
      const keys = await api("GET", "admin/v1/keys");
      fillSelect($("gallery-key"), "Any key", (keys.data || []).map((k) => [k.id, `${k.name} (${k.prefix}…)`]));
    }
  } catch (err) {
    showError($("gallery-error"), err);
  }
}

function fillSelect(select, all, pairs) {
  const before = select.value;
  const seen = new Set();
  const options = [option("", all)];
  for (const [value, label] of pairs) {
    if (seen.has(value)) continue;
    seen.add(value);
    options.push(option(value, label));
  }
  select.replaceChildren(...options);
  select.value = seen.has(before) ? before : "";
}

// a model no longer in the catalog still made some of these images: it can be picked too
function addSeenModels(models) {
  const select = $("gallery-model");
  const known = new Set([...select.options].map((o) => o.value));
  for (const model of models) {
    if (known.has(model)) continue;
    known.add(model);
    select.append(option(model, model));
  }
}

function fullSource(task, index) {
  const item = (task.data || [])[index] || {};
  if (item.url) return item.url;
  const format = task.output_format || "png";
  return item.b64_json ? `data:image/${format};base64,${item.b64_json}` : "";
}

function openDetail(task, index, button) {
  opener = button;
  const src = fullSource(task, index);
  const prompt = task.prompt || task.request?.prompt || "";
  const full = $("gallery-full");
  full.alt = prompt || "The full image";
  full.src = src;
  const download = $("gallery-download");
  download.href = src;
  download.download = `${task.id}-${index}.${task.output_format || "png"}`;
  $("gallery-prompt").textContent = prompt || "(no prompt)";
  const facts = $("gallery-facts");
  facts.replaceChildren();
  const request = task.request || {};
  fact(facts, "Model", task.model);
  if (state.admin) fact(facts, "Key", task.key_name || task.key_id);
  fact(facts, "Size", task.size);
  fact(facts, "Quality", task.quality || request.quality);
  fact(facts, "Format", task.output_format);
  fact(facts, "Background", task.background || request.background);
  fact(facts, "Seed", request.seed);
  fact(facts, "Negative prompt", request.negative_prompt);
  fact(facts, "Provider", task.provider);
  fact(facts, "Cost", usd(task.cost));
  fact(facts, "Latency", task.latency === null || task.latency === undefined ? null : `${(task.latency / 1000).toFixed(2)} s`);
  fact(facts, "Created", when(task.created_at));
  fact(facts, "Task", `${task.id} (image ${index + 1} of ${(task.data || []).length})`);
  $("gallery-detail").showModal();
  $("gallery-close").focus();
}

function closeDetail() {
  const dialog = $("gallery-detail");
  if (dialog.open) dialog.close();
}

function onClosed() {
  $("gallery-full").removeAttribute("src");
  opener?.focus();
  opener = null;
}

export const panel = {
  name: "gallery",
  admin: false,
  init() {
    $("gallery-model").addEventListener("change", () => loadPage(true));
    $("gallery-key").addEventListener("change", () => loadPage(true));
    $("gallery-refresh").addEventListener("click", () => loadPage(true));
    $("gallery-more").addEventListener("click", () => loadPage(false));
    $("gallery-close").addEventListener("click", closeDetail);
    $("gallery-detail").addEventListener("close", onClosed);
    $("gallery-detail").addEventListener("click", (event) => {
      if (event.target === event.currentTarget) closeDetail();  // a click on the backdrop
    });
  },
  async enter() {
    $("gallery-key-field").hidden = !state.admin;
    await loadFilters();
  },
  leave() {
    epoch += 1;
    closeDetail();
    revokeAll();
    cursor = null;
    $("gallery-grid").replaceChildren();
    $("gallery-more").hidden = true;
    $("gallery-status").textContent = "";
    fillSelect($("gallery-model"), "Any model", []);
    fillSelect($("gallery-key"), "Any key", []);
    showError($("gallery-error"), null);
  },
  show() { loadPage(true); },
  hide() { closeDetail(); },
};
