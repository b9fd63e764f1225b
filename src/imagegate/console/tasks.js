// Tasks: a live list of the signed-in key's recent tasks (an admin key: every key's, with filters by key,
// model, status and date), Cancel on live ones, and a detail dialog per task: its timeline, request, error,
// outputs and webhook deliveries (with Redeliver for admins). The list refreshes every 2 seconds while the
// tab is shown, one request at a time; rows are updated in place, so focus and clicks survive a refresh.
// "Load more" appends the next page of older tasks (the list's next_cursor sent as `after`). The 2-second
// refresh still asks for the newest page only: rows it does not cover, once older pages are loaded, stay in
// the table as they are. An older row that is still queued or running is therefore not followed live; it
// updates on the next Refresh, which starts over from the newest page, as new filters and signing out do.
// (Simpler than one request per live older row, and an admin has no GET of a single task to make it with.)

import { $, ApiError, api, cell, el, option, setText, showError, state, usd, when } from "./api.js";
import { LIVE, closeDetail, detailShows, initDetail, openDetail, queueText, refreshDetail } from "./task_detail.js";

const POLL_MS = 2000;
const LIMIT = 20;

// the poller: `busy` while a request is out, `again` when something asked for a fresh one meanwhile,
// `epoch` bumped by anything that makes an answer already on its way stale (a cancel, new filters)
const live = { shown: false, timer: null, busy: false, again: false, epoch: 0 };
const rows = new Map();  // task id -> { tr, task, cells }
let errorFrom = null;  // what #tasks-error shows: "list" (a refresh clears it) or "action" (kept until Refresh)
let shownError = "";  // the list error shown, so an unchanged one is not redrawn
let announced = "";
// the pages beyond the first: `extended` once "Load more" has added one, `more`/`cursor` the list's has_more and
// next_cursor for the next page (from the newest page until then), `epoch` bumped when paging starts over
const paging = { extended: false, more: false, cursor: null, loading: false, epoch: 0 };

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
    if (paging.extended && !listing.has_more) resetPaging();  // every matching task fits the newest page now
    if (!paging.extended) {  // loaded older pages keep the cursor of the last one
      paging.more = Boolean(listing.has_more);
      paging.cursor = listing.next_cursor || null;
      showMore();
    }
    render(listing.data || []);
    if (errorFrom === "list") listError(null);
  } catch (err) {
    if (key !== state.key || errorFrom === "action") return;
    listError(err);
  }
  if (detailShows() && key === state.key) await refreshDetail();
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

// the tasks the table shows now, top to bottom
function shownTasks() {
  return [...$("tasks-table").tBodies[0].children].map((tr) => rows.get(tr.dataset.taskId)?.task).filter(Boolean);
}

// the newest page; with older pages loaded, the rows below it stay (see the header comment). Those below the
// oldest task of this page that was shown already are the older pages (pushed down by new tasks or not);
// a row above it that this page lacks has left the list (finished under a status filter) and goes.
function render(newest) {
  if (!paging.extended) {
    draw(newest);
    return;
  }
  const shown = shownTasks();
  const ids = new Set(newest.map((t) => t.id));
  let from = 0;  // no task of this page shown yet: all of them are new, every shown row is older
  for (let i = newest.length - 1; i >= 0; i -= 1) {
    const at = shown.findIndex((t) => t.id === newest[i].id);
    if (at >= 0) {
      from = at + 1;
      break;
    }
  }
  draw(newest.concat(shown.slice(from).filter((t) => !ids.has(t.id))));
}

function draw(tasks) {
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
    if (detailShows(id)) await refreshDetail();
  } catch (err) {
    button.disabled = false;
    actionError(err);
  }
}

// ---- older pages ----

function showMore() {
  $("tasks-more").hidden = !(paging.more && paging.cursor);
}

function resetPaging() {
  paging.extended = false;
  paging.more = false;
  paging.cursor = null;
  paging.epoch += 1;
  showMore();
}

async function loadMore() {
  if (paging.loading || !paging.cursor) return;
  const key = state.key;
  const epoch = paging.epoch;
  const path = listPath();
  const button = $("tasks-more");
  paging.loading = true;  // not `disabled`: that would take the focus off the button
  let first = null;
  try {
    const listing = await api("GET", `${path}&after=${encodeURIComponent(paging.cursor)}`);
    if (key !== state.key || epoch !== paging.epoch || path !== listPath() || !live.shown) return;
    const shown = shownTasks();
    const ids = new Set(shown.map((t) => t.id));
    const older = (listing.data || []).filter((t) => !ids.has(t.id));
    paging.extended = true;
    paging.more = Boolean(listing.has_more);
    paging.cursor = listing.next_cursor || null;
    draw(shown.concat(older));
    if (errorFrom === "list") listError(null);
    first = older.length ? rows.get(older[0].id) : null;
  } catch (err) {
    if (key === state.key && epoch === paging.epoch && errorFrom !== "action") listError(err);
  } finally {
    paging.loading = false;
    const focused = document.activeElement === button;
    showMore();
    // the button hid under the focus: it moves to the first task just added
    if (button.hidden && focused) first?.tr.querySelector("button")?.focus();
  }
}

function manualRefresh() {
  actionError(null);
  resetPaging();
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
  resetPaging();
  live.epoch += 1;
  poll();
}

// ---- the panel ----

function clear() {
  resetPaging();
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
    $("tasks-more").addEventListener("click", loadMore);
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
    initDetail({
      listed: (id) => rows.get(id)?.task || null,
      focusAfter: () => (live.shown ? $("tasks-refresh") : null),
    });
  },
  async enter() {
    const admin = state.admin;
    $("tasks-filters").hidden = !admin;
    document.querySelector("#tasks-table .key-col").hidden = !admin;
    $("tasks-scope").textContent = admin
      ? "Every key's 20 most recent tasks matching the filters, newest first; updated every 2 seconds while "
        + "this tab is open. Load more adds older ones."
      : "This key's 20 most recent tasks, newest first; updated every 2 seconds while this tab is open. "
        + "Load more adds older ones.";
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
