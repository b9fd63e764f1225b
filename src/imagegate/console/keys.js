// Keys (admin keys only): create (the secret shown once), top up, edit a key's settings in a dialog
// (one PATCH with what changed), rotate (the new secret shown once), revoke.

import { $, ApiError, api, cell, el, showError, when } from "./api.js";

let editing = null;  // the key the dialog edits
let generation = 0;  // a listing answered after a later listing or change is stale: dropped
let opener = null;  // the key id whose Edit button opened it: focus goes back there

const path = (key) => `admin/v1/keys/${encodeURIComponent(key.id)}`;
const money = (value) => `$${value}`;

// "one pattern a line or comma separated": the allowlist as the API takes it (null: every model)
function patterns(text) {
  const list = text.split(/[\n,]/).map((p) => p.trim()).filter(Boolean);
  return list.length ? list : null;
}

function limitsOf(key) {
  const parts = [];
  if (key.monthly_budget_usd !== null && key.monthly_budget_usd !== undefined) {
    parts.push(`budget ${money(key.monthly_budget_usd)}/month`);
  }
  if (key.rate_limit_rpm) parts.push(`${key.rate_limit_rpm}/min`);
  if (key.max_concurrent_tasks) parts.push(`${key.max_concurrent_tasks} at once`);
  parts.push(key.allowed_models ? `models: ${key.allowed_models.join(", ")}` : "all models");
  return parts.join(" · ");
}

function button(text, label, className, onClick) {
  const b = el("button", text, { type: "button", className, "aria-label": label });
  b.addEventListener("click", onClick);
  return b;
}

function keyRow(key) {
  const tr = el("tr");
  tr.dataset.keyId = key.id;
  tr.append(cell(key.name), el("td", key.prefix || "", { className: "mono" }),
    el("td", key.unlimited ? "unlimited" : money(key.credits), { className: "credits" }),
    cell(money(key.month_spend_usd ?? 0)), el("td", limitsOf(key), { className: "limits" }),
    el("td", key.expires_at ? when(key.expires_at) : "never", { className: "expires" }),
    el("td", key.status, { className: `status status-${key.status}` }), cell(key.is_admin ? "yes" : "no"));
  const actions = el("td", null, { className: "actions" });
  if (key.status !== "revoked") {
    actions.append(topUpControl(key),
      button("Edit", `Edit ${key.name}`, "secondary small", () => openEditor(key)),
      button("Rotate", `Rotate ${key.name}`, "secondary small", () => rotateKey(key)),
      button("Revoke", `Revoke ${key.name}`, "danger", () => revokeKey(key)));
  }
  tr.append(actions);
  return tr;
}

function topUpControl(key) {
  const box = el("span", null, { className: "topup" });
  const amount = el("input", null, {
    type: "number", min: "0", step: "any", inputMode: "decimal", placeholder: "USD",
    "aria-label": `Top-up amount for ${key.name} (USD)`,
  });
  const topUpButton = el("button", "Top up", {
    type: "button", className: "secondary", "aria-label": `Top up ${key.name}`,
  });
  const submit = () => topUp(key, amount, topUpButton);
  topUpButton.addEventListener("click", submit);
  amount.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); submit(); }
  });
  box.append(amount, topUpButton);
  return box;
}

async function topUp(key, amount, topUpButton) {
  if (amount.value === "" || !Number.isFinite(Number(amount.value))) {
    showError($("keys-error"), new ApiError(0, { message: `Enter an amount in USD to add to ${key.name}.` }));
    amount.focus();
    return;
  }
  topUpButton.disabled = true;
  generation += 1;
  try {
    const updated = await api("PATCH", path(key), { add_credits: Number(amount.value) });
    const row = [...$("keys-table").tBodies[0].rows].find((r) => r.dataset.keyId === key.id);
    const credits = row?.querySelector(".credits");
    if (credits) credits.textContent = updated.unlimited ? "unlimited" : money(updated.credits);
    amount.value = "";
    showError($("keys-error"), null);
  } catch (err) {
    showError($("keys-error"), err);
  } finally {
    topUpButton.disabled = false;
  }
}

async function loadKeys() {
  const mine = ++generation;
  try {
    const listing = await api("GET", "admin/v1/keys");
    if (mine !== generation) return;
    $("keys-table").tBodies[0].replaceChildren(...(listing.data || []).map(keyRow));
    showError($("keys-error"), null);
  } catch (err) {
    showError($("keys-error"), err);
  }
}

function showSecret(what, made) {
  $("new-secret-what").textContent = what;
  $("new-secret-name").textContent = made.name;
  $("new-secret-value").textContent = made.secret;
  $("copy-secret").textContent = "Copy";
  $("new-secret").hidden = false;
}

async function createKey(event) {
  event.preventDefault();
  const body = { name: $("key-name").value.trim() };
  if ($("key-credits").value !== "") body.credits = Number($("key-credits").value);
  if ($("key-budget").value !== "") body.monthly_budget_usd = Number($("key-budget").value);
  const allowed = patterns($("key-models").value);
  if (allowed) body.allowed_models = allowed;
  try {
    const made = await api("POST", "admin/v1/keys", body);
    showSecret("New key", made);
    $("key-form").reset();
    showError($("keys-error"), null);
    await loadKeys();
  } catch (err) {
    showError($("keys-error"), err);
  }
}

async function rotateKey(key) {
  if (!window.confirm(`Rotate the key "${key.name}"? Its current secret stops working at once.`)) return;
  try {
    const made = await api("POST", `${path(key)}/rotate`);
    showSecret("New secret for", made);
    showError($("keys-error"), null);
    await loadKeys();
  } catch (err) {
    showError($("keys-error"), err);
  }
}

