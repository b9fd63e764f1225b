// Keys (admin keys only): create (the secret shown once), top up, revoke.

import { $, ApiError, api, cell, el, showError } from "./api.js";

function keyRow(key) {
  const tr = el("tr");
  tr.dataset.keyId = key.id;
  tr.append(cell(key.name), cell(key.prefix || ""),
    el("td", key.unlimited ? "unlimited" : `$${key.credits}`, { className: "credits" }),
    cell(`$${key.month_spend_usd ?? 0}`), el("td", key.status, { className: `status status-${key.status}` }),
    cell(key.is_admin ? "yes" : "no"));
  const actions = el("td", null, { className: "actions" });
  if (key.status !== "revoked") {
    actions.append(topUpControl(key));
    const revoke = el("button", "Revoke", { type: "button", className: "danger", "aria-label": `Revoke ${key.name}` });
    revoke.addEventListener("click", () => revokeKey(key));
    actions.append(revoke);
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
  const button = el("button", "Top up", { type: "button", className: "secondary", "aria-label": `Top up ${key.name}` });
  const submit = () => topUp(key, amount, button);
  button.addEventListener("click", submit);
  amount.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); submit(); }
  });
  box.append(amount, button);
  return box;
}

async function topUp(key, amount, button) {
  if (amount.value === "" || !Number.isFinite(Number(amount.value))) {
    showError($("keys-error"), new ApiError(0, { message: `Enter an amount in USD to add to ${key.name}.` }));
    amount.focus();
    return;
  }
  button.disabled = true;
  try {
    const updated = await api("PATCH", `admin/v1/keys/${encodeURIComponent(key.id)}`,
      { add_credits: Number(amount.value) });
    const row = [...$("keys-table").tBodies[0].rows].find((r) => r.dataset.keyId === key.id);
    const credits = row?.querySelector(".credits");
    if (credits) credits.textContent = updated.unlimited ? "unlimited" : `$${updated.credits}`;
    amount.value = "";
    showError($("keys-error"), null);
  } catch (err) {
    showError($("keys-error"), err);
  } finally {
    button.disabled = false;
  }
}

async function loadKeys() {
  try {
    const listing = await api("GET", "admin/v1/keys");
    $("keys-table").tBodies[0].replaceChildren(...(listing.data || []).map(keyRow));
    showError($("keys-error"), null);
  } catch (err) {
    showError($("keys-error"), err);
  }
}

async function createKey(event) {
  event.preventDefault();
  const body = { name: $("key-name").value.trim() };
  if ($("key-credits").value !== "") body.credits = Number($("key-credits").value);
  try {
    const made = await api("POST", "admin/v1/keys", body);
    $("new-secret-name").textContent = made.name;
    $("new-secret-value").textContent = made.secret;
    $("new-secret").hidden = false;
    $("key-form").reset();
    showError($("keys-error"), null);
    await loadKeys();
  } catch (err) {
    showError($("keys-error"), err);
  }
}

async function revokeKey(key) {
  if (!window.confirm(`Revoke the key "${key.name}"? Requests with it fail from then on.`)) return;
  try {
    await api("DELETE", `admin/v1/keys/${encodeURIComponent(key.id)}`);
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

export const panel = {
  name: "keys",
  admin: true,
  init() {
    $("key-form").addEventListener("submit", createKey);
    $("copy-secret").addEventListener("click", copySecret);
  },
  async enter() { await loadKeys(); },
  leave() {
    $("keys-table").tBodies[0].replaceChildren();
    $("new-secret").hidden = true;
    showError($("keys-error"), null);
  },
  show() {},
  hide() {},
};
