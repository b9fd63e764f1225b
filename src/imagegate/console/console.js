// imagegate console: sign in with an API key, generate in the playground, see and cancel the key's tasks,
// manage and top up keys (admin keys).
// Plain ES module, no framework, no build step; every call goes to this gateway's own API.

const STORE = "imagegate.console.key";
const PRESETS = [
  "64x64", "256x256", "512x512", "768x768", "1024x1024", "1024x768", "768x1024",
  "1536x1024", "1024x1536", "1792x1024", "1024x1792", "2048x2048",
];
const CUSTOM = "custom";
const DEFAULT = "";
const LIVE = new Set(["queued", "running"]);  // a task in these states can still be canceled

const $ = (id) => document.getElementById(id);
const state = { key: null, admin: false, models: [] };

class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.param = error?.param || null;
    this.code = error?.code || null;
  }
}

async function api(method, path, body, key = state.key) {
  const headers = { authorization: `Bearer ${key}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, { message: `The gateway could not be reached (${err.message}).` });
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) throw new ApiError(res.status, data?.error || { message: text || res.statusText });
  return data;
}

function showError(box, err) {
  box.replaceChildren();
  if (!err) { box.hidden = true; return; }
  const head = document.createElement("strong");
  head.textContent = err.status ? `Error ${err.status}` : "Error";
  const msg = document.createElement("span");
  msg.className = "message";
  msg.textContent = ` ${err.message}`;
  box.append(head, msg);
  if (err.param) {
    const p = document.createElement("span");
    p.className = "param";
    p.textContent = ` (parameter: ${err.param})`;
    box.append(p);
  }
  box.hidden = false;
}

// --- sign in ---

async function signIn(key) {
  await api("GET", "v1/tasks?limit=1", undefined, key);  // a 401 here: the key is wrong (the model list is open)
  let admin = false;
  try {
    await api("GET", "admin/v1/keys", undefined, key);
    admin = true;
  } catch (err) {
    if (err.status !== 403) throw err;
  }
  state.key = key;
  state.admin = admin;
  sessionStorage.setItem(STORE, key);
  await enter();
}

function signOut() {
  sessionStorage.removeItem(STORE);
  Object.assign(state, { key: null, admin: false, models: [] });
  $("signin").hidden = false;
  $("tabs").hidden = true;
  $("sign-out").hidden = true;
  $("panel-playground").hidden = true;
  $("panel-keys").hidden = true;
  $("panel-tasks").hidden = true;
  $("results").replaceChildren();
  $("tasks-table").tBodies[0].replaceChildren();
  $("tasks-status").textContent = "";
  $("keys-table").tBodies[0].replaceChildren();
  $("api-key").value = "";
  $("api-key").focus();
}

async function enter() {
  $("signin").hidden = true;
  $("tabs").hidden = false;
  $("sign-out").hidden = false;
  $("tab-keys").hidden = !state.admin;
  selectTab("playground");
  await loadModels();
  if (state.admin) await loadKeys();
}

// --- tabs ---

function tabs() {
  return [...document.querySelectorAll('[role="tab"]')].filter((t) => !t.hidden);
}

function selectTab(name, focus = false) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const on = tab.id === `tab-${name}`;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !on;
    if (on && focus) tab.focus();
  }
  if (name === "tasks") loadTasks();
}

function onTabKey(event) {
  const list = tabs();
  const at = list.indexOf(document.activeElement);
  if (at < 0) return;
  const moves = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: list.length - 1 };
  if (!(event.key in moves)) return;
  event.preventDefault();
  const next = list[(moves[event.key] + list.length) % list.length];
  selectTab(next.id.replace("tab-", ""), true);
}

// --- playground ---

function fits(size, rule) {
  const [w, h] = size.split("x").map(Number);
  const multiple = rule.multiple_of || 1;
  return w >= (rule.min_side || 1) && h >= (rule.min_side || 1)
    && w <= (rule.max_side || Infinity) && h <= (rule.max_side || Infinity)
    && w % multiple === 0 && h % multiple === 0
    && (!rule.max_pixels || w * h <= rule.max_pixels);
}

function sizesOf(model) {
  const caps = model.capabilities || {};
  if (caps.sizes) return { sizes: caps.sizes, custom: false };
  if (caps.size_rule) return { sizes: PRESETS.filter((s) => fits(s, caps.size_rule)), custom: true };
  return { sizes: [], custom: false };
}

function option(value, label) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = label;
  return o;
}

function currentModel() {
  return state.models.find((m) => m.id === $("model").value);
}

function fillSizes() {
  const model = currentModel();
  const select = $("size");
  const before = select.value;
  select.replaceChildren(option(DEFAULT, "model default"));
  if (!model) return;
  const { sizes, custom } = sizesOf(model);
  for (const s of sizes) select.append(option(s, s));
  if (custom) select.append(option(CUSTOM, "custom…"));
  if ([...select.options].some((o) => o.value === before)) select.value = before;
  $("custom-size-field").hidden = select.value !== CUSTOM;
  const caps = model.capabilities || {};
  $("n").max = caps.max_n || 1;
  const price = model.pricing?.per_image;
  const parts = [model.description || model.id];
  if (price !== undefined) parts.push(`$${price} per image`);
  if (model.ready === false) parts.push("not ready: its provider is not configured");
  $("model-info").textContent = parts.join(" · ");
}

async function loadModels() {
  const select = $("model");
  try {
    const listing = await api("GET", "v1/models");
    state.models = (listing.data || []).filter((m) => (m.capabilities?.modes || ["generate"]).includes("generate"));
  } catch (err) {
    showError($("generate-error"), err);
    return;
  }
  const before = select.value;
  select.replaceChildren(...state.models.map((m) => option(m.id, m.ready === false ? `${m.id} (not ready)` : m.id)));
  if (state.models.some((m) => m.id === before)) select.value = before;
  fillSizes();
}

function requestBody() {
  const body = { model: $("model").value, prompt: $("prompt").value, response_format: "url" };
  const size = $("size").value === CUSTOM ? $("custom-size").value.trim() : $("size").value;
  if (size) body.size = size;
  const n = Number($("n").value);
  if ($("n").value !== "" && n !== 1) body.n = n;
  return body;
}

function resultCard(item, answer, index, wall) {
  const figure = document.createElement("figure");
  figure.className = "result";
  const src = item.url || `data:image/${answer.output_format || "png"};base64,${item.b64_json}`;
  const img = document.createElement("img");
  img.src = src;
  img.alt = `Generated image ${index + 1} for: ${answer.prompt || $("prompt").value || "(no prompt)"}`;
  const caption = document.createElement("figcaption");
  const link = document.createElement("a");
  link.href = src;
  link.download = `imagegate-${answer.model || "image"}-${index + 1}.${answer.output_format || "png"}`
    .replaceAll("/", "-");
  link.textContent = "Download";
  const facts = document.createElement("span");
  facts.className = "facts";
  const cost = answer.cost === undefined ? "cost unknown" : `cost $${answer.cost}`;
  const latency = answer.latency === undefined ? `${wall} ms` : `${answer.latency} ms (round trip ${wall} ms)`;
  facts.textContent = `${answer.size || ""} · ${cost} · latency ${latency}`;
  caption.append(link, facts);
  figure.append(img, caption);
  return figure;
}

async function generate(event) {
  event.preventDefault();
  const button = $("generate");
  showError($("generate-error"), null);
  $("results").replaceChildren();
  $("generate-status").textContent = "Generating…";
  button.disabled = true;
  const started = performance.now();
  try {
    const answer = await api("POST", "v1/images/generations", requestBody());
    const wall = Math.round(performance.now() - started);
    $("results").replaceChildren(...(answer.data || []).map((item, i) => resultCard(item, answer, i, wall)));
    $("generate-status").textContent = `Done: ${(answer.data || []).length} image(s) in ${wall} ms.`;
  } catch (err) {
    $("generate-status").textContent = "";
    showError($("generate-error"), err);
  } finally {
    button.disabled = false;
  }
}

// --- tasks (any key) ---

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}

function taskRow(task) {
  const tr = document.createElement("tr");
  tr.dataset.taskId = task.id;
  const id = cell(task.id);
  id.className = "mono";
  const status = cell(task.status);
  status.className = `status status-${task.status}`;
  const progress = task.progress === null || task.progress === undefined ? "" : `${task.progress}%`;
  const cost = task.cost === null || task.cost === undefined ? "" : `$${task.cost}`;
  tr.append(id, cell(task.model), status, cell(progress), cell(cost), cell(when(task.created_at)));
  const actions = document.createElement("td");
  if (LIVE.has(task.status)) {
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "danger";
    cancel.textContent = "Cancel";
    cancel.setAttribute("aria-label", `Cancel task ${task.id}`);
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

// --- keys (admin) ---

function keyRow(key) {
  const tr = document.createElement("tr");
  tr.dataset.keyId = key.id;
  const credits = cell(key.unlimited ? "unlimited" : `$${key.credits}`);
  credits.className = "credits";
  const status = cell(key.status);
  status.className = `status status-${key.status}`;
  tr.append(cell(key.name), cell(key.prefix || ""), credits, cell(`$${key.month_spend_usd ?? 0}`), status,
    cell(key.is_admin ? "yes" : "no"));
  const actions = document.createElement("td");
  actions.className = "actions";
  if (key.status !== "revoked") {
    actions.append(topUpControl(key));
    const revoke = document.createElement("button");
    revoke.type = "button";
    revoke.className = "danger";
    revoke.textContent = "Revoke";
    revoke.setAttribute("aria-label", `Revoke ${key.name}`);
    revoke.addEventListener("click", () => revokeKey(key));
    actions.append(revoke);
  }
  tr.append(actions);
  return tr;
}

function topUpControl(key) {
  const box = document.createElement("span");
  box.className = "topup";
  const amount = document.createElement("input");
  amount.type = "number";
  amount.min = "0";
  amount.step = "any";
  amount.inputMode = "decimal";
  amount.placeholder = "USD";
  amount.setAttribute("aria-label", `Top-up amount for ${key.name} (USD)`);
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary";
  button.textContent = "Top up";
  button.setAttribute("aria-label", `Top up ${key.name}`);
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

// --- start ---

function wire() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("signin-error"), null);
    try {
      await signIn($("api-key").value.trim());
    } catch (err) {
      showError($("signin-error"), err.status === 401 ? new ApiError(401, { message: "That key is not valid." }) : err);
    }
  });
  $("sign-out").addEventListener("click", signOut);
  $("tabs").addEventListener("keydown", onTabKey);
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.addEventListener("click", () => selectTab(tab.id.replace("tab-", "")));
  }
  $("model").addEventListener("change", fillSizes);
  $("size").addEventListener("change", () => {
    $("custom-size-field").hidden = $("size").value !== CUSTOM;
  });
  $("generate-form").addEventListener("submit", generate);
  $("key-form").addEventListener("submit", createKey);
  $("copy-secret").addEventListener("click", copySecret);
  $("tasks-refresh").addEventListener("click", loadTasks);
}

wire();
const saved = sessionStorage.getItem(STORE);
if (saved) signIn(saved).catch(() => signOut());
else $("api-key").focus();
