// Tasks: a live list of the signed-in key's recent tasks (an admin key: every key's, with filters by key,
// model, status and date), Cancel on live ones, and a detail dialog per task: its timeline, request, error,
// outputs and webhook deliveries (with Redeliver for admins). The list refreshes every 2 seconds while the
// tab is shown, one request at a time; rows are updated in place, so focus and clicks survive a refresh.

import { $, ApiError, api, cell, el, option, showError, state, usd, when } from "./api.js";

const LIVE = new Set(["queued", "running"]);  // a task in these states can still be canceled
const POLL_MS = 2000;
const LIMIT = 20;
const ENDED = { succeeded: "Completed", failed: "Failed", canceled: "Canceled" };

// the poller: `busy` while a request is out, `again` when something asked for a fresh one meanwhile,
// `epoch` bumped by anything that makes an answer already on its way stale (a cancel, new filters)
const live = { shown: false, timer: null, busy: false, again: false, epoch: 0 };
const rows = new Map();  // task id -> { tr, task, cells }
let errorFrom = null;  // what #tasks-error shows: "list" (a refresh clears it) or "action" (kept until Refresh)
let shownError = "";  // the list error shown, so an unchanged one is not redrawn
let announced = "";
// the open dialog: its task, the button that opened it, what each part shows, and whether its alert is about
// a Redeliver (kept until the next one) or a refresh (cleared by the next good one)
const detail = { id: null, opener: null, task: null, shown: {}, actionFailed: false, errorText: "" };

// ---- the list ----

function listPath() {
  if (!state.admin) return `v1/tasks?limit=${LIMIT}`;
  const q = new URLSearchParams({ limit: String(LIMIT) });
  const key = $("tasks-key").value;
  const model = $("tasks-model").value.trim();
  const status = $("tasks-state").value;
  if (key) q.set("key_id", key);
  if (model) q.set("model", model);
  if (status) q.set("status", status);
  if ($("tasks-from").value) q.set("from", localMidnight($("tasks-from").value));
  if ($("tasks-to").value) q.set("to", localMidnight($("tasks-to").value, 1));  // the whole "to" day
  return `admin/v1/tasks?${q}`;
}

// an admin's date range the other way round: said here, not sent
function rangeProblem() {
  const from = $("tasks-from").value;
  const to = $("tasks-to").value;
  if (!state.admin || !from || !to || to >= from) return null;
  return new ApiError(0, { message: "The 'Created to' date is before the 'Created from' date.", param: "to" });
}

// "2026-12-02" as the UTC instant of that day's start in this browser's time zone
function localMidnight(day, plusDays = 0) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(y, m - 1, d + plusDays).toISOString();
}

function schedule() {
  clearTimeout(live.timer);
  live.timer = live.shown && state.key ? setTimeout(poll, POLL_MS) : null;
}

async function poll() {
  clearTimeout(live.timer);
  live.timer = null;
  if (!live.shown || !state.key) return;
  if (live.busy) {  // never two at once: the one out now runs another as soon as it is back
    live.again = true;
    return;
  }
  if (document.hidden) {  // a background browser tab asks nothing
    schedule();
    return;
  }
  live.busy = true;
  live.again = false;
  try {
    await load();
  } finally {
    live.busy = false;
    if (live.again) poll();
    else schedule();
  }
}

async function load() {
  const key = state.key;
  const epoch = live.epoch;
  const path = listPath();
  const problem = rangeProblem();
  if (problem) {
    if (errorFrom !== "action") listError(problem);
    return;
  }
  try {
    const listing = await api("GET", path);
    if (key !== state.key || epoch !== live.epoch || path !== listPath() || !live.shown) return;
    render(listing.data || []);
    if (errorFrom === "list") listError(null);
  } catch (err) {
    if (key !== state.key || errorFrom === "action") return;
    listError(err);
  }
  if (detail.id && key === state.key) await refreshDetail();
}

// A refresh failing the same way again leaves the alert as it is: redrawn, it would be read out every 2 s.
function listError(err) {
  const text = err ? `${err.status} ${err.message} ${err.param}` : "";
  if (errorFrom === (err ? "list" : null) && shownError === text) return;
  errorFrom = err ? "list" : null;
  shownError = text;
  showError($("tasks-error"), err);
}

function actionError(err) {
  errorFrom = err ? "action" : null;
  shownError = err ? "action" : "";
  showError($("tasks-error"), err);
}

