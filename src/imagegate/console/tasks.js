// Tasks: the signed-in key's recent tasks, with Refresh and Cancel.

import { $, api, cell, el, showError, usd, when } from "./api.js";

const LIVE = new Set(["queued", "running"]);  // a task in these states can still be canceled

function taskRow(task) {
  const tr = el("tr");
  tr.dataset.taskId = task.id;
  const progress = task.progress === null || task.progress === undefined ? "" : `${task.progress}%`;
  tr.append(el("td", task.id, { className: "mono" }), cell(task.model),
    el("td", task.status, { className: `status status-${task.status}` }), cell(progress), cell(usd(task.cost)),
    cell(when(task.created_at)));
  const actions = el("td");
  if (LIVE.has(task.status)) {
    const cancel = el("button", "Cancel", { type: "button", className: "danger", "aria-label": `Cancel task ${task.id}` });
    cancel.addEventListener("click", () => cancelTask(task, cancel));
    actions.append(cancel);
  }
  tr.append(actions);
  return tr;
}

async function loadTasks() {
  const button = $("tasks-refresh");
  button.disabled = true;
  $("tasks-status").textContent = "Loading…";
  try {
    const listing = await api("GET", "v1/tasks?limit=20");
    const rows = (listing.data || []).map(taskRow);
    $("tasks-table").tBodies[0].replaceChildren(...rows);
    $("tasks-status").textContent = rows.length ? `${rows.length} task(s).` : "No tasks yet.";
    showError($("tasks-error"), null);
  } catch (err) {
    $("tasks-status").textContent = "";
    showError($("tasks-error"), err);
  } finally {
    button.disabled = false;
  }
}

async function cancelTask(task, button) {
  button.disabled = true;
  try {
    const canceled = await api("POST", `v1/tasks/${encodeURIComponent(task.id)}/cancel`);
    const row = [...$("tasks-table").tBodies[0].rows].find((r) => r.dataset.taskId === task.id);
    row?.replaceWith(taskRow(canceled));
    showError($("tasks-error"), null);
  } catch (err) {
    button.disabled = false;
    showError($("tasks-error"), err);
  }
}

export const panel = {
  name: "tasks",
  admin: false,
  init() { $("tasks-refresh").addEventListener("click", loadTasks); },
  enter() {},
  leave() {
    $("tasks-table").tBodies[0].replaceChildren();
    $("tasks-status").textContent = "";
    showError($("tasks-error"), null);
  },
  show() { loadTasks(); },
  hide() {},
};