async function revokeKey(key) {
  if (!window.confirm(`Revoke the key "${key.name}"? Requests with it fail from then on.`)) return;
  try {
    await api("DELETE", path(key));
    await loadKeys();
  } catch (err) {
    showError($("keys-error"), err);
  }
}

async function copySecret() {
  try {
    await navigator.clipboard.writeText($("new-secret-value").textContent);
    $("copy-secret").textContent = "Copied";
  } catch {
    window.getSelection().selectAllChildren($("new-secret-value"));
  }
}

// --- the settings dialog ---

const pad = (n) => String(n).padStart(2, "0");

// epoch seconds as a datetime-local value (the browser's time zone), "" for none
function localInput(seconds) {
  if (!seconds) return "";
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

const numberOrEmpty = (value) => (value === null || value === undefined ? "" : String(value));
// an input's number, or null when empty (a null lifts the limit); a typed-in oddity goes as it is so the
// API names the parameter
const numberOf = (input) => (input.value.trim() === "" ? null : Number(input.value));

function fillEditor(key) {
  $("key-dialog-title").textContent = `Settings of ${key.name}`;
  $("edit-name").value = key.name;
  $("edit-credits").value = key.unlimited ? "" : numberOrEmpty(key.credits);
  $("edit-unlimited").checked = key.unlimited;
  $("edit-credits").disabled = key.unlimited;
  $("edit-expires").value = localInput(key.expires_at);
  $("edit-models").value = (key.allowed_models || []).join("\n");
  $("edit-budget").value = numberOrEmpty(key.monthly_budget_usd);
  $("edit-rpm").value = numberOrEmpty(key.rate_limit_rpm);
  $("edit-concurrency").value = numberOrEmpty(key.max_concurrent_tasks);
  $("key-dialog-status").textContent = "";
  showError($("key-dialog-error"), null);
}

function openEditor(key) {
  editing = key;
  opener = key.id;
  fillEditor(key);
  $("key-dialog").showModal();
  $("edit-name").focus();
}

function balanceChanges(key, body) {
  const unlimited = $("edit-unlimited").checked;
  const credits = numberOf($("edit-credits"));
  if (unlimited && !key.unlimited) body.unlimited = true;
  else if (!unlimited && key.unlimited) {
    body.unlimited = false;
    if (credits === null) throw new ApiError(0, { message: "Enter the balance (USD) the key starts from.", param: "credits" });
    body.credits = credits;
  } else if (!unlimited && credits !== key.credits) {
    if (credits === null) throw new ApiError(0, { message: "Enter a balance (USD), or tick Unlimited credits.", param: "credits" });
    body.credits = credits;
  }
}

// the fields the form changed, as one PATCH body
function changes(key) {
  const body = {};
  const name = $("edit-name").value.trim();
  if (name !== key.name) body.name = name;
  balanceChanges(key, body);
  const expires = $("edit-expires").value;
  if (expires !== localInput(key.expires_at)) {
    const at = new Date(expires);
    if (expires && Number.isNaN(at.getTime())) {
      throw new ApiError(0, { message: "Enter a complete date and time, or leave it empty.", param: "expires_at" });
    }
    body.expires_at = expires ? at.toISOString() : null;
  }
  const allowed = patterns($("edit-models").value);
  if (JSON.stringify(allowed) !== JSON.stringify(key.allowed_models ?? null)) body.allowed_models = allowed;
  const numbers = [["edit-budget", "monthly_budget_usd"], ["edit-rpm", "rate_limit_rpm"],
    ["edit-concurrency", "max_concurrent_tasks"]];
  for (const [id, field] of numbers) {
    const value = numberOf($(id));
    if (value !== (key[field] ?? null)) body[field] = value;
  }
  return body;
}

async function saveEditor(event) {
  event.preventDefault();
  const key = editing;
  const box = $("key-dialog-error");
  let body;
  try {
    body = changes(key);
  } catch (err) {
    showError(box, err);
    return;
  }
  if (!Object.keys(body).length) {
    $("key-dialog-status").textContent = "Nothing changed.";
    return;
  }
  $("key-dialog-save").disabled = true;
  try {
    await api("PATCH", path(key), body);
    await loadKeys();  // first, so the focus goes back to the new row's Edit button
    $("key-dialog").close();
  } catch (err) {
    showError(box, err);
  } finally {
    $("key-dialog-save").disabled = false;
  }
}

function editorClosed() {
  editing = null;
  const back = [...$("keys-table").tBodies[0].rows].find((r) => r.dataset.keyId === opener);
  const edit = back?.querySelector('button[aria-label^="Edit "]');
  if (edit) edit.focus();
  opener = null;
}

export const panel = {
  name: "keys",
  admin: true,
  init() {
    $("key-form").addEventListener("submit", createKey);
    $("copy-secret").addEventListener("click", copySecret);
    $("key-edit-form").addEventListener("submit", saveEditor);
    $("key-dialog-cancel").addEventListener("click", () => $("key-dialog").close());
    $("key-dialog").addEventListener("close", editorClosed);  // Escape closes it too (the dialog's cancel)
    $("edit-unlimited").addEventListener("change", () => {
      $("edit-credits").disabled = $("edit-unlimited").checked;
    });
  },
  async enter() { await loadKeys(); },
  leave() {
    if ($("key-dialog").open) $("key-dialog").close();
    $("keys-table").tBodies[0].replaceChildren();
    $("new-secret").hidden = true;
    showError($("keys-error"), null);
  },
  show() {},
  hide() {},
};