function render(tasks) {
  const body = $("tasks-table").tBodies[0];
  const ids = new Set(tasks.map((t) => t.id));
  for (const [id, entry] of rows) {
    if (!ids.has(id)) {
      entry.tr.remove();
      rows.delete(id);
    }
  }
  const before = new Map([...rows].map(([id, entry]) => [id, entry.task.status]));
  tasks.forEach((task, i) => {
    let entry = rows.get(task.id);
    if (!entry) {
      entry = makeRow(task);
      rows.set(task.id, entry);
    }
    updateRow(entry, task);
    if (body.children[i] !== entry.tr) body.insertBefore(entry.tr, body.children[i] || null);
  });
  const changed = tasks.filter((t) => before.has(t.id) && before.get(t.id) !== t.status);
  announce(tasks, changed);
}

// The status line is the panel's only live region: it changes (and so speaks) only when the number of
// tasks or of live ones changes, or a task moves to another state; progress ticks stay silent.
function announce(tasks, changed) {
  const open = tasks.filter((t) => LIVE.has(t.status)).length;
  const none = state.admin ? "No tasks match these filters." : "No tasks yet.";
  let text = tasks.length ? `${tasks.length} task(s), ${open} queued or running.` : none;
  if (changed.length === 1) text += ` Task ${changed[0].id} is now ${changed[0].status}.`;
  else if (changed.length > 1) text += ` ${changed.length} tasks changed state.`;
  if (text !== announced) {
    announced = text;
    $("tasks-status").textContent = text;
  }
}

