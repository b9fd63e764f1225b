// The Tasks tab's detail dialog: one task's timeline (created -> started -> ended, with durations; for admins
// attempts, provider and deployment), its request, error, outputs and webhook deliveries with their attempts
// (Redeliver for admins). It refreshes itself while open and redraws a part only when what it shows changed.

import { $, api, el, fact, setText, showError, state, usd, when } from "./api.js";

export const LIVE = new Set(["queued", "running"]);  // a task in these states can still be canceled
const ENDED = { succeeded: "Completed", failed: "Failed", canceled: "Canceled" };

// the open dialog: its task, the button that opened it, what each part shows, and whether its alert is about
// a Redeliver (kept until the next one) or a refresh (cleared by the next good one)
const detail = { id: null, opener: null, task: null, shown: {}, actionFailed: false, errorText: "" };
let hooks = { listed: () => null, focusAfter: () => null };

export function queueText(task) {
  const ahead = task.queue_position;
  if (ahead === null || ahead === undefined) return "waiting for a worker";
  return ahead === 0 ? "next in queue" : `${ahead} ahead in queue`;
}

export function openDetail(id, opener) {
  const dialog = $("task-detail");
  detail.id = id;
  detail.opener = opener;
  detail.task = hooks.listed(id);
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

export function closeDetail() {
  const dialog = $("task-detail");
  if (dialog.open) dialog.close();
}

function onDetailClosed() {
  const opener = detail.opener;
  Object.assign(detail, { id: null, opener: null, task: null, shown: {}, actionFailed: false });
  // the row's button survives refreshes; if its task left the list, Refresh takes the focus
  if (opener?.isConnected) opener.focus();
  else hooks.focusAfter()?.focus();
}

// the dialog's alert, redrawn (and so read out) only when it says something new
function detailError(err) {
  const text = err ? `${err.status} ${err.message} ${err.param}` : "";
  if (detail.errorText === text) return;
  detail.errorText = text;
  showError($("task-detail-error"), err);
}

export async function refreshDetail() {
  const id = detail.id;
  if (!id) return;
  const listed = hooks.listed(id);
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

// Wires the dialog once: `listed(id)` is the list's copy of a task (or null), `focusAfter()` where focus goes
// when the button that opened the dialog is gone.
export function initDetail(given) {
  hooks = given;
  $("task-detail-close").addEventListener("click", closeDetail);
  $("task-detail").addEventListener("close", onDetailClosed);
}

// Whether the dialog is open (on task `id`, when given).
export function detailShows(id = null) {
  return id === null ? detail.id !== null : detail.id === id;
}