function makeRow(task) {
  const tr = el("tr");
  tr.dataset.taskId = task.id;
  const open = el("button", task.id, {
    type: "button", className: "link mono", "aria-label": `Details of task ${task.id}`,
  });
  open.addEventListener("click", () => openDetail(task.id, open));
  const cells = {
    key: state.admin ? cell("") : null,
    model: cell(""),
    status: el("td"),
    progress: el("td", null, { className: "progress-cell" }),
    cost: cell(""),
    created: cell(""),
    actions: el("td", null, { className: "actions" }),
  };
  const idCell = el("td");
  idCell.append(open);
  tr.append(idCell);
  for (const td of Object.values(cells)) if (td) tr.append(td);
  return { tr, task, cells, cancel: null, bar: null };
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function queueText(task) {
  const ahead = task.queue_position;
  if (ahead === null || ahead === undefined) return "waiting for a worker";
  return ahead === 0 ? "next in queue" : `${ahead} ahead in queue`;
}

function updateRow(entry, task) {
  entry.task = task;
  const { cells } = entry;
  if (cells.key) setText(cells.key, task.key_name || task.key_id || "");
  setText(cells.model, task.model || "");
  setText(cells.cost, usd(task.cost ?? task.cost_usd));
  setText(cells.created, when(task.created_at));

  const statusKey = `${task.status}|${task.status === "queued" ? queueText(task) : ""}`;
  if (cells.status.dataset.shows !== statusKey) {
    cells.status.dataset.shows = statusKey;
    cells.status.className = `status status-${task.status}`;
    cells.status.replaceChildren(el("span", task.status));
    if (task.status === "queued") cells.status.append(el("span", queueText(task), { className: "queue" }));
  }

  const isLive = LIVE.has(task.status);
  const pct = isLive ? task.progress ?? 0 : task.progress;
  if (isLive) {
    if (!entry.bar) {
      entry.bar = el("progress", null, { max: 100, "aria-label": `Progress of task ${task.id}` });
      entry.pct = el("span", "", { className: "pct" });
      cells.progress.replaceChildren(entry.bar, entry.pct);
    }
    if (entry.bar.getAttribute("value") !== String(pct)) entry.bar.setAttribute("value", String(pct));
    setText(entry.pct, `${pct}%`);
  } else {
    entry.bar = null;
    cells.progress.replaceChildren();
    setText(cells.progress, pct === null || pct === undefined ? "" : `${pct}%`);
  }

  if (isLive && !entry.cancel) {
    entry.cancel = el("button", "Cancel", {
      type: "button", className: "danger", "aria-label": `Cancel task ${task.id}`,
    });
    entry.cancel.addEventListener("click", (event) => cancelTask(task.id, event.currentTarget));
    cells.actions.append(entry.cancel);
  } else if (!isLive && entry.cancel) {
    entry.cancel.remove();
    entry.cancel = null;
  }
}

async function cancelTask(id, button) {
  button.disabled = true;
  live.epoch += 1;  // an answer already on its way predates the cancel
  try {
    // an admin cancels any key's task through the admin API; any other key only its own
    const base = state.admin ? "admin/v1/tasks" : "v1/tasks";
    const canceled = await api("POST", `${base}/${encodeURIComponent(id)}/cancel`);
    const entry = rows.get(id);
    if (entry) updateRow(entry, { ...entry.task, ...canceled });
    actionError(null);
    announced = `Task ${id} canceled.`;
    $("tasks-status").textContent = announced;
    if (detail.id === id) await refreshDetail();
  } catch (err) {
    button.disabled = false;
    actionError(err);
  }
}

function manualRefresh() {
  actionError(null);
  live.epoch += 1;
  poll();
}

// ---- admin filters ----

async function loadFilterChoices() {
  try {
    const [keys, models] = await Promise.all([api("GET", "admin/v1/keys"), api("GET", "v1/models")]);
    const select = $("tasks-key");
    const chosen = select.value;
    select.replaceChildren(option("", "All keys"),
      ...(keys.data || []).map((k) => option(k.id, k.prefix ? `${k.name} (${k.prefix}…)` : k.name)));
    if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
    $("tasks-models").replaceChildren(...(models.data || []).map((m) => option(m.id, m.id)));
    for (const entry of rows.values()) updateRow(entry, entry.task);
  } catch (err) {
    listError(err);
  }
}

function filtersChanged() {
  if (errorFrom === "list") listError(null);
  live.epoch += 1;
  poll();
}

// ---- the detail dialog ----

function openDetail(id, opener) {
  const dialog = $("task-detail");
  detail.id = id;
  detail.opener = opener;
  detail.task = rows.get(id)?.task || null;
  detail.shown = {};
  detail.actionFailed = false;
  setText($("task-detail-title"), `Task ${id}`);
  $("task-detail-status").textContent = "";
  detail.errorText = null;
  detailError(null);
  for (const part of ["task-timeline", "task-upstream", "task-request", "task-outputs", "task-deliveries"]) {
    $(part).replaceChildren();
  }
  if (detail.task) renderDetail(detail.task);
  if (!dialog.open) dialog.showModal();
  $("task-detail-close").focus();
  refreshDetail();
}

function closeDetail() {
  const dialog = $("task-detail");
  if (dialog.open) dialog.close();
}

function onDetailClosed() {
  const opener = detail.opener;
  Object.assign(detail, { id: null, opener: null, task: null, shown: {}, actionFailed: false });
  // the row's button survives refreshes; if its task left the list, Refresh takes the focus
  if (opener?.isConnected) opener.focus();
  else if (live.shown) $("tasks-refresh").focus();
}

// the dialog's alert, redrawn (and so read out) only when it says something new
function detailError(err) {
  const text = err ? `${err.status} ${err.message} ${err.param}` : "";
  if (detail.errorText === text) return;
  detail.errorText = text;
  showError($("task-detail-error"), err);
}

async function refreshDetail() {
  const id = detail.id;
  if (!id) return;
  const listed = rows.get(id)?.task;
  try {
    let task = listed;
    if (!task && !state.admin) task = await api("GET", `v1/tasks/${encodeURIComponent(id)}`);
    const base = state.admin ? "admin/v1/tasks" : "v1/tasks";
    const deliveries = await api("GET", `${base}/${encodeURIComponent(id)}/deliveries`);
    if (detail.id !== id) return;
    if (task) renderDetail({ ...(detail.task || {}), ...task });
    renderDeliveries(deliveries.data || []);
    if (!detail.actionFailed) detailError(null);
  } catch (err) {
    if (detail.id === id && !detail.actionFailed) detailError(err);
  }
}

// redraws a part of the dialog only when what it shows changed (no flicker, focus kept)
function changed(part, value) {
  const sig = JSON.stringify(value);
  if (detail.shown[part] === sig) return false;
  detail.shown[part] = sig;
  return true;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return "";
  if (seconds < 1) return "under a second";
  if (seconds < 10) return `about ${Math.round(seconds)} s`;  // the times are whole seconds
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${Math.round(seconds - m * 60)} s`;
}

function fact(list, name, value) {
  if (value === null || value === undefined || value === "") return;
  if (typeof value === "object" && !Object.keys(value).length) return;  // an empty list or object says nothing
  const text = typeof value === "object" ? JSON.stringify(value) : String(value);
  list.append(el("dt", name), el("dd", text));
}

function renderDetail(task) {
  detail.task = task;
  const timeline = {
    status: task.status, created: task.created_at, started: task.started_at, completed: task.completed_at,
    progress: task.progress, queue: task.queue_position,
  };
  if (changed("timeline", timeline)) renderTimeline(task);
  const upstream = {
    Key: state.admin ? task.key_name || task.key_id : null, Dialect: task.dialect, Attempts: task.attempts,
    Provider: task.provider, Deployment: task.deployment,
    Latency: task.latency === null || task.latency === undefined ? null : `${task.latency} ms`,
    Cost: usd(task.cost ?? task.cost_usd), Reserved: LIVE.has(task.status) ? usd(task.reserved_usd) : null,
  };
  if (changed("upstream", upstream)) facts($("task-upstream"), upstream);
  if (changed("error", task.error || null)) {
    $("task-failure-part").hidden = !task.error;
    const code = task.error?.code ? ` (${task.error.code})` : "";
    $("task-failure").textContent = task.error ? `${task.error.message}${code}` : "";
  }
  // an admin sees the request as the task recorded it; a key's own task object carries its main parameters
  const request = task.request || {
    model: task.model, mode: task.mode, size: task.size, quality: task.quality, background: task.background,
    output_format: task.output_format, images: task.data ? task.data.length : null, usage: task.usage,
  };
  if (changed("request", request)) facts($("task-request"), request, "none recorded");
  if (changed("outputs", task.data || null)) renderOutputs(task);
}

function facts(list, values, empty = null) {
  list.replaceChildren();
  for (const [name, value] of Object.entries(values)) fact(list, name, value);
  if (!list.children.length && empty) list.append(el("dt", "Parameters"), el("dd", empty));
}

// created -> started -> completed / failed / canceled, with the time each step took
function renderTimeline(task) {
  const step = (name, at, note, className = "step") => {
    const li = el("li", null, { className });
    li.append(el("strong", name), el("span", ` ${when(at)}`),
      el("span", note ? ` (${note})` : "", { className: "hint" }));
    return li;
  };
  const steps = [step("Created", task.created_at)];
  if (task.started_at) {
    steps.push(step("Started", task.started_at, `${duration(task.started_at - task.created_at)} in the queue`));
  }
  if (ENDED[task.status]) {
    const spans = [];
    if (task.completed_at && task.started_at) spans.push(`ran ${duration(task.completed_at - task.started_at)}`);
    if (task.completed_at && task.created_at) spans.push(`${duration(task.completed_at - task.created_at)} in all`);
    steps.push(step(ENDED[task.status], task.completed_at, spans.join("; "), `step status-${task.status}`));
  } else {
    const now = task.status === "queued" ? `Queued: ${queueText(task)}`
      : task.status === "running" ? `Running: ${task.progress ?? 0}%` : `Now ${task.status}`;
    steps.push(el("li", now, { className: "step now" }));
  }
  $("task-timeline").replaceChildren(...steps);
}

function renderOutputs(task) {
  const box = $("task-outputs");
  const images = task.data || [];
  if (!images.length) {
    const why = task.status === "succeeded" ? "No images." : LIVE.has(task.status)
      ? "The images show here once the task succeeds." : "No images: the task did not succeed.";
    box.replaceChildren(el("p", why, { className: "hint" }));
    return;
  }
  const format = task.output_format || "png";
  box.replaceChildren(...images.map((img, i) => {
    const src = img.url || (img.b64_json ? `data:image/${format};base64,${img.b64_json}` : "");
    const figure = el("figure", null, { className: "result" });
    figure.append(el("img", null, { src, alt: `Output ${i + 1} of task ${task.id}`, loading: "lazy" }));
    const caption = el("figcaption");
    const link = el("a", `Open image ${i + 1}`, { href: src, target: "_blank", rel: "noopener" });
    if (!img.url) link.download = `${task.id}-${i + 1}.${format}`;
    caption.append(link);
    if (img.revised_prompt) caption.append(el("span", img.revised_prompt, { className: "facts" }));
    figure.append(caption);
    return figure;
  }));
}

function attemptText(a) {
  const parts = [when(a.at)];
  if (a.status_code !== null && a.status_code !== undefined) parts.push(`HTTP ${a.status_code}`);
  if (a.error && a.error !== `HTTP ${a.status_code}`) parts.push(a.error);
  if (a.duration_ms !== null && a.duration_ms !== undefined) parts.push(`${a.duration_ms} ms`);
  return parts.filter(Boolean).join(" · ");
}

function renderDeliveries(deliveries) {
  if (!changed("deliveries", deliveries)) return;
  const box = $("task-deliveries");
  const focused = document.activeElement?.dataset?.delivery;
  if (!deliveries.length) {
    box.replaceChildren(el("p", "No webhook deliveries: the task was created without a callback URL.",
      { className: "hint" }));
    return;
  }
  box.replaceChildren(...deliveries.map((d) => {
    const item = el("div", null, { className: "delivery" });
    item.dataset.deliveryId = d.id;
    const head = el("p", null, { className: "delivery-head" });
    head.append(el("span", d.url, { className: "mono url" }),
      el("span", d.status, { className: `status status-${d.status}` }),
      el("span", `${d.attempt_count} attempt(s)`, { className: "hint" }));
    item.append(head);
    const facts = [`id ${d.id}`, `created ${when(d.created_at)}`];
    if (d.delivered_at) facts.push(`delivered ${when(d.delivered_at)}`);
    if (d.next_attempt_at) facts.push(`next attempt ${when(d.next_attempt_at)}`);
    item.append(el("p", facts.join(" · "), { className: "hint" }));
    if (d.attempts?.length) {
      const list = el("ol", null, { className: "attempts", "aria-label": `Attempts of delivery ${d.id}` });
      list.append(...d.attempts.map((a) => el("li", attemptText(a),
        { className: a.error || (a.status_code && a.status_code >= 300) ? "bad" : "" })));
      item.append(list);
    }
    if (state.admin && d.status !== "pending") {
      const again = el("button", "Redeliver", {
        type: "button", className: "secondary", "aria-label": `Redeliver webhook ${d.id}`,
      });
      again.dataset.delivery = d.id;
      again.addEventListener("click", () => redeliver(d.id, again));
      item.append(again);
      if (focused === d.id) queueMicrotask(() => again.focus());
    }
    return item;
  }));
}

async function redeliver(deliveryId, button) {
  const id = detail.id;
  button.disabled = true;
  try {
    const again = await api("POST",
      `admin/v1/tasks/${encodeURIComponent(id)}/deliveries/${encodeURIComponent(deliveryId)}/redeliver`);
    detail.actionFailed = false;
    detailError(null);
    $("task-detail-status").textContent =
      `Webhook ${deliveryId} queued again (now ${again.status}): it is sent within a second.`;
    await refreshDetail();
  } catch (err) {
    detail.actionFailed = true;
    detail.errorText = null;  // the same refusal twice is still news
    detailError(err);
  } finally {
    button.disabled = false;
  }
}

// ---- the panel ----

function clear() {
  rows.clear();
  $("tasks-table").tBodies[0].replaceChildren();
  announced = "";
  $("tasks-status").textContent = "";
  actionError(null);
}

export const panel = {
  name: "tasks",
  admin: false,
  init() {
    $("tasks-refresh").addEventListener("click", manualRefresh);
    const form = $("tasks-filters");
    form.addEventListener("change", filtersChanged);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      filtersChanged();
    });
    $("tasks-model").addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        filtersChanged();
      }
    });
    form.addEventListener("reset", () => setTimeout(filtersChanged));  // after the fields are reset
    $("task-detail-close").addEventListener("click", closeDetail);
    $("task-detail").addEventListener("close", onDetailClosed);
  },
  async enter() {
    const admin = state.admin;
    $("tasks-filters").hidden = !admin;
    document.querySelector("#tasks-table .key-col").hidden = !admin;
    $("tasks-scope").textContent = admin
      ? "Every key's 20 most recent tasks matching the filters, newest first; updated every 2 seconds while "
        + "this tab is open. Cancel reaches this key's own tasks."
      : "This key's 20 most recent tasks, newest first; updated every 2 seconds while this tab is open.";
    if (admin) await loadFilterChoices();
  },
  leave() {
    live.shown = false;
    clearTimeout(live.timer);
    live.timer = null;
    live.epoch += 1;
    closeDetail();
    clear();
    $("tasks-filters").reset();
    $("tasks-key").replaceChildren(option("", "All keys"));
    $("tasks-models").replaceChildren();
  },
  show() {
    live.shown = true;
    poll();
  },
  hide() {
    live.shown = false;
    clearTimeout(live.timer);
    live.timer = null;
    closeDetail();
  },
};
